"""DVC stage extract-set@<set>: build the new or changed members of one catalog set
(see cnn_filter_db.set_build) and write build/sets/<set>.json.

The set name comes from the stage's own name (``DVC_STAGE``), as in stages/extract.py: no
value of params.yaml or the catalog is interpolated into a shell command.
"""
import os
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    _, at, item = os.environ.get("DVC_STAGE", "").partition("@")
    if at:  # dvc.yaml's options, then the set from the stage's name ("--": never an option)
        sys.exit(main(["extract-set", *argv, "--", item]))
    if not [a for a in argv if not a.startswith("-")]:
        sys.exit("stages/extract_set.py: name a set, or run it as a DVC foreach stage (DVC sets DVC_STAGE)")
    sys.exit(main(["extract-set", *argv]))
