"""DVC stage validate: run the expectation suites (cnn_filter_db/validation/) on the release folder.

The manifest is not written yet at this point of the pipeline (a manifest left from an
earlier build would be stale): the release stage checks the manifest it writes. For the same
reason dvc.yaml's command passes --no-verify: the shards are not checked against that stale
manifest.json (every other caller of `cnn-filter-db validate` gets the check by default).
Prints a short summary, writes the Checkpoint results, the success metric and Data Docs
where dvc.yaml's command says (--reports), and exits 1 when any expectation fails so later
stages do not run.
"""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
