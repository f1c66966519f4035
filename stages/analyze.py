"""DVC stage analyze: per-layer metrics into dist/cnn-filter-db/layer_stats/, and reports/
(eigen-image bases, drift matrices, metrics.json, plots), with the `analyze` group of params.yaml."""
import argparse
import sys
from pathlib import Path

from cnn_filter_db import config
from cnn_filter_db.analysis import analyze
from cnn_filter_db.errors import CnnFilterDbError
from cnn_filter_db.params import load_params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="where params.yaml is")
    ap.add_argument("--release-dir", type=Path, default=config.RELEASE_DIR)
    ap.add_argument("--reports-dir", type=Path, default=Path("reports"))
    args = ap.parse_args(argv)
    try:
        summary = analyze(args.release_dir, args.reports_dir, load_params("analyze", args.root))
    except CnnFilterDbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    share = summary["share_degenerate_layers"]
    print(f"analysed {summary['filters']:,} filters in {summary['layers']:,} layers of {summary['models']} models: "
          f"{'n/a' if share is None else f'{share:.1%}'} of layers degenerated; reports in {args.reports_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
