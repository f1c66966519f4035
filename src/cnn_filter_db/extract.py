"""Turn a model's convolutions into the rows of the ``layers`` and ``filters`` tables."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import config, shards
from .atomic import atomic_dir
from .catalog import Entry, entry_path
from .hashing import sha256_file
from .errors import CnnFilterDbError, FormatError
from .formats.base import Conv


@dataclass
class Layer:
    """One 3x3 conv layer: its row of the ``layers`` table and its weights."""

    row: dict
    weight: np.ndarray


def conv_kind(conv: Conv, is_first: bool, overrides: dict[str, str]) -> str:
    """dense | grouped | depthwise, by the format's facts, else by SPEC.md's one rule:
    one input channel per group is depthwise unless it is the model's first conv."""
    if conv.name in overrides:
        return overrides[conv.name]
    if conv.kind:
        return conv.kind
    in_per_group = conv.weight.shape[1]
    if conv.groups is None:
        return "depthwise" if in_per_group == 1 and not is_first else "dense"
    if conv.groups == 1:
        return "dense"
    return "depthwise" if in_per_group == 1 else "grouped"


def layers_of(model_id: str, convs: list[Conv], overrides: dict[str, str] | None = None) -> list[Layer]:
    """The 3x3 layers of a model in depth order, with depth counted over all 2-D convs."""
    overrides = overrides or {}
    unknown = set(overrides) - {c.name for c in convs}
    if unknown:
        raise FormatError(f"{model_id}: conv_kind_overrides name layers the model does not have: {sorted(unknown)}")
    levels = sorted({c.level for c in convs})
    rank = {lvl: i for i, lvl in enumerate(levels)}
    first = min(range(len(convs)), key=lambda i: (convs[i].level, i)) if convs else -1
    order = sorted(range(len(convs)), key=lambda i: (convs[i].level, i))
    layers = []
    for i in order:
        c = convs[i]
        if c.weight.ndim != 4 or c.kernel != (3, 3):
            continue
        if not np.isfinite(c.weight).all():
            bad = int((~np.isfinite(c.weight)).sum())
            raise FormatError(f"{model_id}: layer {c.name!r} holds {bad} NaN or infinite weights")
        out_c, in_c = (int(x) for x in c.weight.shape[:2])
        depth = rank[c.level]
        row = {
            "model_id": model_id,
            "layer_id": len(layers),
            "layer_name": c.name,
            "conv_depth": depth,
            "conv_depth_norm": depth / (len(levels) - 1) if len(levels) > 1 else 0.0,
            "out_channels": out_c,
            "in_channels_per_group": in_c,
            "groups": c.groups,
            "conv_kind": conv_kind(c, i == first, overrides),
            "n_filters": out_c * in_c,
        }
        layers.append(Layer(row, c.weight))
    return layers


def write_filters(directory: Path, model_id: str, layers: Iterable[Layer], progress=None,
                  max_rows_per_shard: int = config.MAX_ROWS_PER_SHARD,
                  row_group_rows: int = config.ROW_GROUP_ROWS, n_rows: int | None = None) -> list[Path]:
    """Write the filters of ``layers`` into ``directory`` (replaced whole, atomically).

    ``layers`` may be a generator (pass ``n_rows``, which fixes the shard count up front):
    only one layer and one row group are held at a time.
    """
    if n_rows is None:
        layers = list(layers)
        n_rows = sum(layer.row["n_filters"] for layer in layers)
    with atomic_dir(directory) as tmp:
        names = _write_shards(tmp, model_id, layers, n_rows, progress, max_rows_per_shard, row_group_rows)
    return [Path(directory) / n for n in names]


def _write_shards(folder: Path, model_id: str, layers: Iterable[Layer], n_rows: int, progress,
                  max_rows_per_shard: int, row_group_rows: int) -> list[str]:
    writer = shards.FilterShardWriter(folder, model_id, n_rows, max_rows_per_shard, row_group_rows)
    for layer in layers:
        for batch in shards.filter_batches(model_id, layer.row["layer_id"], layer.weight, row_group_rows):
            writer.write(batch)
        if progress is not None:
            progress.update(layer.row["n_filters"])
    return [p.name for p in writer.close()]


def model_row(entry: Entry, loaded, layers: list[Layer], root: Path = Path(".")) -> dict:
    return {
        "model_id": entry.model_id,
        "name": entry.name,
        "architecture": entry.architecture,
        "family": entry.family,
        "source_kind": entry.source.kind,
        "source_uri": loaded.uri,  # for trained models it names the profile too
        "weights_sha256": loaded.weights_sha256,
        "format": entry.format,
        "task": entry.task,
        "visual_category": entry.visual_category,
        "training_dataset": loaded.training_dataset or entry.training_dataset,  # a training profile may change it
        "pretraining_dataset": entry.pretraining_dataset,
        "trained": entry.trained,
        "license": entry.license,
        "training_data_license": entry.training_data_license,
        "paper": entry.paper,
        "accuracy": entry.accuracy if loaded.accuracy is None else loaded.accuracy,
        "accuracy_metric": entry.accuracy_metric,
        "accuracy_split": entry.accuracy_split,
        "validation_accuracy": loaded.validation_accuracy,
        "n_layers": len(layers),
        "n_filters": sum(layer.row["n_filters"] for layer in layers),
        "catalog_sha256": sha256_file(entry_path(entry.model_id, root)),
        "framework_versions": json.dumps(loaded.convs.framework_versions, sort_keys=True),
    }


