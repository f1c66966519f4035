"""End to end: `dvc repro` in a temporary clone on a small catalog (one ONNX model, one
state dict, one timm baseline), then one added entry re-extracts only that model."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SMALL = ["rapidocr-ppocr-mobile-v2-cls", "facenet-mtcnn-pnet", "timm-efficientnet_b0-init"]
ADDED = "facenet-mtcnn-rnet"


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.mark.slow
def test_dvc_repro_small_catalog_and_incremental_add(tmp_path, root, cache_dir):
    repo = tmp_path / "repo"
    env = dict(os.environ, PYTHONPATH=str(repo / "src"), CNN_FILTER_DB_CACHE=str(cache_dir),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    run(["git", "clone", "--quiet", str(root), str(repo)], tmp_path, env)
    for p in (repo / "catalog" / "models").glob("*.yaml"):
        if p.stem not in SMALL:
            p.unlink()
    cli = [sys.executable, "-m", "cnn_filter_db.cli"]
    run(cli + ["catalog", "index"], repo, env)
    run(cli + ["catalog", "validate"], repo, env)

    out = run(["dvc", "repro"], repo, env)
    stages = ran_stages(out)
    assert sorted(s for s in stages if s.startswith("extract@")) == sorted(f"extract@{m}" for m in SMALL)
    rel = repo / "dist" / "cnn-filter-db"
    models = pq.read_table(rel / "models").to_pylist()
    assert sorted(m["model_id"] for m in models) == sorted(SMALL)
    assert {m["format"] for m in models} == {"onnx", "pytorch"}
    manifest = json.loads((rel / "manifest.json").read_text())
    assert len(manifest["shards"]) == len(SMALL) + 3  # one filters shard a model, layers, models, layer_stats
    assert sum(s["rows"] for s in manifest["shards"] if s["path"].startswith("filters/")) == \
        sum(m["n_filters"] for m in models)

    # the metrics a person reads: one short file of scalars
    shown = json.loads(subprocess.run(["dvc", "metrics", "show", "--json"], cwd=repo, env=env, capture_output=True,
                                      text=True, check=True).stdout)
    files = {path: data["data"] for rev in shown.values() for path, data in rev["data"].items()}
    assert list(files) == ["reports/summary.json"]
    summary = files["reports/summary.json"]
    assert len(summary) <= 15 and all(isinstance(v, (int, float, bool)) for v in summary.values())
    assert summary["models"] == len(SMALL) and summary["filters"] == sum(m["n_filters"] for m in models)
    assert summary["validation_passed"] is True

    # the name users type, from the repository root (the committed link to the release folder)
    code = ("import datasets, json; d = datasets.load_dataset('cnn-filter-db', 'models', split='train'); "
            "print(json.dumps(sorted(d['model_id'])))")
    got = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert json.loads(got.stdout.strip().splitlines()[-1]) == sorted(SMALL)

    run(["git", "checkout", "HEAD", "--", f"catalog/models/{ADDED}.yaml"], repo, env)
    run(cli + ["catalog", "index"], repo, env)
    out = run(["dvc", "repro"], repo, env)
    stages = ran_stages(out)
    assert [s for s in stages if s.startswith("extract@")] == [f"extract@{ADDED}"]
    assert "gather" in stages and "release" in stages
    assert sorted(m["model_id"] for m in pq.read_table(rel / "models").to_pylist()) == sorted(SMALL + [ADDED])

    out = run(["dvc", "repro"], repo, env)
    assert ran_stages(out) == []
