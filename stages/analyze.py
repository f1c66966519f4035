"""DVC stage analyze: per-layer metrics into dist/cnn-filter-db/layer_stats/, and reports/
(eigen-image bases, drift matrices, metrics.json, plots), with the `analyze` group of params.yaml."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["analyze", *sys.argv[1:]]))
