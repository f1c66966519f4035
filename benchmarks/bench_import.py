"""Benchmark: import the CVPR 2022 release's layout, N filters, against a plain pyarrow write.

Writes a synthetic file in the original's layout (``/filter`` N x 9 float64 as the 105 GB
release stores it, 72 bytes a filter; ``/meta`` a pandas table with the MultiIndex
model_id / conv_depth / conv_depth_norm), with ResNet/VGG-like layers and models of about
0.9-1.7 M filters (the original averages 2.3 M filters and 33 layers a model). Then, each in
its own process:

* ``import``: ``import_original`` into a temporary project (entries, zstd shards, metadata);
  its time includes verifying the pinned sha256 (``hash_s`` reports that part alone);
* ``plain``: the same layer slices read from the same file and written with
  ``pyarrow.parquet.ParquetWriter`` at default options.

Both run at N and 4N; prints one JSON line: import_per_s, plain_per_s, ratio (plain time /
import time, at 4N), bytes_per_filter, peak_rss_mb at N and 4N, and the projected import
time of the whole original (1,464,797,156 filters) at the 4N rate.

    python benchmarks/bench_import.py --filters 50000000

Targets: ratio >= 0.67; peak_rss_mb at 4N within 1.25x of N.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ORIGINAL_FILTERS = 1_464_797_156
ROOT = Path(__file__).resolve().parents[1]
# (out_channels, in_channels_per_group) of ResNet/VGG-like 3x3 layers: one pass is a model of
# about 0.87 M filters and 14 layers; every other model takes two passes.
SHAPES = [(64, 3), (64, 64), (64, 64), (128, 64), (128, 128), (128, 128), (256, 128),
          (256, 256), (256, 256), (512, 256), (512, 512), (512, 512), (96, 1), (32, 16)]


def model_plan(n_filters: int):
    """[(model index, [(conv_depth, count), ...]), ...] summing to exactly n_filters."""
    left, m, plan = n_filters, 0, []
    while left > 0:
        layers, depth = [], 0
        for _ in range(1 + m % 2):
            for o, c in SHAPES:
                k = min(o * c, left)
                if k:
                    layers.append((depth, k))
                    depth += 2  # a 1x1 or other conv between 3x3 levels, as in real models
                left -= k
        plan.append((m, layers))
        m += 1
    return plan


def write_synthetic(path: Path, n_filters: int) -> None:
    import h5py
    import pandas as pd

    rng = np.random.default_rng(0)
    pool = rng.standard_t(5, size=(1 << 20, 9)) * 0.02  # trained-weight-like: heavy tails, small
    rows, index, n = [], [], 0
    for m, layers in model_plan(n_filters):
        max_depth = layers[-1][0] + 1
        for depth, count in layers:
            index.append((m, depth, depth / max_depth))
            rows.append({"filter_ids": f"{n}:{n + count - 1}", "model": f"synthetic_{m}_imagenet_11",
                         "Name": f"Synthetic-{m}", "Task": "Classification", "Visual Category": "natural",
                         "Training-Dataset": "ImageNet1k", "Pretraining-Dataset": np.nan, "producer": "pytorch",
                         "op_set": "11", "total_filters": float(n_filters)})
            n += count
    meta = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["model_id", "conv_depth",
                                                                             "conv_depth_norm"]))
    meta.to_hdf(path, key="meta", mode="w")
    with h5py.File(path, "a") as f:
        ds = f.create_dataset("filter", shape=(n_filters, 9), dtype="<f8")
        for start in range(0, n_filters, len(pool)):
            stop = min(n_filters, start + len(pool))
            ds[start:stop] = pool[: stop - start]


def run_import(path: Path, sha: str, out: Path) -> dict:
    from cnn_filter_db import config
    from cnn_filter_db.dataset import layout
    from cnn_filter_db.import_original import import_original

    (out / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", out / "catalog")
    t = time.perf_counter()
    report = import_original(path, sha, out, cache_dir=out / "cache")
    dt = time.perf_counter() - t
    assert not report.failed, report.failed[:3]
    size = sum(p.stat().st_size for p in layout.list_shards(out / config.RELEASE_DIR))
    return {"seconds": dt, "bytes": size, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_plain(path: Path, out: Path) -> dict:
    import h5py
    import pandas as pd
    import pyarrow.parquet as pq

    from cnn_filter_db.dataset import writer as shards

    t = time.perf_counter()
    meta = pd.read_hdf(path, "meta")  # our own synthetic file: no pin needed
    writer = None
    with h5py.File(path, "r") as f:
        ds = f["filter"]
        for lid, (text, model) in enumerate(zip(meta["filter_ids"], meta["model"])):
            a, b = (int(x) for x in text.split(":"))
            w = np.asarray(ds[a:b + 1], np.float32).reshape(1, b + 1 - a, 3, 3)
            for batch in shards.filter_batches(model, lid, w, 1 << 30):
                writer = writer or pq.ParquetWriter(out / "plain.parquet", batch.schema)
                writer.write_batch(batch)
    writer.close()
    dt = time.perf_counter() - t
    return {"seconds": dt, "bytes": (out / "plain.parquet").stat().st_size,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_subprocess(mode: str, path: Path, sha: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--_mode", mode, "--_file", str(path), "--_sha", sha],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bench_import: the {mode} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(n: int, tmp: Path) -> dict:
    from cnn_filter_db.hashing import sha256_file

    path = tmp / f"original-{n}.h5"
    write_synthetic(path, n)
    t = time.perf_counter()
    sha = sha256_file(path)
    hash_s = time.perf_counter() - t
    imp = in_subprocess("import", path, sha)
    plain = in_subprocess("plain", path, sha)
    path.unlink()
    return {"import": imp, "plain": plain, "hash_s": hash_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filters", type=float, default=5e7)
    ap.add_argument("--_mode", choices=["import", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("--_file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_sha", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._mode:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            r = run_import(args._file, args._sha, Path(tmp)) if args._mode == "import" else run_plain(args._file, Path(tmp))
            print(json.dumps(r))
        return
    n = int(args.filters)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        small = measure(n, Path(tmp))
        big = measure(4 * n, Path(tmp))
    imp, plain = big["import"], big["plain"]
    rate = 4 * n / imp["seconds"]
    print(json.dumps({
        "filters": n,
        "import_per_s": round(rate),
        "import_per_s_without_hash": round(4 * n / (imp["seconds"] - big["hash_s"])),
        "plain_per_s": round(4 * n / plain["seconds"]),
        "ratio": round(plain["seconds"] / imp["seconds"], 3),
        "hash_s": round(big["hash_s"], 1),
        "bytes_per_filter": round(imp["bytes"] / (4 * n), 2),
        "plain_bytes_per_filter": round(plain["bytes"] / (4 * n), 2),
        "peak_rss_mb": round(small["import"]["peak_rss_mb"], 1),
        "peak_rss_mb_4n": round(imp["peak_rss_mb"], 1),
        "rss_ratio_4n_vs_n": round(imp["peak_rss_mb"] / small["import"]["peak_rss_mb"], 3),
        "projected_original_min": round(ORIGINAL_FILTERS / rate / 60, 1),
    }))


if __name__ == "__main__":
    main()