def _write_meta(folder: Path, model: dict, layer_rows: list[dict]) -> None:
    """The model's rows of the ``models`` and ``layers`` tables, gathered later."""
    pq.write_table(pa.Table.from_pylist([model], schema=shards.MODELS_SCHEMA), folder / "model.parquet")
    pq.write_table(pa.Table.from_pylist(layer_rows, schema=shards.LAYERS_SCHEMA), folder / "layers.parquet")


def extract_model(entry: Entry, release_dir: Path = config.RELEASE_DIR, meta_dir: Path = config.META_DIR,
                  root: Path = Path("."), cache_dir: Path | None = None, progress: bool = True,
                  max_rows_per_shard: int = config.MAX_ROWS_PER_SHARD,
                  row_group_rows: int = config.ROW_GROUP_ROWS, source_options: dict | None = None) -> dict:
    """Fetch, read and write one model: its filter shards and its metadata rows.

    ``source_options`` go to :func:`sources.load` (for ``train`` entries: ``profile``,
    ``reports_dir``, ``hub_ids``, ...). Nothing is written unless every step succeeds; the
    previous output stays otherwise.
    """
    from tqdm import tqdm

    from . import sources

    loaded = sources.load(entry, cache_dir=cache_dir, **(source_options or {}))
    layers = layers_of(entry.model_id, loaded.convs.convs, dict(entry.conv_kind_overrides))
    model = model_row(entry, loaded, layers, root)
    filters_dir = Path(release_dir) / "filters" / entry.model_id
    meta_out = Path(meta_dir) / entry.model_id
    with tqdm(total=model["n_filters"], unit="filter", unit_scale=True, desc=f"extract {entry.model_id}",
              disable=not progress, leave=False) as bar:
        write_model(filters_dir, meta_out, model, [layer.row for layer in layers], layers, bar,
                    max_rows_per_shard, row_group_rows)
    return model


def write_model(filters_dir: Path, meta_dir: Path, model: dict, layer_rows: list[dict],
                layers: Iterable[Layer], progress=None, max_rows_per_shard: int = config.MAX_ROWS_PER_SHARD,
                row_group_rows: int = config.ROW_GROUP_ROWS) -> None:
    """A model's filter shards and metadata rows, both written under temporary names and
    renamed only when both are complete. ``layers`` (rows and weights) may be a generator."""
    with atomic_dir(filters_dir) as ftmp, atomic_dir(meta_dir) as mtmp:
        _write_shards(ftmp, model["model_id"], layers, model["n_filters"], progress, max_rows_per_shard, row_group_rows)
        _write_meta(mtmp, model, layer_rows)


def gather(meta_dir: Path = config.META_DIR, release_dir: Path = config.RELEASE_DIR,
           model_ids: list[str] | None = None, prune_orphans: bool = False) -> tuple[pa.Table, pa.Table]:
    """Concatenate the per-model rows into the release's ``models`` and ``layers`` tables.

    ``prune_orphans`` removes the filter shards and metadata of models that are no longer
    in ``model_ids`` (DVC leaves the outputs of a removed ``foreach`` item in place).
    """
    meta_dir, release_dir = Path(meta_dir), Path(release_dir)
    ids = model_ids if model_ids is not None else sorted(p.name for p in meta_dir.iterdir() if p.is_dir())
    if not ids:
        raise CnnFilterDbError(f"{config.INDEX_FILE}: no models to gather")
    missing = [m for m in ids if not (meta_dir / m / "model.parquet").exists()]
    if missing:
        raise CnnFilterDbError(f"{meta_dir}: no extracted metadata for {missing}; run the extract stage first")
    models = pa.concat_tables([pq.read_table(meta_dir / m / "model.parquet", schema=shards.MODELS_SCHEMA) for m in sorted(ids)])
    layers = pa.concat_tables([pq.read_table(meta_dir / m / "layers.parquet", schema=shards.LAYERS_SCHEMA) for m in sorted(ids)])
    if prune_orphans:
        for folder in (release_dir / "filters", meta_dir):
            if folder.exists():
                for orphan in folder.iterdir():
                    if orphan.is_dir() and not orphan.name.startswith(".") and orphan.name not in ids:
                        shutil.rmtree(orphan)
    shards.write_table_dir(models, release_dir / "models")
    shards.write_table_dir(layers, release_dir / "layers")
    return models, layers
