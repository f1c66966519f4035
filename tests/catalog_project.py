"""A throw-away project for catalog tests: tiny real safetensors models behind file:// URLs,
the repository's own stages, params and vocabulary, and real git and DVC."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import save_file

from cnn_filter_db import catalog

ROOT = Path(__file__).resolve().parents[1]
KEEP_STAGES = ("extract", "extract-set", "gather")


def tiny_entry(folder: Path, model_id: str, set_name: str | None, out_c: int, seed: int) -> dict:
    """A catalog entry for a small real safetensors file (two 3x3 convs) behind a file:// URL."""
    rng = np.random.default_rng(seed)
    weights = folder / "weights" / f"{model_id}.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({"a.weight": rng.normal(size=(out_c, 3, 3, 3)).astype(np.float32),
               "b.weight": rng.normal(size=(out_c, out_c, 3, 3)).astype(np.float32)}, str(weights))
    entry = {
        "model_id": model_id, "name": model_id,
        "source": {"kind": "url", "url": weights.as_uri(), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()},
        "format": "safetensors", "architecture": "tiny", "family": "other", "task": "classification",
        "visual_category": "synthetic", "training_dataset": "unknown", "pretraining_dataset": "unknown",
        "trained": True, "license": "MIT", "training_data_license": "unknown", "paper": None, "accuracy": None,
    }
    if set_name:
        entry["set"] = set_name
    return entry


def make_project(tmp: Path, entries: list[dict], sets=("default",)) -> Path:
    proj = tmp / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", proj / "catalog")
    shutil.copytree(ROOT / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "stages", proj / "stages")
    for e in entries:
        (proj / "catalog" / "models" / f"{e['model_id']}.yaml").write_text(yaml.safe_dump(e, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["catalog"]["sets"] = list(sets)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    dvc = {"vars": dvc["vars"], "stages": {k: v for k, v in dvc["stages"].items() if k in KEEP_STAGES}}
    (proj / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    (proj / ".gitignore").write_text("/build/\n/dist/\n__pycache__/\n")
    (proj / ".dvcignore").write_text("__pycache__/\n*.pyc\n")
    catalog.write_index(proj)
    return proj


def run(proj: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the project (its own src first); with ``check``, it must succeed."""
    env = {**os.environ, "PYTHONPATH": str(proj / "src"), "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(list(cmd), cwd=proj, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 or not check, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def git_dvc_init(proj: Path) -> None:
    run(proj, "git", "init", "-q")
    run(proj, "git", "config", "user.email", "t@example.org")
    run(proj, "git", "config", "user.name", "t")
    run(proj, "dvc", "init", "-q")
    run(proj, "git", "add", "-A")
    run(proj, "git", "commit", "-qm", "init")
