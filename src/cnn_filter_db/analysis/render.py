"""Where the drift matrices and the figures of the analysis are computed: in worker processes.

The drift of each grouping (bootstrap and size-controlled draws included) is one task of
:meth:`Renderer.map`, run side by side. Drawing a figure is pure-Python work in matplotlib (ticks, text layout, the Agg raster) and
holds the GIL, so threads would not overlap it. With ``workers`` > 1 the figures are drawn by
a pool of ``workers`` processes, forked when the analysis starts (before any reading thread
or Dask client exists, and with matplotlib already imported, so a worker costs a fork, not
an import), while this process writes the tables, CSV and JSON files. Each figure is one
task: a function of :mod:`.plots` with its (small) inputs, pickled; the PNG it writes is the
one this process would have written. With one worker, or where ``fork`` is not available,
the figures are drawn here, one after the other.

Nothing here changes what is computed or drawn: only where and when.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable


class Renderer:
    """Runs output tasks in a process pool, or here: :meth:`map` (results in order) and
    :meth:`draw` (figures; :meth:`wait` for them)."""

    def __init__(self, workers: int):
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future] = []
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            self._pool.submit(int)  # forks the workers now, while this process has no other threads

    def draw(self, fn: Callable, *args) -> None:
        if self._pool is None:
            fn(*args)
        else:
            self._pending.append(self._pool.submit(fn, *args))

    def map(self, fn: Callable, args: list[tuple]) -> list:
        """``[fn(*a) for a in args]``, the calls side by side in the workers."""
        if self._pool is None:
            return [fn(*a) for a in args]
        futures = [self._pool.submit(fn, *a) for a in args]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def wait(self) -> None:
        """Every figure asked for is written (the first error of a worker is raised here)."""
        pending, self._pending = self._pending, []
        try:
            for fut in pending:
                fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
