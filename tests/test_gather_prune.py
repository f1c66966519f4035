"""``extract.gather(prune_orphans=True)``: the shards and metadata of a model no longer in
the index go through ``writer.remove_model``: renamed to a hidden name before being deleted
(a crash half-way leaves no visible half-deleted folder), and what earlier crashed writes of
that model left beside it goes too. Expected folder listings are written out by hand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import atomic, extract
from cnn_filter_db.dataset import writer


def _model(release: Path, meta: Path, model_id: str, value: float) -> None:
    row = {"model_id": model_id, "layer_id": 0, "out_channels": 2, "in_channels_per_group": 1, "n_filters": 2}
    writer.write_model(release, meta, {"model_id": model_id, "n_layers": 1, "n_filters": 2}, [row],
                       [writer.Layer(row, np.full((2, 1, 3, 3), value, np.float32))])


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def two_models(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    _model(release, meta, "keep", 1.0)
    _model(release, meta, "gone", 2.0)
    return release, meta


def test_pruning_removes_the_orphan_and_what_its_crashed_runs_left(two_models):
    release, meta = two_models
    # what a killed write and a killed removal of the orphan left beside it
    (release / "filters" / ".gone.k1ll3d.tmp").mkdir()
    (release / "filters" / ".gone.removed").mkdir()
    (meta / ".gone.x.tmp").mkdir()
    models, layers = extract.gather(meta, release, ["keep"], prune_orphans=True)
    assert models["model_id"].to_pylist() == ["keep"] and layers["model_id"].to_pylist() == ["keep"]
    assert _names(release / "filters") == ["keep"]
    assert _names(meta) == ["keep"]
    assert pq.read_table(release / "models").column("model_id").to_pylist() == ["keep"]


def test_a_pruning_interrupted_half_way_leaves_no_visible_half_deleted_folder(two_models, monkeypatch):
    release, meta = two_models
    real = atomic._remove

    def fail_on_removed(path):  # the deletion of the renamed-away folder fails half-way
        if Path(path).name.endswith(".removed"):
            (Path(path) / "gone-00000-of-00001.parquet").unlink(missing_ok=True)
            raise OSError("interrupted")
        real(path)

    monkeypatch.setattr(atomic, "_remove", fail_on_removed)
    with pytest.raises(OSError, match="interrupted"):
        extract.gather(meta, release, ["keep"], prune_orphans=True)
    monkeypatch.setattr(atomic, "_remove", real)
    assert _names(release / "filters") == [".gone.removed", "keep"]  # hidden: no reader sees it
    extract.gather(meta, release, ["keep"], prune_orphans=True)
    assert _names(release / "filters") == ["keep"]
    assert _names(meta) == ["keep"]
