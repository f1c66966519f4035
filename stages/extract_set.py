"""DVC stage extract-set@<set>: build the new or changed members of one catalog set
(see cnn_filter_db.set_build) and write build/sets/<set>.json.

The set name comes from the stage's own name (``DVC_STAGE``), as in stages/extract.py: no
value of params.yaml or the catalog is interpolated into a shell command.
"""
import sys

from cnn_filter_db.cli import foreach_arguments, main

if __name__ == "__main__":
    sys.exit(main(["extract-set", *foreach_arguments(sys.argv[1:], "stages/extract_set.py", "a set")]))
