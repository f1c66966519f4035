"""DVC stages extract@<model_id> and train@<model_id>: fetch (or train) one catalog entry's
weights and write its filter shards (dist/cnn-filter-db/filters/<id>/) and its metadata rows
(build/meta/<id>/).

The model id comes from the stage's own name, which DVC passes in ``DVC_STAGE``: dvc.yaml
interpolates no id into a shell command, so not even a tampered catalog/index.yaml can
reach the shell. The id is checked against the id pattern before any use. The command line
(dvc.yaml's ``cmd``) holds the options: where the shards and the metadata go.
"""
import sys

from cnn_filter_db.cli import foreach_arguments, main

if __name__ == "__main__":
    sys.exit(main(["extract", *foreach_arguments(sys.argv[1:], "stages/extract.py", "model ids")]))
