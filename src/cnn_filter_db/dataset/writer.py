"""Write the tables of a release: the filter shards of a model, its metadata rows, and the
small tables (one shard each). Every write goes to a temporary folder renamed into place."""
from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_dirs, remove_dir
from ..params import ExtractParams
from . import layout
from .shard import read_shard
from .schema import FILTERS_SCHEMA, LAYERS_SCHEMA, MODELS_SCHEMA, parquet_options

#: The per-model metadata files of the build folder (``build/meta/<model_id>/``).
META_MODEL = "model.parquet"
META_LAYERS = "layers.parquet"


def string_column(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` n times, built from buffers (no Python objects)."""
    b = np.frombuffer(value.encode(), dtype=np.uint8)
    if n * len(b) > np.iinfo(np.int32).max:
        raise ValueError(f"{value!r} x {n} rows: more than 2 GiB of text in one string column; write smaller batches")
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(b))
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
    fixed before the first byte. Rows are buffered to one row group at a time and each
    full row group is handed to a writer thread: Parquet encoding and compression release
    the GIL, so the caller builds the next row group (reading and converting the next
    layers) while the last one is written. Memory is bounded by the row-group size, not by
    the number of filters: one group being filled, one queued, one being written. The
    bytes written are those of writing each row group here, in the same order.
    """

    #: Row groups handed over and not yet taken by the writer thread.
    QUEUED = 1

    def __init__(self, directory: Path, model_id: str, n_rows: int, max_rows_per_shard: int, row_group_rows: int):
        self.directory = Path(directory)
        self.model_id = model_id
        self.n_rows = n_rows
        self.row_group_rows = min(row_group_rows, max_rows_per_shard)
        self.max_rows_per_shard = max_rows_per_shard
        self.n_shards = max(1, math.ceil(n_rows / max_rows_per_shard))
        # the writer thread's state
        self._shard = -1
        self._in_shard = 0
        self._written = 0
        self._writer: pq.ParquetWriter | None = None
        self.paths: list[Path] = []
        # the caller's state
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._handed = 0
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"write {model_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        try:
            while True:
                table = self._queue.get()
                if table is None:
                    break
                self._write_group(table)
        except BaseException as exc:  # handed to the caller by _put / close
            self._error = exc
            while self._queue.get() is not None:  # unblock the caller until it stops
                pass

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._shard += 1
        self._in_shard = 0
        path = self.directory / layout.shard_name(self.model_id, self._shard, self.n_shards)
        self.paths.append(path)
        self._writer = pq.ParquetWriter(path, FILTERS_SCHEMA, **parquet_options(FILTERS_SCHEMA))

    def _write_group(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None or self._in_shard == self.max_rows_per_shard:
                self._open_next()
            take = min(table.num_rows - offset, self.max_rows_per_shard - self._in_shard)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.row_group_rows)
            self._in_shard += take
            self._written += take
            offset += take

    # ------------------------------------------------------------------ caller

    def _put(self, item) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self.model_id}: the shard writer thread stopped") from self._error

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=FILTERS_SCHEMA)
        self._pending, self._pending_rows = [], 0
        self._handed += table.num_rows
        self._put(table)

    def write(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            room = self.row_group_rows - self._pending_rows
            # a row group never spans two shards: stop the buffer at the shard boundary too
            to_boundary = self.max_rows_per_shard - ((self._handed + self._pending_rows) % self.max_rows_per_shard)
            take = min(batch.num_rows, room, to_boundary)
            self._pending.append(batch.slice(0, take))
            self._pending_rows += take
            batch = batch.slice(take)
            if self._pending_rows == self.row_group_rows or take == to_boundary:
                self._flush()

    def _stop(self) -> None:
        """Let the writer thread finish what it was handed, and end it."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def abort(self) -> None:
        """Stop after a failure of the caller (the shards are left to the caller's temporary folder)."""
        self._pending, self._pending_rows = [], 0
        self._stop()
        if self._writer is not None:
            self._writer.close()

    def close(self) -> list[Path]:
        try:
            self._flush()
        except BaseException:
            self.abort()
            raise
        self._stop()
        if self._error is not None:
            raise self._error
        if self._writer is None:  # a model without 3x3 filters still gets its (empty) shard
            self._open_next()
        self._writer.close()
        if self._written != self.n_rows:
            raise ValueError(f"{self.model_id}: wrote {self._written} filter rows, expected {self.n_rows}")
        if self._shard + 1 != self.n_shards:
            raise ValueError(f"{self.model_id}: wrote {self._shard + 1} shards, expected {self.n_shards}")
        return self.paths


def write_table(table: pa.Table, release_dir: Path, name: str, prefix: str = "train") -> Path:
    """A small table as the only shard of its config folder (``<name>/train-00000-of-00001``),
    replacing the folder whole."""
    folder = layout.table_dir(release_dir, name)
    with atomic_dirs(folder) as tmp:
        pq.write_table(table, tmp / layout.shard_name(prefix, 0, 1), **parquet_options(table.schema))
    return folder / layout.shard_name(prefix, 0, 1)


@dataclass
class Layer:
    """One 3x3 conv layer to write: its row of the ``layers`` table and its weights
    (out, in_per_group, 3, 3)."""

    row: dict
    weight: np.ndarray


def _write_shards(folder: Path, model_id: str, layers: Iterable[Layer], n_rows: int, progress,
                  params: ExtractParams) -> list[Path]:
    writer = FilterShardWriter(folder, model_id, n_rows, params.max_rows_per_shard, params.row_group_rows)
    try:
        for layer in layers:
            for batch in filter_batches(model_id, layer.row["layer_id"], layer.weight, params.row_group_rows):
                writer.write(batch)
            if progress is not None:
                progress.update(layer.row["n_filters"])
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def write_filters(directory: Path, model_id: str, layers: Iterable[Layer], progress=None,
                  params: ExtractParams | Mapping | None = None, n_rows: int | None = None) -> list[Path]:
    """Write the filters of ``layers`` as the shards of ``directory`` (replaced whole);
    ``params`` sets the shard and row-group sizes (the ``extract`` group).

    ``layers`` may be a generator (pass ``n_rows``, which fixes the shard count up front):
    only one layer and one row group are held at a time.
    """
    if n_rows is None:
        layers = list(layers)
        n_rows = sum(layer.row["n_filters"] for layer in layers)
    with atomic_dirs(directory) as tmp:
        names = [p.name for p in _write_shards(tmp, model_id, layers, n_rows, progress, ExtractParams.of(params))]
    return [Path(directory) / n for n in names]


def write_model(release_dir: Path, meta_dir: Path, model: dict, layer_rows: list[dict],
                layers: Iterable[Layer], progress=None, params: ExtractParams | Mapping | None = None) -> Path:
    """A model's filter shards (``<release>/filters/<id>/``) and its metadata rows
    (``<meta_dir>/<id>/``), written under temporary names and committed together: if
    anything fails, before or during the swap, both keep their previous content; if the
    process is killed, the next write or clean of either path finishes the pair, all old
    or all new (see :mod:`cnn_filter_db.atomic`).
    ``layers`` may be a generator: one layer is held at a time."""
    model_id = model["model_id"]
    filters_dir = layout.model_dir(release_dir, model_id)
    with atomic_dirs(filters_dir, Path(meta_dir) / layout.check_model_id(model_id)) as (ftmp, mtmp):
        _write_shards(ftmp, model_id, layers, model["n_filters"], progress, ExtractParams.of(params))
        pq.write_table(pa.Table.from_pylist([model], schema=MODELS_SCHEMA), mtmp / META_MODEL,
                       **parquet_options(MODELS_SCHEMA))
        pq.write_table(pa.Table.from_pylist(layer_rows, schema=LAYERS_SCHEMA), mtmp / META_LAYERS,
                       **parquet_options(LAYERS_SCHEMA))
    return filters_dir


def remove_model(release_dir: Path, model_id: str, meta_dir: Path | None = None) -> bool:
    """Remove a model's filter shards, and its metadata rows when ``meta_dir`` is given;
    False when neither was there. Each folder is renamed to a hidden name first, so a crash
    never leaves a half-deleted folder visible (and the next call clears what it left)."""
    removed = remove_dir(layout.model_dir(release_dir, model_id))
    if meta_dir is not None:
        removed = remove_dir(Path(meta_dir) / layout.check_model_id(model_id)) or removed
    return removed


def read_meta(meta_dir: Path, model_ids: list[str]) -> tuple[pa.Table, pa.Table]:
    """The ``models`` and ``layers`` rows that :func:`write_model` left for ``model_ids``."""
    folders = [Path(meta_dir) / layout.check_model_id(m) for m in sorted(model_ids)]
    models = pa.concat_tables([read_shard(f / META_MODEL).cast(MODELS_SCHEMA) for f in folders])
    layers = pa.concat_tables([read_shard(f / META_LAYERS).cast(LAYERS_SCHEMA) for f in folders])
    return models, layers


def meta_models(meta_dir: Path) -> list[str]:
    """The model folders of the build folder that hold a complete metadata pair."""
    meta_dir = Path(meta_dir)
    if not meta_dir.is_dir():
        return []
    return sorted(p.name for p in meta_dir.iterdir()
                  if p.is_dir() and not layout.is_hidden(p.name) and (p / META_MODEL).exists())
