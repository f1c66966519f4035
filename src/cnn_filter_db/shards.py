"""The Arrow schemas of the published tables, the Parquet writers, and the manifest.

This module is the one source of truth for column names, types and Parquet options.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import config
from .atomic import atomic_dir
from .hashing import sha256_file  # noqa: F401  (re-exported: shards.sha256_file)

FILTERS_SCHEMA = pa.schema([
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("layer_id", pa.int32(), nullable=False),
    pa.field("out_channel", pa.int32(), nullable=False),
    pa.field("in_channel", pa.int32(), nullable=False),
    pa.field("weights", pa.list_(pa.field("element", pa.float32(), nullable=False), 9), nullable=False),
])

LAYERS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("layer_id", pa.int32()),
    ("layer_name", pa.string()),
    ("conv_depth", pa.int32()),
    ("conv_depth_norm", pa.float32()),
    ("out_channels", pa.int32()),
    ("in_channels_per_group", pa.int32()),
    ("groups", pa.int32()),
    ("conv_kind", pa.string()),
    ("n_filters", pa.int64()),
])

#: ``layer_stats`` (written by the analysis): the ``layers`` columns, then the metrics of
#: SPEC.md section 5 (null where undefined: H of one filter, O of one output channel).
LAYER_STATS_SCHEMA = pa.schema(list(LAYERS_SCHEMA) + [
    ("sparsity", pa.float64()),
    ("variance_entropy", pa.float64()),
    ("variance_entropy_norm", pa.float64()),
    ("variance_entropy_clean", pa.float64()),
    ("orthogonality", pa.float64()),
    ("weight_mean", pa.float64()),
    ("weight_std", pa.float64()),
    ("weight_absmax", pa.float64()),
    ("is_random_like", pa.bool_()),
    ("is_low_diversity_sparse", pa.bool_()),
    ("is_degenerate", pa.bool_()),
])

MODELS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("name", pa.string()),
    ("architecture", pa.string()),
    ("family", pa.string()),
    ("source_kind", pa.string()),
    ("source_uri", pa.string()),
    ("weights_sha256", pa.string()),
    ("format", pa.string()),
    ("task", pa.string()),
    ("visual_category", pa.string()),
    ("training_dataset", pa.string()),
    ("pretraining_dataset", pa.string()),
    ("trained", pa.bool_()),
    ("license", pa.string()),
    ("training_data_license", pa.string()),
    ("paper", pa.string()),
    ("accuracy", pa.float64()),
    ("accuracy_metric", pa.string()),
    ("accuracy_split", pa.string()),
    ("validation_accuracy", pa.float64()),
    ("n_layers", pa.int32()),
    ("n_filters", pa.int64()),
    ("catalog_sha256", pa.string()),
    ("framework_versions", pa.string()),  # JSON object: package -> version
])

WEIGHTS_LEAF = "weights.list.element"


def parquet_options(schema: pa.Schema) -> dict:
    """Writer options: zstd and a page index; byte-stream-split, no dictionary and
    content-defined pages on the weights."""
    names = [f.name for f in schema]
    opts = dict(compression=config.COMPRESSION, compression_level=config.COMPRESSION_LEVEL,
                write_page_index=config.PAGE_INDEX)
    if "weights" in names:
        opts["use_dictionary"] = [n for n in names if n != "weights"]
        opts["use_byte_stream_split"] = [WEIGHTS_LEAF]
        opts["use_content_defined_chunking"] = config.CONTENT_DEFINED_CHUNKING
    return opts


def shard_name(prefix: str, i: int, n: int) -> str:
    return f"{prefix}-{i:05d}-of-{n:05d}.parquet"


def string_column(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` n times, built from buffers (no Python objects)."""
    b = np.frombuffer(value.encode(), dtype=np.uint8)
    offsets = np.arange(0, (n + 1) * len(b), len(b), dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.tile(b, n)))


def filter_batches(model_id: str, layer_id: int, weight: np.ndarray, max_rows: int) -> Iterator[pa.RecordBatch]:
    """Rows of one layer, (out, in_per_group, 3, 3) -> record batches of at most max_rows,
    in (out_channel, in_channel) order; weights row-major k[0,0], k[0,1], ..., k[2,2]."""
    out_c, in_c = weight.shape[:2]
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    n = out_c * in_c
    for start in range(0, n, max_rows):
        stop = min(n, start + max_rows)
        k = stop - start
        idx = np.arange(start, stop, dtype=np.int32)
        out_ch, in_ch = np.divmod(idx, np.int32(in_c))
        cols = [
            string_column(model_id, k),
            pa.array(np.full(k, layer_id, dtype=np.int32)),
            pa.array(out_ch),
            pa.array(in_ch),
            pa.FixedSizeListArray.from_arrays(pa.array(flat[start * 9:stop * 9]), 9),
        ]
        yield pa.RecordBatch.from_arrays(cols, schema=FILTERS_SCHEMA)


