"""The small tables of a release (``layers``, ``models``) and the group labels of each layer.

The filter shards carry only (model_id, layer_id); everything a grouping needs is joined
from these two tables, which hold one row a layer and one row a model, so they are read
whole. Layers are kept in (model_id, layer_id) order: that order indexes every per-layer
array of the analysis.

A grouping is ``depth_decile``, or the name of a ``layers`` column (e.g. ``conv_kind``), or
of a ``models`` column (e.g. ``task``, ``trained``). Labels are strings (booleans as
``true``/``false``); a null label leaves the layer out of that grouping.

Depth deciles are cut as the original's notebook cuts them (``pd.cut`` of
``conv_depth_norm`` at 0, 0.1, ..., 1.0 with ``include_lowest``): decile k holds
``k/10 < conv_depth_norm <= (k+1)/10``, closed on the right, and the first also holds 0;
labels ``[0.0, 0.1]``, ``(0.1, 0.2]``, ..., ``(0.9, 1.0]``, the original's. A layer exactly on
a boundary (e.g. depth 3 of 10 levels: 0.3) belongs to the lower decile. ``conv_depth_norm``
is stored as float32 (float32(0.3) is 0.300000012), so values within 1e-6 of a boundary are
snapped onto it first: the stored value's nearest decimal boundary is the exact ratio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..dataset.reader import read_table
from ..dataset.schema import LAYERS_SCHEMA, MODELS_SCHEMA
from ..errors import AnalysisError
from .population import Population

DEPTH_DECILE = "depth_decile"
#: The original's labels of the depth deciles.
DEPTH_DECILE_LABELS = ["[0.0, 0.1]"] + [f"({k / 10:.1f}, {(k + 1) / 10:.1f}]" for k in range(1, 10)]
_SNAP = 1e-6
_KEYS = ("model_id", "layer_id")


@dataclass
class Grouping:
    """One grouping: group names, and each layer's group code (-1 = not in the grouping)."""

    name: str
    names: list[str]
    codes: np.ndarray


@dataclass
class Labels:
    """The ``layers`` and ``models`` tables joined, indexed by layer row."""

    layers: pa.Table          # sorted by (model_id, layer_id)
    models: pa.Table          # sorted by model_id
    model_ids: list[str]
    model_of_layer: np.ndarray  # layer row -> models row
    n_filters: np.ndarray
    out_channels: np.ndarray
    layer_ids: np.ndarray
    index: dict[str, dict[int, int]]  # model_id -> layer_id -> layer row

    @property
    def n_layers(self) -> int:
        return self.layers.num_rows

    def key(self, row: int) -> tuple[str, int]:
        return self.model_ids[self.model_of_layer[row]], int(self.layer_ids[row])

    def population(self, name: str) -> Population:
        """The models of population ``name`` and the controls (see :mod:`.population`)."""
        return Population(name, self.model_ids, self.models.column("training").to_pylist(),
                          self.models.column("near_initialisation").to_pylist(), self.model_of_layer)

    def grouping(self, name: str) -> Grouping:
        if name == DEPTH_DECILE:
            depth = self.layers.column("conv_depth_norm").to_numpy(zero_copy_only=False)
            return Grouping(name, list(DEPTH_DECILE_LABELS), depth_decile_codes(depth))
        if name in self.layers.column_names and name not in _KEYS:
            values = _labels(self.layers.column(name))
        elif name in self.models.column_names and name != "model_id":
            per_model = _labels(self.models.column(name))
            values = [per_model[i] for i in self.model_of_layer]
        else:
            options = sorted({DEPTH_DECILE, *self.layers.column_names, *self.models.column_names} - set(_KEYS))
            raise AnalysisError(f"params.yaml analyze.groupings: unknown grouping {name!r}; choose from {options}")
        names = sorted({v for v in values if v is not None})
        code_of = {v: i for i, v in enumerate(names)}
        codes = np.array([code_of[v] if v is not None else -1 for v in values], dtype=np.int32)
        return Grouping(name, names, codes)


def depth_decile_codes(depth) -> np.ndarray:
    """The decile (0-9) of each ``conv_depth_norm``, -1 for null or outside [0, 1]."""
    x = np.asarray(depth, dtype=np.float64)
    tenths = np.round(x * 10)
    x = np.where(np.abs(x * 10 - tenths) < _SNAP * 10, tenths / 10, x)
    cut = pd.cut(x, np.arange(11) / 10, include_lowest=True, labels=False)
    return np.where(np.isnan(cut), -1, cut).astype(np.int32)


def _labels(column) -> list[str | None]:
    out = []
    for v in column.to_pylist():
        if v is None:
            out.append(None)
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        else:
            out.append(str(v))
    return out


def load_labels(release_dir: Path, *, verify: bool = True) -> Labels:
    """Read and join the ``layers`` and ``models`` tables of a release; ``verify``: check
    their shards' sha256 against the folder's manifest.json, when it has one."""
    layers = read_table(release_dir, "layers", schema=LAYERS_SCHEMA, verify=verify)
    models = read_table(release_dir, "models", schema=MODELS_SCHEMA, verify=verify)
    layers = layers.sort_by([("model_id", "ascending"), ("layer_id", "ascending")])
    models = models.sort_by([("model_id", "ascending")])
    model_ids = models.column("model_id").to_pylist()
    if len(set(model_ids)) != len(model_ids):
        raise AnalysisError(f"{release_dir}/models: duplicate model_id rows")
    pos = {m: i for i, m in enumerate(model_ids)}
    layer_models = layers.column("model_id").to_pylist()
    unknown = sorted(set(layer_models) - set(pos))
    if unknown:
        raise AnalysisError(f"{release_dir}/layers: model_id {unknown[:5]} not in the models table")
    model_of_layer = np.array([pos[m] for m in layer_models], dtype=np.int64)
    layer_ids = layers.column("layer_id").to_numpy().astype(np.int64)
    index: dict[str, dict[int, int]] = {}
    for row, (m, lid) in enumerate(zip(layer_models, layer_ids.tolist())):
        if lid in index.setdefault(m, {}):
            raise AnalysisError(f"{release_dir}/layers: ({m}, layer_id {lid}) appears twice")
        index[m][lid] = row
    n_filters = layers.column("n_filters").to_numpy().astype(np.int64)
    out_channels = layers.column("out_channels").to_numpy().astype(np.int64)
    in_channels = pc.fill_null(layers.column("in_channels_per_group"), 0).to_numpy().astype(np.int64)
    bad = np.flatnonzero(n_filters != out_channels * in_channels)
    if len(bad):
        m, lid = layer_models[bad[0]], int(layer_ids[bad[0]])
        raise AnalysisError(f"{release_dir}/layers: ({m}, layer {lid}): n_filters != out_channels * in_channels_per_group")
    return Labels(layers, models, model_ids, model_of_layer, n_filters, out_channels, layer_ids, index)
