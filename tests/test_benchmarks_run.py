"""Every benchmark still runs against the package as it is: each script, at a tiny size, in a
subprocess, prints its JSON line with sane figures. (Speed goals are not checked here: they
belong to the full-size runs the benchmarks' docstrings give.) A library change that breaks a
benchmark's call fails here, not months later in a measurement."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run(*args: str, cwd: Path = ROOT) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               DVC_NO_ANALYTICS="1")
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_bench_extract_runs(tmp_path):
    (out,) = run(str(BENCH / "bench_extract.py"), "--filters", "20000", "--repeat", "1", cwd=tmp_path)
    assert out["filters"] == 20000 and out["ratio"] > 0 and out["ratio_same_options"] > 0
    assert 25 < out["bytes_per_filter"] < 40 and out["peak_rss_mb"] > 0


def test_bench_validate_runs_with_the_manifest(tmp_path):
    (out,) = run(str(BENCH / "bench_validate.py"), "--filters", "20000", "--manifest", cwd=tmp_path)
    assert out["filters"] >= 20000 and out["manifest"] is True and out["shards"] >= 1
    assert out["filters_per_s_total"] > 0 and out["layers"] >= 1


def test_bench_analyze_runs(tmp_path):
    (out,) = run(str(BENCH / "bench_analyze.py"), "--filters", "2e5", cwd=tmp_path)
    assert out["filters"] >= 200000 and out["analyze_s"] > 0 and out["scan_s"] > 0 and out["ratio"] > 0


def test_bench_import_runs(tmp_path):
    (out,) = run(str(BENCH / "bench_import.py"), "--filters", "2e5", cwd=tmp_path)
    assert out["filters"] == 200000 and out["ratio"] > 0 and 25 < out["bytes_per_filter"] < 40


def test_bench_parquet_layout_runs_on_a_release(small_release):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_parquet_layout.py"), str(small_release)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the package's options" in proc.stdout


def test_bench_cdc_dedup_runs_on_a_release(small_release):
    model = "efficientnet-lite0"
    rows = run(str(BENCH / "bench_cdc_dedup.py"), str(small_release), "--model", model, "--chunk-mib", "1-4")
    assert [r["parquet_cdc"] for r in rows] == ["1-4 MiB", False]
    for r in rows:
        assert r["model"] == model and r["filters"] > 0
        for edit in ("layer removed", "layer changed"):
            assert 0 <= r[f"{edit}: new bytes already stored"] <= 1
