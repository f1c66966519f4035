"""Benchmark of ``validate_release`` on a synthetic release of N filters.

The release is written first, in a child process (so that the writer's memory does not
count), with realistic 3x3 layer shapes (ResNet stages and MobileNet depthwise layers),
through ``dataset.writer.write_filters`` and gather-like ``models`` / ``layers`` tables. Then this
process validates it and prints one JSON line last:

    {"filters": ..., "filters_per_s": ..., "peak_rss_mb": ..., ...}

``filters_per_s`` is the streaming pass over the filter shards (the part that grows with
N); ``filters_per_s_total`` divides by the whole validation, including Great
Expectations' fixed cost of a few seconds. Targets: 50 million filters a minute
(833,333/s); ``peak_rss_mb`` within 1.25x between N and 4N.

    python benchmarks/bench_validate.py --filters 2000000
    python benchmarks/bench_validate.py --filters 8000000
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

#: (out_channels, in_channels_per_group) of the 3x3 layers, cycled through model after model.
SHAPES = [(32, 3), (64, 64), (64, 64), (128, 128), (128, 128), (256, 256), (256, 256), (512, 512), (512, 512),
          (96, 1), (144, 1), (192, 1), (384, 1), (576, 1), (960, 1)]
FILTERS_PER_MODEL = 4_000_000


def build(release: Path, n_filters: int, seed: int = 0) -> dict:
    """Write a synthetic release of about ``n_filters`` filters into ``release``."""
    from cnn_filter_db.dataset import schema, writer

    rng = np.random.default_rng(seed)
    models, layer_rows = [], []
    left, m = n_filters, 0
    while left > 0:
        model_id = f"synthetic-{m:04d}"
        budget, layers, i = min(left, FILTERS_PER_MODEL), [], 0
        while budget > 0:
            out_c, in_c = SHAPES[i % len(SHAPES)]
            out_c = min(out_c, -(-budget // in_c))  # the model's last layer is trimmed to the budget
            kind = "depthwise" if in_c == 1 and i else "dense"
            row = {"model_id": model_id, "layer_id": i, "layer_name": f"conv{i}", "conv_depth": i,
                   "conv_depth_norm": 0.0, "out_channels": out_c, "in_channels_per_group": in_c,
                   "groups": out_c if kind == "depthwise" else 1, "conv_kind": kind, "n_filters": out_c * in_c}
            weight = (rng.standard_normal((out_c, in_c, 3, 3), dtype=np.float32) * 0.05)
            layers.append(writer.Layer(row, weight))
            budget -= out_c * in_c
            i += 1
        for layer in layers:
            layer.row["conv_depth_norm"] = layer.row["conv_depth"] / max(1, len(layers) - 1)
        writer.write_filters(release / "filters" / model_id, model_id, layers)
        n = sum(layer.row["n_filters"] for layer in layers)
        layer_rows += [layer.row for layer in layers]
        models.append({
            "model_id": model_id, "name": f"Synthetic {m}", "architecture": "synthetic", "family": "other",
            "source_kind": "timm", "source_uri": f"timm://synthetic/{m}",
            "weights_sha256": hashlib.sha256(model_id.encode()).hexdigest(), "format": "safetensors",
            "task": "classification", "visual_category": "none", "training_dataset": "none",
            "pretraining_dataset": "none", "trained": False, "license": "Apache-2.0",
            "training_data_license": "not-applicable", "paper": None, "accuracy": None, "accuracy_metric": None,
            "accuracy_split": None, "validation_accuracy": None, "n_layers": len(layers), "n_filters": n,
            "catalog_sha256": hashlib.sha256(b"catalog" + model_id.encode()).hexdigest(),
            "framework_versions": "{}",
        })
        left -= n
        m += 1
    writer.write_table(pa.Table.from_pylist(models, schema=schema.MODELS_SCHEMA), release, "models")
    writer.write_table(pa.Table.from_pylist(layer_rows, schema=schema.LAYERS_SCHEMA), release, "layers")
    return {"filters": int(sum(r["n_filters"] for r in layer_rows)), "layers": len(layer_rows), "models": len(models)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filters", type=float, required=True, help="number of filters (e.g. 2e6)")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary folder, removed)")
    ap.add_argument("--manifest", action="store_true", help="write and check a manifest too (hashes every shard)")
    ap.add_argument("--data-docs", action="store_true", help="build Data Docs too")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="project root")
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    n = int(args.filters)

    if args.build_only:  # the child process: write the release, report what it wrote
        print(json.dumps(build(args.build_only, n)))
        return 0

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-validate-"))
    release = work / "dist" / "cnn-filter-db"
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--filters", str(n), "--build-only", str(release)],
                              check=True, capture_output=True, text=True)
        built = json.loads(proc.stdout.splitlines()[-1])
        build_s = time.perf_counter() - t0
        if args.manifest:
            from cnn_filter_db.dataset import manifest
            manifest.write_manifest(release, manifest.build_manifest(release, "0.0.0-bench", "0" * 64, {}))
        print(f"built {built['filters']:,} filters in {built['layers']} layers of {built['models']} models "
              f"in {build_s:.1f} s", file=sys.stderr)

        from cnn_filter_db.validate import validate_release

        t0 = time.perf_counter()
        result = validate_release(release, work / "reports", root=args.root, data_docs=args.data_docs)
        seconds = time.perf_counter() - t0
        print(result.summary(), file=sys.stderr)
        if not result.success:
            raise SystemExit("the synthetic release should validate")
        scan_s = result.stats["scan_seconds"]
        print(json.dumps({
            "filters": result.stats["filters"],
            "filters_per_s": round(result.stats["filters"] / scan_s),
            "filters_per_s_total": round(result.stats["filters"] / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "scan_seconds": scan_s,
            "validate_seconds": round(seconds, 3),
            "layers": built["layers"],
            "shards": result.stats["shards"],
            "manifest": args.manifest,
        }))
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
