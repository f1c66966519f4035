"""The typed parameters: params.yaml's groups parse with their typed class (so a key there
is a real parameter), run-only settings are not stage parameters, and errors name the key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnn_filter_db.errors import AnalysisError, CnnFilterDbError
from cnn_filter_db.analysis.params import AnalyzeParams
from cnn_filter_db.params import ExtractParams, RunOptions, ValidateParams, load_params

ROOT = Path(__file__).resolve().parents[1]
TYPED = {"extract": ExtractParams.of, "validate": ValidateParams.of, "analyze": AnalyzeParams.from_dict}


def test_params_yaml_groups_are_typed_and_hold_no_run_options():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, parse in TYPED.items():
        parse(data[group])  # unknown keys raise
    run_keys = {"engine", "scheduler", "workers", "batch_rows"}
    assert not run_keys & set(data["analyze"])
    # and DVC tracks what a stage computes with: the groups are listed in dvc.yaml
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "analyze" in stages["analyze"]["params"] and "validate" in stages["validate"]["params"]
    assert "extract" in stages["extract"]["do"]["params"]


def test_defaults_and_overrides(tmp_path):
    (tmp_path / "params.yaml").write_text("extract:\n  row_group_rows: 1000\nanalyze: {}\n")
    p = ExtractParams.of(load_params("extract", tmp_path))
    assert (p.row_group_rows, p.max_rows_per_shard, p.cache_dir) == (1000, 16_000_000, None)
    assert AnalyzeParams.from_dict(load_params("analyze", tmp_path)) == AnalyzeParams()
    with pytest.raises(CnnFilterDbError, match=r"params.yaml extract.row_group_rows: expected a whole number >= 1, got 0"):
        ExtractParams.of({"row_group_rows": 0})
    with pytest.raises(CnnFilterDbError, match=r"params.yaml validate: unknown keys \['max_abs'\]"):
        ValidateParams.of({"max_abs": 3})


def test_run_options_come_from_the_command_line_then_the_environment():
    env = {"CNN_FILTER_DB_WORKERS": "5", "CNN_FILTER_DB_ENGINE": "dask"}
    assert RunOptions.of({"workers": None, "batch_rows": 1000}, env) == RunOptions("dask", None, 5, 1000)
    assert RunOptions.of({"workers": 1}, env).workers == 1
    assert RunOptions.of(None, {}) == RunOptions()
    with pytest.raises(AnalysisError, match="engine: expected 'local' or 'dask', got 'spark'"):
        RunOptions.of({"engine": "spark"}, {})
