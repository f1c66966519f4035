"""The pipeline's DVC metrics: one short file a person reads (``dvc metrics show``), written by
the release stage from the manifest and the other stages' reports.

Counts and storage come from ``manifest.json``; the validation outcome from
``reports/validation/metrics.json``; a few headline analysis numbers from ``reports/metrics.json``.
Everything else (hashes, devices, timings, per-table and per-grouping detail) stays in those
reports.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from . import config
from .atomic import atomic_write_text

#: The analysis numbers worth a metric column, over the trained population (the rest, the
#: controls and the drift detail stay in reports/metrics.json).
ANALYSIS_KEYS = ("share_degenerate_layers", "share_random_like_layers", "explained_variance_ratio_top3")
SUMMARY_FILE = config.REPORTS_DIR / "summary.json"
VALIDATION_METRICS = config.VALIDATION_REPORTS_DIR / "metrics.json"
ANALYSIS_METRICS = config.REPORTS_DIR / "metrics.json"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def summarize(manifest: Mapping, validation: Mapping | None = None, analysis: Mapping | None = None) -> dict:
    """The metrics of a release: counts and bytes per table, the validation outcome, headline numbers."""
    def table_rows(table: str) -> int:
        return sum(s["rows"] for s in manifest["shards"] if s["path"].split("/", 1)[0] == table)

    filter_bytes = sum(s["bytes"] for s in manifest["shards"] if s["path"].startswith("filters/"))
    filters = table_rows("filters")
    out = {
        "models": table_rows("models"),
        "layers": table_rows("layers"),
        "filters": filters,
        "excluded_models": len(manifest.get("excluded_models") or {}),
        "megabytes": round(sum(s["bytes"] for s in manifest["shards"]) / 1e6, 1),
        "bytes_per_filter": round(filter_bytes / filters, 2) if filters else None,
    }
    if validation is not None:
        out["validation_passed"] = bool(validation.get("success"))
        out["failed_expectations"] = validation.get("failed_expectations")
    if analysis is not None:
        out.update({k: round(analysis[k], 4) for k in ANALYSIS_KEYS if analysis.get(k) is not None})
    return out


def write_summary(manifest: Mapping, root: Path, path: Path | None = None) -> Path:
    """``reports/summary.json`` under ``root`` (or ``path``), from the reports present there."""
    root = Path(root)
    path = Path(path) if path else root / SUMMARY_FILE
    numbers = summarize(manifest, _read(root / VALIDATION_METRICS), _read(root / ANALYSIS_METRICS))
    atomic_write_text(path, json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    return path
