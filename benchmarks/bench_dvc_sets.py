"""Benchmark of DVC at the size of the public-model sets (issue 12, item 8).

Two layouts, each in a throw-away git + DVC repository:

* ``per_model``: one ``foreach`` stage a model (the default set's layout) with trivial
  commands, N items. ``dvc repro`` runs --run-stages of them (the per-executed-stage
  overhead); the rest are recorded with ``dvc commit`` so that ``dvc status`` and an
  up-to-date ``dvc repro`` see N locked stages.
* ``per_set``: the repository's own extract / extract-set / gather stages with N tiny real
  models in one selected set (what ``catalog.sets=[default,timm,torchvision]`` gives):
  build, then ``dvc status`` and an up-to-date ``dvc repro``.

The last line printed is one JSON object with the times (seconds). Measured under
whatever load the machine has: say so when quoting them.

    python benchmarks/bench_dvc_sets.py --models 1200 --run-stages 40
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from catalog_project import git_dvc_init, make_project, tiny_entry  # noqa: E402


def timed(cwd: Path, *cmd: str) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd / "src")}
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def per_model(tmp: Path, n: int, run_stages: int) -> dict:
    proj = tmp / "per-model"
    proj.mkdir()
    ids = [f"m{i:05d}" for i in range(n)]
    (proj / "index.yaml").write_text(yaml.safe_dump({"models": ids}))
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"vars": ["index.yaml"], "stages": {"extract": {
        "foreach": "${models}", "do": {"cmd": "mkdir -p out && echo ${item} > out/${item}.txt",
                                       "deps": ["index.yaml"], "outs": [{"out/${item}.txt": {"cache": False}}]}}}}))
    git_dvc_init(proj)
    run_s = timed(proj, "dvc", "repro", *[f"extract@{i}" for i in ids[:run_stages]])
    (proj / "out").mkdir(exist_ok=True)
    for i in ids[run_stages:]:
        (proj / "out" / f"{i}.txt").write_text(f"{i}\n")
    commit_s = timed(proj, "dvc", "commit", "-f")
    return {"stages": n, "executed": run_stages, "repro_s": round(run_s, 1),
            "per_executed_stage_s": round(run_s / run_stages, 2), "commit_s": round(commit_s, 1),
            "status_s": round(timed(proj, "dvc", "status"), 1),
            "uptodate_repro_s": round(timed(proj, "dvc", "repro"), 1)}


def per_set(tmp: Path, n: int) -> dict:
    entries = [tiny_entry(tmp, f"bulk-{i:05d}", "bulk", 1 + i % 4, i) for i in range(n)]
    proj = make_project(tmp, entries, sets=("default", "bulk"))
    git_dvc_init(proj)
    build_s = timed(proj, "dvc", "repro")
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    return {"models": n, "stages": len(lock), "repro_s": round(build_s, 1),
            "per_model_s": round(build_s / n, 3), "status_s": round(timed(proj, "dvc", "status"), 1),
            "uptodate_repro_s": round(timed(proj, "dvc", "repro"), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=1200)
    ap.add_argument("--run-stages", type=int, default=40, help="per_model: stages actually executed")
    ap.add_argument("--only", choices=["per_model", "per_set"], default=None)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        if args.only in (None, "per_model"):
            out["per_model"] = per_model(Path(tmp), args.models, args.run_stages)
            print(json.dumps(out["per_model"]), flush=True)
        if args.only in (None, "per_set"):
            out["per_set"] = per_set(Path(tmp), args.models)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
