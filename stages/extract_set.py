"""DVC stage extract-set@<set>: build the new or changed members of one catalog set
(see cnn_filter_db.set_build) and write build/sets/<set>.json."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract-set", *sys.argv[1:]]))
