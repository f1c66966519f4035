"""DVC stages extract@<model_id> and train@<model_id>: fetch (or train) one catalog entry's
weights and write its filter shards (dist/cnn-filter-db/filters/<id>/) and its metadata rows
(build/meta/<id>/).

The model id comes from the stage's own name, which DVC passes in ``DVC_STAGE``: dvc.yaml
interpolates no id into a shell command, so not even a tampered catalog/index.yaml can
reach the shell. The id is checked against the id pattern before any use.
"""
import os
import sys

from cnn_filter_db.cli import main


def model_ids() -> list[str]:
    if sys.argv[1:]:
        return sys.argv[1:]
    _, at, item = os.environ.get("DVC_STAGE", "").partition("@")
    if not at:
        sys.exit("stages/extract.py: name model ids, or run it as a DVC foreach stage (DVC sets DVC_STAGE)")
    return [item]


if __name__ == "__main__":
    sys.exit(main(["extract", "--", *model_ids()]))  # "--": an id is never an option
