"""Time the routes from a release to a numpy array of one model's filters.

    python benchmarks/bench_load.py RELEASE_DIR [MODEL_ID] [--slow]

The fast routes (``load_filters``, ``load_model``, the ``weights`` column through Arrow) and,
with ``--slow``, the per-row routes of ``datasets`` users reach for first. Each figure is the
best of ``--repeat`` runs (the slow ones run once). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("release")
    ap.add_argument("model_id", nargs="?", default="easyocr-craft-mlt-25k")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow", action="store_true", help="also the per-row datasets routes (minutes)")
    args = ap.parse_args()

    import datasets

    from cnn_filter_db import load_filters, load_layer, load_model

    rows = []
    t, (weights, keys) = timed(lambda: load_filters(args.release, models=args.model_id), args.repeat)
    n = len(weights)
    rows.append(("`load_filters(release, models=MODEL)`", t, weights.shape))
    t, model = timed(lambda: load_model(args.model_id, args.release), args.repeat)
    rows.append(("`load_model(MODEL, release)`", t, f"{len(model)} layers"))
    largest = max(model, key=lambda k: model[k].size)
    t, layer = timed(lambda: load_layer(args.model_id, largest, args.release), args.repeat)
    rows.append((f"`load_layer(MODEL, {largest}, release)`", t, layer.shape))
    reference = weights

    with tempfile.TemporaryDirectory() as cache:
        def load():
            return datasets.load_dataset(args.release, split="train", cache_dir=cache,
                                         filters=[("model_id", "==", args.model_id)], columns=["weights"])

        t, ds = timed(load, 1)
        rows.append(("`load_dataset(release, filters=[MODEL])` (first call: builds its Arrow cache)", t, f"{ds.num_rows:,} rows"))

        def arrow():
            col = ds.with_format("arrow")["weights"]
            return np.asarray(col.combine_chunks().flatten()).reshape(-1, 3, 3)

        t, got = timed(arrow, args.repeat)
        np.testing.assert_array_equal(got, reference)
        rows.append(('`ds.with_format("arrow")["weights"]` flattened', t, got.shape))
        if args.slow:
            t, got = timed(lambda: np.array(ds["weights"], dtype=np.float32).reshape(-1, 3, 3), 1)
            np.testing.assert_array_equal(got, reference)
            rows.append(('`np.array(ds["weights"])`', t, got.shape))
            t, got = timed(lambda: np.asarray(ds.with_format("numpy")["weights"]).reshape(-1, 3, 3), 1)
            np.testing.assert_array_equal(got, reference)
            rows.append(('`np.asarray(ds.with_format("numpy")["weights"])`', t, got.shape))

    print(f"{args.model_id}: {n:,} filters\n")
    print("| route | seconds | result |\n|---|---|---|")
    for name, t, what in rows:
        print(f"| {name} | {t:.2f} | {what} |")


if __name__ == "__main__":
    main()
