"""DVC stages extract@<model_id> and train@<model_id>: fetch (or train) one catalog entry's
weights and write its filter shards (dist/cnn-filter-db/filters/<id>/) and its metadata rows
(build/meta/<id>/).

The model id comes from the stage's own name, which DVC passes in ``DVC_STAGE``: dvc.yaml
interpolates no id into a shell command, so not even a tampered catalog/index.yaml can
reach the shell. The id is checked against the id pattern before any use. The command line
(dvc.yaml's ``cmd``) holds the options: where the shards and the metadata go.
"""
import os
import sys

from cnn_filter_db.cli import main


def arguments(argv: list[str]) -> list[str]:
    """As a DVC stage: dvc.yaml's options, then the id from DVC_STAGE (after "--": an id is
    never an option); by hand: ids and options as given."""
    _, at, item = os.environ.get("DVC_STAGE", "").partition("@")
    if at:
        return [*argv, "--", item]
    if not [a for a in argv if not a.startswith("-")]:
        sys.exit("stages/extract.py: name model ids, or run it as a DVC foreach stage (DVC sets DVC_STAGE)")
    return argv


if __name__ == "__main__":
    sys.exit(main(["extract", *arguments(sys.argv[1:])]))
