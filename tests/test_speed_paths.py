"""The faster paths write what the plain ones wrote: the shard writer's background thread
(same bytes as writing each row group in the caller, errors of either side raised, nothing
left behind), figures drawn in worker processes (same PNG bytes as drawn here), and the
analysis passes mapped largest shard first (same index order for joining fragments)."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis import plots
from cnn_filter_db.analysis.basis import BasisReducer
from cnn_filter_db.analysis.engine import shard_items
from cnn_filter_db.analysis.render import Renderer
from cnn_filter_db.dataset import layout, schema, writer


def _layers(rng, shapes):
    out = []
    for lid, (o, i) in enumerate(shapes):
        w = rng.standard_normal((o, i, 3, 3)).astype(np.float32)
        out.append(writer.Layer({"layer_id": lid, "n_filters": o * i}, w))
    return out


def _by_hand(folder: Path, model_id: str, layers, max_rows: int, group: int) -> list[Path]:
    """The shards written the plain way: one table of every row, cut at shard and row-group
    boundaries, each piece written in this thread with the package's options."""
    batches = [b for layer in layers
               for b in writer.filter_batches(model_id, layer.row["layer_id"], layer.weight, 1 << 30)]
    table = pa.Table.from_batches(batches, schema=schema.FILTERS_SCHEMA)
    n = table.num_rows
    n_shards = -(-n // max_rows)
    folder.mkdir(parents=True)
    paths = []
    for k in range(n_shards):
        path = folder / layout.shard_name(model_id, k, n_shards)
        part = table.slice(k * max_rows, max_rows)
        with pq.ParquetWriter(path, schema.FILTERS_SCHEMA, **schema.parquet_options(schema.FILTERS_SCHEMA)) as w:
            for s in range(0, part.num_rows, group):
                w.write_table(part.slice(s, group), row_group_size=group)
        paths.append(path)
    return paths


def _sha(paths):
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def test_threaded_writer_writes_the_bytes_of_a_plain_write(tmp_path):
    rng = np.random.default_rng(3)
    layers = _layers(rng, [(16, 3), (32, 16), (64, 32), (8, 1), (40, 40)])
    n = sum(layer.row["n_filters"] for layer in layers)  # 48 + 512 + 2048 + 8 + 1600 = 4216
    params = {"max_rows_per_shard": 1500, "row_group_rows": 400}
    got = writer.write_filters(tmp_path / "threaded", "m", iter(layers), params=params, n_rows=n)
    want = _by_hand(tmp_path / "plain", "m", layers, 1500, 400)
    assert [p.name for p in got] == [p.name for p in want] == [layout.shard_name("m", k, 3) for k in range(3)]
    assert _sha(got) == _sha(want)
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in got] == [4, 4, 4]  # 1500 = 3 x 400 + 300


def test_a_failing_layer_source_stops_the_writer_and_leaves_nothing(tmp_path):
    rng = np.random.default_rng(4)
    layers = _layers(rng, [(64, 64), (64, 64), (64, 64)])

    def source():
        yield from layers[:2]
        raise ValueError("the third layer cannot be read")

    before = threading.active_count()
    with pytest.raises(ValueError, match="third layer"):
        writer.write_filters(tmp_path / "f", "m", source(), params={"row_group_rows": 1000}, n_rows=3 * 4096)
    assert not (tmp_path / "f").exists() and list(tmp_path.iterdir()) == []
    assert threading.active_count() == before  # the writer thread ended


def test_an_error_in_the_writer_thread_reaches_the_caller(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    w = writer.FilterShardWriter(folder, "m", 5000, 10_000, 1000)
    folder.rmdir()  # the first shard cannot be created
    rng = np.random.default_rng(5)
    w_layer = rng.standard_normal((50, 100, 3, 3)).astype(np.float32)
    with pytest.raises(OSError):
        for batch in writer.filter_batches("m", 0, w_layer, 1000):
            w.write(batch)
        w.close()
    w.abort()
    assert not w._thread.is_alive()


def _basis(seed: int):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((500, 9))
    return BasisReducer.from_moments(np.concatenate([[len(f)], f.sum(axis=0), (f.T @ f).ravel()])[None]).basis()


def test_figures_drawn_in_workers_are_the_figures_drawn_here(tmp_path):
    bases = [_basis(s) for s in range(3)]
    for where, workers in (("here", 1), ("pool", 2)):
        (tmp_path / where).mkdir()
        r = Renderer(workers)
        try:
            for k, b in enumerate(bases):
                r.draw(plots.eigen_images, b, tmp_path / where / f"e{k}.png", f"basis {k}")
            r.wait()
        finally:
            r.close()
    names = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert names == ["e0.png", "e1.png", "e2.png"] == sorted(p.name for p in (tmp_path / "pool").iterdir())
    assert _sha(sorted((tmp_path / "here").iterdir())) == _sha(sorted((tmp_path / "pool").iterdir()))


def test_a_figure_that_fails_in_a_worker_is_an_error_here(tmp_path):
    r = Renderer(2)
    try:
        r.draw(plots.eigen_images, _basis(0), tmp_path / "missing-folder" / "e.png")
        with pytest.raises(FileNotFoundError):
            r.wait()
    finally:
        r.close()


def test_shards_are_mapped_largest_first_with_their_path_order_index(tmp_path):
    rng = np.random.default_rng(6)
    sizes = {"a": [(8, 8)], "b": [(64, 64)], "c": [(16, 16)]}
    for model_id, shapes in sizes.items():
        writer.write_filters(tmp_path / "filters" / model_id, model_id, _layers(rng, shapes))
    items = shard_items(tmp_path)
    assert [(i, Path(p).parent.name) for i, p in items] == [(1, "b"), (2, "c"), (0, "a")]


def test_map_in_workers_returns_the_calls_results_in_order():
    args = [(np.arange(k, k + 5, dtype=np.float64), 3) for k in range(7)]
    here = Renderer(1).map(np.round, args)
    r = Renderer(2)
    try:
        there = r.map(np.round, args)
    finally:
        r.close()
    assert [a.tolist() for a in there] == [a.tolist() for a in here] == [list(range(k, k + 5)) for k in range(7)]
