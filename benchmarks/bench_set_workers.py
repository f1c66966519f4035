"""Benchmark: a catalog set built one model at a time against ``--workers`` at a time.

Builds a throw-away project whose set ``bench`` holds the default catalog's timm
initialisation entries (real timm models, built offline), each copied ``--copies`` times
under new ids, once with 1 worker and once with ``--workers``, and checks that both builds
wrote the same files. Prints one JSON line: models, filters, seconds of each build, the
speed-up and whether the outputs were identical.

    python benchmarks/bench_set_workers.py --copies 2 --workers 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from catalog_project import make_project  # noqa: E402

from cnn_filter_db.params import RunOptions  # noqa: E402
from cnn_filter_db.set_build import build_set  # noqa: E402


def init_entries(copies: int) -> list[dict]:
    out = []
    for path in sorted((HERE.parent / "catalog" / "models").glob("timm-*-init.yaml")):
        entry = yaml.safe_load(path.read_text())
        for k in range(copies):
            out.append({**entry, "model_id": f"{entry['model_id']}-c{k}", "set": "bench"})
    return out


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2, help="copies of each timm initialisation entry (default 2)")
    ap.add_argument("--workers", type=int, default=RunOptions.workers, help="workers of the second build")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proj = make_project(Path(tmp), init_entries(args.copies))
        seconds, digests = {}, {}
        for workers in (1, args.workers):
            for d in ("dist", "build"):
                shutil.rmtree(proj / d, ignore_errors=True)
            start = time.perf_counter()
            summary = build_set("bench", proj, run={"workers": workers})
            seconds[workers] = time.perf_counter() - start
            digests[workers] = digest(proj / "dist") + digest(proj / "build")
    print(json.dumps({"models": len(summary["models"]), "filters": summary["n_filters"],
                      "seconds_1_worker": round(seconds[1], 1), f"seconds_{args.workers}_workers": round(seconds[args.workers], 1),
                      "speed_up": round(seconds[1] / seconds[args.workers], 2),
                      "same_files": digests[1] == digests[args.workers]}))


if __name__ == "__main__":
    main()
