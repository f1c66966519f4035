"""Reproducible builds, end to end: two full ``dvc repro`` runs (separate clones, separate
processes) of the same small catalog give byte-identical manifest, fingerprint,
``layer_stats``, analysis reports and card; then editing one catalog entry re-extracts that
model alone and changes the fingerprint, which is recomputed here with hashlib."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

SMALL = ["rapidocr-ppocr-mobile-v2-cls", "facenet-mtcnn-pnet"]
EDITED = "facenet-mtcnn-pnet"


def _run(cmd, cwd, env) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def _stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def _clone(root: Path, dst: Path, env) -> Path:
    _run(["git", "clone", "--quiet", str(root), str(dst)], dst.parent, env)
    for p in (dst / "catalog" / "models").glob("*.yaml"):
        if p.stem not in SMALL:
            p.unlink()
    _run([sys.executable, "-m", "cnn_filter_db.cli", "catalog", "index"], dst, env)
    return dst


def _outputs(repo: Path) -> dict[str, str]:
    """sha256 of every build output that must be reproducible: the release's manifest, card,
    citation and layer_stats shards, and the analysis reports (validation reports carry run
    times by design, training reports are absent here)."""
    rel = repo / "dist" / "cnn-filter-db"
    files = [rel / "manifest.json", rel / "README.md", rel / "CITATION.cff", *sorted((rel / "layer_stats").rglob("*"))]
    files += [p for p in sorted((repo / "reports").rglob("*"))
              if p.relative_to(repo / "reports").parts[0] not in ("validation", "training")]
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def _fingerprint_by_hashlib(release: Path) -> str:
    shards = [p for p in release.rglob("*.parquet")]
    return hashlib.sha256("\n".join(sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in shards)).encode()).hexdigest()


@pytest.mark.slow
def test_two_builds_are_byte_identical_and_an_edit_rebuilds_one_model(tmp_path, root, cache_dir):
    env = dict(os.environ, CNN_FILTER_DB_CACHE=str(cache_dir),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    outputs, fingerprints = [], []
    for name in ("a", "b"):
        repo = _clone(root, tmp_path / name, dict(env, PYTHONPATH=str(tmp_path / name / "src")))
        renv = dict(env, PYTHONPATH=str(repo / "src"))
        _run(["dvc", "repro"], repo, renv)
        outputs.append(_outputs(repo))
        rel = repo / "dist" / "cnn-filter-db"
        fingerprints.append(json.loads((rel / "manifest.json").read_text())["fingerprint"])
        assert fingerprints[-1] == _fingerprint_by_hashlib(rel)
    a, b = outputs
    assert any(p.startswith("dist/cnn-filter-db/layer_stats/") for p in a)
    assert any(p.startswith("reports/") for p in a) and "dist/cnn-filter-db/README.md" in a
    assert sorted(a) == sorted(b)
    assert [p for p in a if a[p] != b[p]] == []
    assert fingerprints[0] == fingerprints[1]

    # edit one entry (its name: a column of the models table), in clone b
    repo = tmp_path / "b"
    renv = dict(env, PYTHONPATH=str(repo / "src"))
    entry = repo / "catalog" / "models" / f"{EDITED}.yaml"
    data = yaml.safe_load(entry.read_text())
    data["name"] = data["name"] + " (renamed)"
    entry.write_text(yaml.safe_dump(data, sort_keys=False))
    _run([sys.executable, "-m", "cnn_filter_db.cli", "catalog", "index"], repo, renv)
    filters_before = {p.name: p.read_bytes() for p in (repo / "dist/cnn-filter-db/filters").rglob("*.parquet")}
    out = _run(["dvc", "repro"], repo, renv)
    stages = _stages(out)
    assert [s for s in stages if s.startswith(("extract@", "train@"))] == [f"extract@{EDITED}"], stages
    rel = repo / "dist" / "cnn-filter-db"
    new = json.loads((rel / "manifest.json").read_text())["fingerprint"]
    assert new != fingerprints[0]
    assert new == _fingerprint_by_hashlib(rel)
    # the weights did not change, the models table did
    assert {p.name: p.read_bytes() for p in (rel / "filters").rglob("*.parquet")} == filters_before
    names = dict(zip(*pq.read_table(rel / "models", columns=["model_id", "name"]).to_pydict().values()))
    assert names[EDITED].endswith(" (renamed)")
