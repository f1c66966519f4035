"""DVC stage release (run with --build-only): write manifest.json, the card and CITATION.cff
beside the tables of the release."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["release", *sys.argv[1:]]))
