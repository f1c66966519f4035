"""One streaming pass over the filter shards of a release, reduced to one row a layer.

Great Expectations on a pandas frame of every filter does not fit in memory for a billion
filters, so the ``filters`` suite runs on this per-layer summary instead. The pass reads
shard by shard through ``dataset.runs.iter_runs`` (batches of ``batch_rows`` rows cut into
(model, layer) runs): memory is bounded by a few batches, not by the number of filters.
Each shard's sha256 is checked against the release's manifest.json when it has one
(``verify``; the DVC validate stage opts out: its folder's manifest is the previous build's).

Within a model, rows are sorted by (layer_id, out_channel, in_channel) (SPEC.md section
4), so uniqueness and completeness are checked by comparing each row with the previous
one: a row equal to the previous one is a duplicate, a smaller one is out of order, and a
layer is complete when every key of its out_channels x in_channels_per_group grid occurs
once. (Counts of duplicates and missing keys are exact while the order holds; when it
does not, ``unordered_keys`` says so.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from .dataset import layout
from .dataset.shard import shard_schema
from .dataset.runs import RunBatch, iter_runs
from .dataset.schema import FILTERS_SCHEMA
from .params import RunOptions
from .progress import bar as progress_bar

#: Per-layer counters, in the order they are kept.
COUNTS = ("rows", "non_finite", "duplicate_keys", "unordered_keys", "out_of_range_keys",
          "distinct_keys", "misplaced_rows", "malformed_rows")
#: Per-layer extrema: max |w| over finite weights, and the range of the channel indices.
EXTREMA = ("max_abs", "out_channel_min", "out_channel_max", "in_channel_min", "in_channel_max")
_MAX = {"max_abs", "out_channel_max", "in_channel_max"}

Key = tuple[str, int]
_KEY_COLUMNS = ["model_id", "layer_id", "out_channel", "in_channel"]


_ONES9 = np.ones(9, dtype=np.float32)
_BITS = 21  # channel and layer indices below 2**21 pack into one int64 key


def _compare_with_previous(model, layer, out, inn, prev: tuple | None) -> np.ndarray:
    """For each row, the sign of (its key - the previous row's key): 0 a duplicate, -1 out
    of order. The first row compares with ``prev`` (the last row of the previous batch);
    a change of model starts a new sequence (+1)."""
    p_model, p_layer, p_out, p_in = prev if prev is not None else (-2, 0, 0, 0)
    lo = min(layer.min(), out.min(), inn.min(), p_layer, p_out, p_in)
    hi = max(layer.max(), out.max(), inn.max(), p_layer, p_out, p_in)
    if lo >= 0 and hi < (1 << _BITS):  # the usual case: one packed key, one difference
        key = (layer << (2 * _BITS)) | (out << _BITS) | inn
        cmp = np.sign(np.diff(key, prepend=(p_layer << (2 * _BITS)) | (p_out << _BITS) | p_in))
    else:  # corrupt indices (negative or huge): compare field by field
        d_layer, d_out, d_in = (np.sign(np.diff(a, prepend=p)) for a, p in ((layer, p_layer), (out, p_out), (inn, p_in)))
        cmp = np.where(d_layer != 0, d_layer, np.where(d_out != 0, d_out, d_in))
    cmp[np.diff(model, prepend=p_model) != 0] = 1
    return cmp


def _weight_stats(w: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: does it hold a NaN or an inf. Per run of rows: max |w| over finite weights."""
    n = len(w)
    # a row sum is non-finite when the row holds a NaN or an inf (or when huge finite values
    # overflow: the few suspects are checked exactly); a matrix-vector product is fast
    suspect = np.flatnonzero(~np.isfinite(w @ _ONES9))
    non_finite = np.zeros(n, dtype=bool)
    if len(suspect):
        non_finite[suspect] = ~np.isfinite(w[suspect]).all(axis=1)
    bounds = np.append(starts, n)
    if len(starts) > max(16, n >> 10):  # many short runs (unsorted data): per-row maxima
        finite_abs = np.abs(np.where(np.isfinite(w), w, 0))
        return non_finite, np.maximum.reduceat(finite_abs.max(axis=1), starts).astype(np.float64)
    run_max = np.empty(len(starts))
    for j in range(len(starts)):
        block = w[bounds[j]:bounds[j + 1]]
        m = max(float(block.max()), -float(block.min()))  # whole-block reductions: vectorised
        if not np.isfinite(m):
            finite = block[np.isfinite(block)]
            m = float(np.abs(finite).max()) if finite.size else -np.inf
        run_max[j] = m
    return non_finite, run_max


class FilterScan:
    """Accumulates the per-layer summary of filter shards, shard by shard.

    Parameters
    ----------
    shapes : mapping (model_id, layer_id) -> (out_channels, in_channels_per_group)
        The grid each layer of the ``layers`` table promises; keys outside it are counted
        as out of range, and keys of it never seen as missing.

    Examples
    --------
    >>> scan = FilterScan({("m", 0): (64, 3)})            # doctest: +SKIP
    >>> scan.add_model_dir(Path("dist/cnn-filter-db/filters/m")).frame()
    """

    def __init__(self, shapes: Mapping[Key, tuple[int, int]], batch_rows: int = RunOptions.batch_rows):
        self.shapes = dict(shapes)
        self.batch_rows = batch_rows
        self.counts_: dict[Key, np.ndarray] = {}
        self.extrema_: dict[Key, np.ndarray] = {}
        self.shards_ = 0
        self.rows_ = 0
        self._model_codes: dict[str, int] = {}
        self._model_names: list[str] = []

    # ---------------------------------------------------------------- accumulation

    def _code(self, model_id: str) -> int:
        if model_id not in self._model_codes:
            self._model_codes[model_id] = len(self._model_names)
            self._model_names.append(model_id)
        return self._model_codes[model_id]

    def add_model_dir(self, directory: Path, *, verify: bool = True) -> "FilterScan":
        """Scan every shard of one model folder (``filters/<model_id>/``), in shard order:
        the sort order runs on from one shard into the next; ``verify`` as in :func:`scan_filters`."""
        directory = Path(directory)
        prev = None
        for path in layout.model_shards(directory.parent.parent, directory.name):
            prev = self.add_shard(path, directory.name, prev, verify=verify)
        return self

    def add_shard(self, path: Path, model_id: str, prev: tuple | None = None, *, verify: bool = True) -> tuple | None:
        """Scan one shard, batch by batch; returns the last key, for the next shard.

        A shard whose schema is not FILTERS_SCHEMA still has its keys checked, but all its
        rows count as malformed and their weights are not read.
        """
        well_formed = shard_schema(path).remove_metadata().equals(FILTERS_SCHEMA)
        columns = [f.name for f in FILTERS_SCHEMA] if well_formed else _KEY_COLUMNS
        folder_code = self._code(model_id)
        # one decoding thread: the scan's numpy work is the bottleneck, not the decoding
        for runs in iter_runs(path, columns, self.batch_rows, use_threads=False, verify=verify):
            prev = self._add_runs(runs, folder_code, prev, well_formed)
        self.shards_ += 1
        pa.default_memory_pool().release_unused()  # keep the footprint flat from shard to shard
        return prev

    def _add_runs(self, runs: RunBatch, folder_code: int, prev: tuple | None, well_formed: bool) -> tuple | None:
        n = len(runs)
        if n == 0:
            return prev
        self.rows_ += n
        lut = np.array([self._code(name) for name in runs.model_ids] + [-1], dtype=np.int64)
        model = lut[runs.model]  # a null model_id maps to -1 (the lut's last entry)
        layer, out, inn = runs.layer, runs.ints("out_channel"), runs.ints("in_channel")

        # order: compare each row with the previous one (sign of the key difference)
        cmp = _compare_with_previous(model, layer, out, inn, prev)

        # runs of one (model, layer); sorted data has one run a layer in the batch
        starts = runs.starts
        lengths = runs.stops - runs.starts
        if well_formed:
            non_finite, run_max = _weight_stats(runs.weights(), starts)
        else:  # weights not read: nothing to count, and no max (-inf becomes null)
            non_finite, run_max = np.zeros(n, dtype=bool), np.full(len(starts), -np.inf)

        run_key = (model[starts] << 32) | (layer[starts] & 0xFFFFFFFF)
        _, first, inv = np.unique(run_key, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        keys = [(self._model_names[m] if m >= 0 else "", int(l))
                for m, l in zip(model[starts][first], layer[starts][first])]
        grid = np.array([self.shapes.get(k, (-1, -1)) for k in keys], dtype=np.int64).reshape(-1, 2)
        group = np.repeat(inv, lengths)
        oc, ic = grid[group, 0], grid[group, 1]
        in_range = (out >= 0) & (out < oc) & (inn >= 0) & (inn < ic)  # False for unknown layers
        out_of_range = (oc >= 0) & ~in_range

        nk = len(keys)
        counts = np.stack([
            np.bincount(inv, weights=lengths, minlength=nk).astype(np.int64),
            np.bincount(group[non_finite], minlength=nk),
            np.bincount(group[cmp == 0], minlength=nk),
            np.bincount(group[cmp < 0], minlength=nk),
            np.bincount(group[out_of_range], minlength=nk),
            np.bincount(group[in_range & (cmp != 0)], minlength=nk),
            np.bincount(group[model != folder_code], minlength=nk),
            np.full(nk, 0) if well_formed else np.bincount(inv, weights=lengths, minlength=nk).astype(np.int64),
        ], axis=1)
        extrema = np.full((nk, len(EXTREMA)), np.nan)
        for j, (name, values) in enumerate(zip(EXTREMA, (None, out, out, inn, inn))):
            ufunc = np.maximum if name in _MAX else np.minimum
            per_run = run_max if values is None else ufunc.reduceat(values, starts)
            acc = np.full(nk, -np.inf if name in _MAX else np.inf)
            ufunc.at(acc, inv, per_run.astype(np.float64))
            extrema[:, j] = acc
        for k, c, e in zip(keys, counts, extrema):
            if k in self.counts_:
                self.counts_[k] += c
                old = self.extrema_[k]
                self.extrema_[k] = np.where([n in _MAX for n in EXTREMA], np.fmax(old, e), np.fmin(old, e))
            else:
                self.counts_[k] = c.astype(np.int64)
                self.extrema_[k] = e
        return int(model[-1]), int(layer[-1]), int(out[-1]), int(inn[-1])

    # ---------------------------------------------------------------- result

    def frame(self) -> pd.DataFrame:
        """One row a layer: every layer of ``shapes`` (with zero rows when no filter was
        seen) and every (model_id, layer_id) seen in the shards.

        Columns: model_id, layer_id, in_layers, out_channels, in_channels_per_group,
        grid_filters, the COUNTS, missing_keys (grid_filters - distinct_keys), the EXTREMA.
        Columns that need the layer's grid are null for a layer missing from ``layers``.
        """
        keys = sorted(set(self.shapes) | set(self.counts_), key=lambda k: (k[0], k[1]))
        zeros = np.zeros(len(COUNTS), dtype=np.int64)
        empty = np.full(len(EXTREMA), np.nan)
        rows = []
        for k in keys:
            known = k in self.shapes
            oc, ic = self.shapes.get(k, (np.nan, np.nan))
            c = dict(zip(COUNTS, self.counts_.get(k, zeros).tolist()))
            e = dict(zip(EXTREMA, self.extrema_.get(k, empty).tolist()))
            # -inf: a layer seen only in malformed shards (weights not read)
            e = {n: (v if np.isfinite(v) else np.nan) for n, v in e.items()}
            grid = oc * ic if known else np.nan
            rows.append({
                "model_id": k[0], "layer_id": k[1], "in_layers": known,
                "out_channels": oc, "in_channels_per_group": ic, "grid_filters": grid,
                **c,
                "out_of_range_keys": c["out_of_range_keys"] if known else np.nan,
                "missing_keys": grid - c["distinct_keys"] if known else np.nan,
                **e,
            })
        columns = ["model_id", "layer_id", "in_layers", "out_channels", "in_channels_per_group", "grid_filters",
                   *COUNTS, "missing_keys", *EXTREMA]
        return pd.DataFrame(rows, columns=columns)


def scan_filters(release_dir: Path, shapes: Mapping[Key, tuple[int, int]],
                 batch_rows: int = RunOptions.batch_rows, *, verify: bool = True) -> FilterScan:
    """Scan the filter shards of every model of a release folder. ``verify``: check each
    shard's sha256 against the folder's manifest.json, when it has one, before reading it."""
    scan = FilterScan(shapes, batch_rows)
    for model_id in progress_bar(layout.filter_models(release_dir), desc="validate: scan the filters", unit="model"):
        prev = None
        for path in layout.model_shards(release_dir, model_id):
            prev = scan.add_shard(path, model_id, prev, verify=verify)
    return scan
