"""DVC stage analyze: per-layer metrics into dist/cnn-filter-db/layer_stats/, and reports/
(eigen-image bases, drift matrices, metrics.json, plots), with the `analyze` group of params.yaml.

dvc.yaml's command passes --no-verify: at this point of the pipeline the release folder still
holds the previous build's manifest.json (the release stage rewrites it), so the shards are not
checked against it; every other caller of `cnn-filter-db analyze` gets the check by default."""
import sys

from cnn_filter_db.cli import main

if __name__ == "__main__":
    sys.exit(main(["analyze", *sys.argv[1:]]))
