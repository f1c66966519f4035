"""DVC stage page: write reports/index.html, the offline release page."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["page", *sys.argv[1:]]))
