"""One streaming iterator over the (model, layer) runs of filter shards.

Within a shard, rows are sorted by (layer_id, out_channel, in_channel) (SPEC.md section
4), so each layer is one contiguous run. :func:`iter_runs` reads a shard in record
batches (decoded one ahead in a background thread: Parquet decoding releases the GIL, so it
overlaps the caller's numpy work) and cuts each batch into runs of equal (model_id,
layer_id). The validation scan and the analysis passes both read shards through it; memory
is bounded by a couple of batches, whatever the shard's size.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FormatError
from ..params import RunOptions
from . import integrity, layout
from .shard import open_shard

#: Batches decoded ahead of the consumer.
PREFETCH = 1
KEYS = ("model_id", "layer_id")
_END = object()


def _ints(column) -> np.ndarray:
    """An integer key column as int64 (nulls, possible only in a malformed shard, as -1)."""
    return pc.fill_null(column, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


@dataclass
class RunBatch:
    """One record batch of a filter shard, cut into runs of equal (model_id, layer_id).

    ``model`` holds per row a code into ``model_ids`` (-1 for a null), ``layer`` the
    layer_id (-1 for a null); run ``j`` covers rows ``starts[j]:stops[j]``.
    """

    batch: pa.RecordBatch
    model_ids: list[str]
    model: np.ndarray
    layer: np.ndarray
    starts: np.ndarray
    stops: np.ndarray

    @classmethod
    def of(cls, batch: pa.RecordBatch) -> "RunBatch":
        mid = batch.column("model_id")
        if not isinstance(mid, pa.DictionaryArray):
            mid = pc.cast(mid, pa.string()).dictionary_encode()
        names = [str(v) for v in mid.dictionary.to_pylist()]
        codes = _ints(mid.indices)
        if len(set(names)) != len(names):  # a dictionary may repeat a value: one code a name
            first = {}
            lut = np.array([first.setdefault(v, i) for i, v in enumerate(names)] + [-1], dtype=np.int64)
            codes = lut[codes]
        layer = _ints(batch.column("layer_id"))
        n = batch.num_rows
        cut = np.flatnonzero((codes[1:] != codes[:-1]) | (layer[1:] != layer[:-1])) + 1
        starts = np.concatenate(([0], cut)).astype(np.int64) if n else np.zeros(0, np.int64)
        stops = np.concatenate((cut, [n])).astype(np.int64) if n else np.zeros(0, np.int64)
        return cls(batch, names, codes, layer, starts, stops)

    def __len__(self) -> int:
        return self.batch.num_rows

    def keys(self) -> list[tuple[str | None, int]]:
        """(model_id, layer_id) of each run (None for a null model_id)."""
        return [(self.model_ids[m] if m >= 0 else None, int(lid))
                for m, lid in zip(self.model[self.starts].tolist(), self.layer[self.starts].tolist())]

    def weights(self) -> np.ndarray:
        """The (n, 9) float32 weights, without a copy."""
        return self.batch.column("weights").flatten().to_numpy(zero_copy_only=False).reshape(-1, 9)

    def ints(self, column: str) -> np.ndarray:
        """An integer column (``out_channel``, ``in_channel``) as int64, nulls as -1."""
        return _ints(self.batch.column(column))


def iter_runs(path: Path, columns: list[str], batch_rows: int = RunOptions.batch_rows,
              prefetch: int = PREFETCH, use_threads: bool = True, *, verify: bool = True) -> Iterator[RunBatch]:
    """The batches of one filter shard, each cut into (model, layer) runs.

    ``columns`` are read (``model_id`` and ``layer_id`` always); page checksums are verified,
    and an unreadable shard or a missing column is a :class:`FormatError` naming the shard.
    ``use_threads``: decode a batch's columns in Arrow's thread pool.
    ``verify``: check the shard's sha256 against the manifest.json of its release folder,
    when it has one (:mod:`.integrity`); callers that verified the release's shards already
    (the scan, the analysis passes) pass False.
    """
    release_dir = layout.release_of_filter_shard(path)
    if verify and release_dir is not None:
        integrity.verify(release_dir, [path])
    pf = open_shard(path)
    columns = list(dict.fromkeys([*KEYS, *columns]))
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise FormatError(f"{path}: filter shard without the columns {missing}")
    if pf.metadata.num_rows == 0:
        return
    for batch in _ahead(pf.iter_batches(batch_size=batch_rows, columns=columns, use_threads=use_threads),
                        prefetch, path):
        yield RunBatch.of(batch)


def _ahead(batches: Iterator[pa.RecordBatch], prefetch: int, path: Path) -> Iterator[pa.RecordBatch]:
    """``batches`` decoded up to ``prefetch`` ahead in a thread (errors re-raised here)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def put(item) -> bool:
        """Queue an item unless the consumer has gone (then never block on a full queue)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except (OSError, pa.ArrowException) as exc:
            put(FormatError(f"{path}: cannot be read: {exc}"))
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name=f"read {Path(path).name}", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
