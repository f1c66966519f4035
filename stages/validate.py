"""DVC stage ``validate``: run the expectation suites of validation/ on the release folder.

Reads the ``validate`` group of params.yaml, prints a short summary, writes the Checkpoint
results, the success metric and Data Docs under ``reports_dir``, and exits 1 when any
expectation fails so that later stages do not run.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from cnn_filter_db import config
from cnn_filter_db.errors import CnnFilterDbError
from cnn_filter_db.validate import validate_release


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = ap.parse_args(argv)
    with open(args.params) as fh:
        params = dict((yaml.safe_load(fh) or {}).get("validate") or {})
    release_dir = params.pop("release_dir", str(config.RELEASE_DIR))
    reports_dir = params.pop("reports_dir", str(config.VALIDATION_REPORTS_DIR))
    try:
        result = validate_release(release_dir, reports_dir, params)
    except (CnnFilterDbError, FileNotFoundError) as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
