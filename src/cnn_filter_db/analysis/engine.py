"""The three streaming passes over the filter shards, run here or on a Dask cluster.

Each pass is a function of one shard (``pass_layers``, ``pass_range``, ``pass_hist``) that
reads the shard in record batches cut into (model, layer) runs (``dataset.runs.iter_runs``, ``batch_rows`` rows at a
time) and returns a small partial result; the caller merges partial results (per-layer
rows, min/max, histogram counts), so the same code runs in this process (``engine:
local``) or as one Dask task a shard (``engine: dask``). Nothing a pass keeps grows with
the number of filters: a pass holds one batch, and pass 1 also the rows of the layer it is
assembling.

Bounds and choices:

- Per-layer metrics need a whole layer (sparsity's threshold is the layer's max, and
  orthogonality needs every output channel). Rows are sorted by (layer_id, out, in), so a
  layer is a contiguous run; pass 1 gathers the run across batches, so its memory is
  bounded by the largest layer, about three times its float32 size (the rows, the unit
  rows of orthogonality, per-filter norms and maxima; a 2048 x 2048 layer: ~450 MB), plus
  the batches in flight (``batch_rows``, one decoded ahead), whatever the number of filters.
- ``workers`` shards run side by side (threads locally, processes on Dask), each with one
  BLAS thread, so the bound above holds per worker.
- A layer may span two (or more) shards, which happens only in models of more than
  ``MAX_ROWS_PER_SHARD`` filters. A task cannot finish such a layer, so it returns the
  layer's rows as a *fragment* (at most the first and last layer of a shard); the caller
  joins the fragments in shard order and measures the layer. Passes 2 and 3 need no such
  care: their per-layer results (min/max, counts) add up across shards.
- The merge is independent of the order in which tasks finish: per-layer rows are stored
  by layer row and summed in layer order, min/max and integer counts commute. So the
  Dask and local engines give the same numbers.
"""
from __future__ import annotations

import functools
import logging
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..dataset import layout
from ..dataset.runs import RunBatch, iter_runs
from ..errors import AnalysisError
from ..params import AnalyzeParams, RunOptions
from . import drift
from .layer import CHUNK_ROWS, MOMENTS_LEN, layer_stats


@dataclass
class Context:
    """What every shard task needs: one small row a layer, the params, and the basis."""

    index: dict[str, dict[int, int]]
    n_filters: np.ndarray
    out_channels: np.ndarray
    params: AnalyzeParams
    batch_rows: int                           # rows read at a time (a run option)
    mean: np.ndarray | None = None            # passes 2-3: global basis
    components: np.ndarray | None = None
    ranges: list[tuple[float, float]] = field(default_factory=list)  # pass 3: distinct ranges
    half: np.ndarray | None = None            # (n_layers,) bool: also count the null's half A


