"""DVC stage gather: concatenate the per-model metadata into the release's layers/ and models/."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["gather", *sys.argv[1:]]))
