"""DVC stage release: write manifest.json (and the card) beside the tables of the release."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["release", "--build-only", "--metrics", "reports/summary.json", *sys.argv[1:]]))
