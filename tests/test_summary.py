"""The pipeline's one metrics file (reports/summary.json): a short set a person reads."""
from __future__ import annotations

import json

from cnn_filter_db.summary import summarize, write_summary

MANIFEST = {"version": "0.1.0", "excluded_models": {"x": "licence"}, "shards": [
    {"path": "filters/a/a-00000-of-00001.parquet", "rows": 1000, "bytes": 30_000, "sha256": "0" * 64},
    {"path": "filters/b/b-00000-of-00001.parquet", "rows": 3000, "bytes": 92_000, "sha256": "1" * 64},
    {"path": "layers/train-00000-of-00001.parquet", "rows": 7, "bytes": 4_000, "sha256": "2" * 64},
    {"path": "models/train-00000-of-00001.parquet", "rows": 2, "bytes": 8_000, "sha256": "3" * 64},
]}
VALIDATION = {"success": True, "evaluated_expectations": 64, "failed_expectations": 0,
              "tables": {"models": {"success": True, "rows": 2, "failed": 0}}, "filters": 4000, "shards": 2}
ANALYSIS = {"filters": 4000, "share_degenerate_layers": 0.123456, "share_random_like_layers": 0.5,
            "explained_variance_ratio_top3": 0.39638563, "mean_sparsity": 0.01,
            "controls": {"initialisation": {"share_random_like_layers": 1.0}},
            "drift": {"task": {"groups": 6, "max_d": 3.2, "max_pair": "a vs b", "mean_d": 1.0}}}


def test_summary_is_short_and_scalar():
    s = summarize(MANIFEST, VALIDATION, ANALYSIS)
    assert s == {"models": 2, "layers": 7, "filters": 4000, "excluded_models": 1,
                 "megabytes": 0.1, "bytes_per_filter": 30.5,  # (30,000 + 92,000) / 4,000
                 "validation_passed": True, "failed_expectations": 0,
                 "share_degenerate_layers": 0.1235, "share_random_like_layers": 0.5,
                 "explained_variance_ratio_top3": 0.3964}
    assert all(isinstance(v, (int, float, bool)) for v in s.values())  # no hashes, pairs or nested detail


def test_written_from_the_reports_present(tmp_path):
    (tmp_path / "reports" / "validation").mkdir(parents=True)
    (tmp_path / "reports" / "validation" / "metrics.json").write_text(json.dumps(VALIDATION))
    path = write_summary(MANIFEST, tmp_path)  # no analysis report yet: its numbers are left out
    data = json.loads(path.read_text())
    assert path == tmp_path / "reports" / "summary.json"
    assert data["validation_passed"] is True and "share_degenerate_layers" not in data
