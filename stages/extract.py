"""DVC stage extract@<model_id>: fetch one catalog entry's weights and write its filter
shards (dist/cnn-filter-db/filters/<id>/) and its metadata rows (build/meta/<id>/)."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