class FilterShardWriter:
    """Writes one model's filters as ``<model_id>-0000i-of-0000n.parquet`` shards.

    The number of rows is known up front (from the layer shapes), so the shard count is
    fixed before the first byte. Rows are buffered to one row group at a time: memory is
    bounded by the row-group size, not by the number of filters.
    """

    def __init__(self, directory: Path, model_id: str, n_rows: int,
                 max_rows_per_shard: int = config.MAX_ROWS_PER_SHARD,
                 row_group_rows: int = config.ROW_GROUP_ROWS):
        self.directory = Path(directory)
        self.model_id = model_id
        self.n_rows = n_rows
        self.row_group_rows = min(row_group_rows, max_rows_per_shard)
        self.max_rows_per_shard = max_rows_per_shard
        self.n_shards = max(1, math.ceil(n_rows / max_rows_per_shard))
        self._shard = -1
        self._in_shard = 0
        self._written = 0
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.paths: list[Path] = []

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._shard += 1
        self._in_shard = 0
        path = self.directory / shard_name(self.model_id, self._shard, self.n_shards)
        self.paths.append(path)
        self._writer = pq.ParquetWriter(path, FILTERS_SCHEMA, **parquet_options(FILTERS_SCHEMA))

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=FILTERS_SCHEMA)
        self._pending, self._pending_rows = [], 0
        offset = 0
        while offset < table.num_rows:
            if self._writer is None or self._in_shard == self.max_rows_per_shard:
                self._open_next()
            take = min(table.num_rows - offset, self.max_rows_per_shard - self._in_shard)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.row_group_rows)
            self._in_shard += take
            self._written += take
            offset += take

    def write(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            room = self.row_group_rows - self._pending_rows
            # a row group never spans two shards: stop the buffer at the shard boundary too
            to_boundary = self.max_rows_per_shard - ((self._written + self._pending_rows) % self.max_rows_per_shard)
            take = min(batch.num_rows, room, to_boundary)
            self._pending.append(batch.slice(0, take))
            self._pending_rows += take
            batch = batch.slice(take)
            if self._pending_rows == self.row_group_rows or take == to_boundary:
                self._flush()

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is None:  # a model without 3x3 filters still gets its (empty) shard
            self._open_next()
        self._writer.close()
        if self._written != self.n_rows:
            raise ValueError(f"{self.model_id}: wrote {self._written} filter rows, expected {self.n_rows}")
        if self._shard + 1 != self.n_shards:
            raise ValueError(f"{self.model_id}: wrote {self._shard + 1} shards, expected {self.n_shards}")
        return self.paths


def write_table_dir(table: pa.Table, directory: Path, prefix: str = "train") -> Path:
    """A small table as the only shard of its config folder (``<dir>/train-00000-of-00001``)."""
    with atomic_dir(directory) as tmp:
        pq.write_table(table, tmp / shard_name(prefix, 0, 1), **parquet_options(table.schema))
    return Path(directory) / shard_name(prefix, 0, 1)


# --------------------------------------------------------------------------- manifest

def list_shards(release_dir: Path) -> list[Path]:
    """Every Parquet shard of a release folder, sorted by relative path."""
    release_dir = Path(release_dir)
    return sorted((p for p in release_dir.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(release_dir).parts)),
                  key=lambda p: p.relative_to(release_dir).as_posix())


def fingerprint(shard_sha256s: Iterable[str]) -> str:
    """sha256 over the sorted list of every shard's sha256 (SPEC.md section 4)."""
    return hashlib.sha256("\n".join(sorted(shard_sha256s)).encode()).hexdigest()


def build_manifest(release_dir: Path, version: str, catalog_sha256: str, versions: dict[str, str]) -> dict:
    release_dir = Path(release_dir)
    shards = []
    for p in list_shards(release_dir):
        shards.append({
            "path": p.relative_to(release_dir).as_posix(),
            "sha256": sha256_file(p),
            "rows": pq.ParquetFile(p).metadata.num_rows,
            "bytes": p.stat().st_size,
        })
    return {
        "name": "cnn-filter-db",
        "version": version,
        "fingerprint": fingerprint(s["sha256"] for s in shards),
        "catalog_sha256": catalog_sha256,
        "versions": versions,
        "shards": shards,
    }


def write_manifest(release_dir: Path, manifest: dict) -> Path:
    from .atomic import atomic_write_text

    path = Path(release_dir) / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