def _one_blas_thread(fn: Callable, item, ctx):
    """Run a shard task with one BLAS thread (see :class:`DaskEngine`)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return fn(item, ctx)


# --------------------------------------------------------------------------- reading

def shard_items(release_dir: Path) -> list[tuple[int, str]]:
    """(index, path) of every filter shard of a release: the items the passes are mapped over.

    The index numbers the shards in a fixed order (model folder, then shard number), which is
    the order fragments of a layer are joined in. The items come largest file first
    (longest-processing-time-first): the last tasks to start are the small ones, so the
    workers finish together instead of one idling while the other reads a big shard. The
    merge does not depend on the order tasks run or finish in (see the module docstring).
    """
    paths = layout.list_shards(release_dir, "filters")
    if not paths:
        raise AnalysisError(f"{layout.table_dir(release_dir, 'filters')}: no filter shards; run the extract stage first")
    items = [(i, str(p), p.stat().st_size) for i, p in enumerate(paths)]
    return [(i, p) for i, p, _ in sorted(items, key=lambda it: (-it[2], it[0]))]


def _runs(runs: RunBatch, ctx: Context, path: str) -> list[tuple[int, int, int, str, int]]:
    """(start, stop, layer row, model_id, layer_id) of each (model, layer) run of a batch."""
    out = []
    for s, e, (model, layer) in zip(runs.starts.tolist(), runs.stops.tolist(), runs.keys()):
        try:
            row = ctx.index[model][layer]
        except KeyError:
            raise AnalysisError(f"{path}: filter rows of ({model}, layer_id {layer}) have no row in the "
                                f"layers table; re-run the gather stage") from None
        out.append((s, e, row, model, layer))
    return out


# --------------------------------------------------------------------------- pass 1

def measure(weights: np.ndarray, row: int, ctx: Context) -> tuple[dict, np.ndarray]:
    p = ctx.params
    return layer_stats(weights, int(ctx.out_channels[row]), p.sparsity_eps, p.random_like_margin,
                       p.low_diversity_entropy, p.low_diversity_sparsity)


def pass_layers(item: tuple[int, str], ctx: Context) -> dict:
    """Pass 1 on one shard: the metrics and basis moments of every layer it completes.

    Returns ``{"shard", "rows", "metrics", "moments", "fragments", "filters"}``; fragments
    are ``(layer row, shard index, weights)`` of layers that continue in another shard.
    """
    shard, path = item
    rows, metrics, moms, fragments = [], [], [], []
    seen: set[int] = set()
    filters = 0

    def finish(row: int, key: tuple[str, int], parts: list[np.ndarray], at_start: bool, at_end: bool) -> None:
        name = f"({key[0]}, layer_id {key[1]})"
        if row in seen:
            raise AnalysisError(f"{path}: the rows of {name} are not contiguous; filter shards must be "
                                f"sorted by (layer_id, out_channel, in_channel)")
        seen.add(row)
        got, expected = sum(len(x) for x in parts), int(ctx.n_filters[row])
        if got == expected:
            w = parts[0] if len(parts) == 1 else np.concatenate(parts)
            m, mom = measure(w, row, ctx)
            rows.append(row)
            metrics.append(m)
            moms.append(mom)
        elif got < expected and (at_start or at_end):
            # the layer goes on in the previous or next shard: the caller joins the pieces
            fragments.append((row, shard, np.concatenate(parts) if len(parts) > 1 else parts[0].copy()))
        else:
            raise AnalysisError(f"{path}: {name} has {got} filter rows here, the layers table says "
                                f"{expected}; re-run its extract stage")

    pending: list[np.ndarray] = []
    pending_row, pending_key, pending_at_start, first = -1, ("", -1), False, True
    for batch in iter_runs(path, ["weights"], ctx.batch_rows, verify=False):  # analyze verified
        w = batch.weights()
        filters += len(w)
        for s, e, row, model, layer in _runs(batch, ctx, path):
            if row == pending_row:
                pending.append(w[s:e])
                continue
            if pending_row >= 0:
                finish(pending_row, pending_key, pending, pending_at_start, False)
            pending, pending_row, pending_key, pending_at_start = [w[s:e]], row, (model, layer), first
            first = False
    if pending_row >= 0:
        finish(pending_row, pending_key, pending, pending_at_start, True)
    return {"shard": shard, "rows": np.array(rows, dtype=np.int64), "metrics": metrics,
            "moments": np.array(moms).reshape(-1, MOMENTS_LEN), "fragments": fragments,
            "filters": filters}


# --------------------------------------------------------------------------- passes 2-3

def coefficients_t(w: np.ndarray, vt: np.ndarray, mu_v: np.ndarray) -> np.ndarray:
    """float32 ``((w / max|w|) - mu) V^T`` of raw (m, 9) filters, transposed to (9, m).

    Zero filters give ``-mu V^T``. The (9, m) layout makes the per-filter max and the
    later element-wise steps run on contiguous rows (see ``CHUNK_ROWS``).
    """
    wt = w.T.astype(np.float32, order="C")
    absmax = np.abs(wt).max(axis=0)
    y = vt.T @ wt
    y /= np.where(absmax > 0, absmax, np.float32(1))
    y -= mu_v[:, None]
    return y


def _projection(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    vt = np.ascontiguousarray(ctx.components.T, dtype=np.float32)
    mu_v = (ctx.mean @ ctx.components.T).astype(np.float32)
    return vt, mu_v


def _chunks(start: int, stop: int):
    for s in range(start, stop, CHUNK_ROWS):
        yield s, min(stop, s + CHUNK_ROWS)


def pass_range(item: tuple[int, str], ctx: Context) -> dict:
    """Pass 2 on one shard: min and max coefficient of each layer (over all 9 coefficients)."""
    shard, path = item
    vt, mu_v = _projection(ctx)
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for batch in iter_runs(path, ["weights"], ctx.batch_rows, verify=False):  # analyze verified
        w = batch.weights()
        for s, e, row, _, _ in _runs(batch, ctx, path):
            for a, b in _chunks(s, e):
                c = coefficients_t(w[a:b], vt, mu_v)
                cmin, cmax = float(c.min()), float(c.max())
                lo[row] = min(cmin, lo.get(row, cmin))
                hi[row] = max(cmax, hi.get(row, cmax))
    return {"shard": shard, "lo": lo, "hi": hi}


def pass_hist(item: tuple[int, str], ctx: Context) -> dict:
    """Pass 3 on one shard: per layer, the coefficient histograms (9 x bins counts) of all its
    filters over each distinct range and, for the layers in ``ctx.half``, of the half of its
    filters that the null's hash split puts in half A (:func:`.drift.half_a`).

    Returns ``{"shard", "full": {row: (R, 9 * bins)}, "half": {row: (R, 9 * bins)}}`` for R
    distinct ranges (``ctx.ranges``).
    """
    shard, path = item
    p = ctx.params
    bins = p.bins
    k = 9 * bins
    vt, mu_v = _projection(ctx)
    offsets = (np.arange(9, dtype=np.int32) * bins)[:, None]
    half_on = ctx.half is not None and bool(ctx.half.any())
    plans = []  # per range: the affine map of a coefficient to a fractional bin
    for lo, hi in ctx.ranges:
        plans.append((np.float32(lo), np.float32(bins / (hi - lo)) if hi > lo else np.float32(0)))
    columns = ["weights"] + (["out_channel", "in_channel"] if half_on else [])
    full: dict[int, np.ndarray] = {}
    half: dict[int, np.ndarray] = {}
    for batch in iter_runs(path, columns, ctx.batch_rows, verify=False):  # analyze verified
        w = batch.weights()
        if half_on:
            oc = batch.batch.column("out_channel").to_numpy(zero_copy_only=False)
            ic = batch.batch.column("in_channel").to_numpy(zero_copy_only=False)
        for s, e, row, model, layer in _runs(batch, ctx, path):
            h_full = full.setdefault(row, np.zeros((len(plans), k), np.int64))
            split = half_on and bool(ctx.half[row])
            if split:
                h_half = half.setdefault(row, np.zeros((len(plans), k), np.int64))
                key = drift.layer_key(p.seed, model, layer)
            for a, b in _chunks(s, e):
                c = coefficients_t(w[a:b], vt, mu_v)
                in_a = drift.half_a(key, oc[a:b], ic[a:b]) if split else None
                for r, (lo, scale) in enumerate(plans):
                    z = c - lo
                    z *= scale
                    codes = z.astype(np.int32)
                    np.clip(codes, 0, bins - 1, out=codes)
                    codes += offsets
                    h_full[r] += np.bincount(codes.ravel(), minlength=k)
                    if split:
                        h_half[r] += np.bincount(codes[:, in_a].ravel(), minlength=k)
    return {"shard": shard, "full": full, "half": half}


# --------------------------------------------------------------------------- engines

class LocalEngine:
    """Runs the shard tasks in this process, ``workers`` shards at a time (threads).

    The heavy steps (Parquet decoding, numpy on whole arrays, BLAS) release the GIL, so
    threads overlap well. BLAS itself is held to one thread: the products are small (9x9)
    or one layer's Gram matrix, where idle BLAS threads spin and cost more than they give;
    parallelism comes from shards side by side instead.
    """

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))

    def map(self, fn: Callable, items: Iterable, ctx: Context) -> Iterator:
        from threadpoolctl import threadpool_limits

        items = list(items)
        with threadpool_limits(1, user_api="blas"):
            if self.workers == 1 or len(items) < 2:
                for item in items:
                    yield fn(item, ctx)
                return
            with ThreadPoolExecutor(self.workers, thread_name_prefix="analyze") as pool:
                pending = set()
                todo = iter(items)
                # keep at most `workers` shards in flight: memory stays a few shards' worth
                for item in todo:
                    pending.add(pool.submit(fn, item, ctx))
                    if len(pending) >= self.workers:
                        break
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        nxt = next(todo, None)
                        if nxt is not None:
                            pending.add(pool.submit(fn, nxt, ctx))
                        yield fut.result()

    def close(self) -> None:
        pass


class DaskEngine:
    """One Dask task a shard on the cluster at ``scheduler``, or on a LocalCluster of
    ``workers`` single-threaded processes. Each task runs with one BLAS thread."""

    def __init__(self, scheduler: str | None, workers: int):
        from distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self._cluster)

    def map(self, fn: Callable, items: Iterable, ctx: Context) -> Iterator:
        from distributed import as_completed

        shared = self.client.scatter(ctx, broadcast=True, hash=False)
        futures = self.client.map(functools.partial(_one_blas_thread, fn), list(items), ctx=shared, pure=False)
        try:
            for future, result in as_completed(futures, with_results=True):
                future.release()
                yield result
        finally:
            self.client.cancel(futures)
            del shared

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_engine(run: RunOptions):
    if run.engine == "dask":
        return DaskEngine(run.scheduler, run.workers)
    return LocalEngine(run.workers)
