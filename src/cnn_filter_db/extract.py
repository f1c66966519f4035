"""Turn a model's convolutions into the rows of the ``layers`` and ``filters`` tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import config
from .analysis.population import model_labels
from .catalog import Entry, entry_path
from .dataset import layout, writer
from .dataset.writer import Layer
from .errors import CnnFilterDbError, FormatError
from .formats.base import Conv
from .hashing import sha256_file
from .params import ExtractParams
from .progress import bar as progress_bar


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


def check_expected(entry: Entry, layers: list[Layer]) -> None:
    """A generated entry states the 3x3 counts of its architecture; the weights must agree."""
    want = entry.expected_3x3
    got = (len(layers), sum(layer.row["n_filters"] for layer in layers))
    if want is not None and got != (want.layers, want.filters):
        raise FormatError(f"{entry.model_id}: the weights hold {got[0]} 3x3 layers / {got[1]:,} filters, the entry's "
                          f"expected_3x3 says {want.layers} / {want.filters:,}")


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
        **model_labels(entry.trained, entry.source.kind, _measurable(layers), loaded.training_steps),
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


def _measurable(layers: list[Layer]) -> list[np.ndarray]:
    """The layers' weights, unless they are zero-stride shells (import_original streams the
    weights later; then the random-like share is null)."""
    return [layer.weight for layer in layers if any(layer.weight.strides)]


def extract_model(entry: Entry, release_dir: Path = config.RELEASE_DIR, meta_dir: Path = config.META_DIR,
                  root: Path = Path("."), cache_dir: Path | None = None, progress: bool = True,
                  params: ExtractParams | None = None, source_options: dict | None = None) -> dict:
    """Fetch, read and write one model: its filter shards and its metadata rows.

    ``params`` is the ``extract`` group (shard sizes); ``cache_dir`` the weights cache (None:
    ``config.default_cache_dir()``). ``source_options`` go to :func:`sources.load` (for ``train`` entries:
    ``profile``, ``reports_dir``, ``hub_ids``, ...). Nothing is written unless every step
    succeeds; the previous output stays otherwise.
    """
    from . import sources

    params = ExtractParams.of(params)
    loaded = sources.load(entry, cache_dir=cache_dir, root=root, **(source_options or {}))
    layers = layers_of(entry.model_id, loaded.convs.convs, dict(entry.conv_kind_overrides))
    check_expected(entry, layers)
    model = model_row(entry, loaded, layers, root)
    with progress_bar(total=model["n_filters"], unit="filter", unit_scale=True, desc=f"extract {entry.model_id}",
              disable=not progress, leave=False) as bar:
        writer.write_model(release_dir, meta_dir, model, [layer.row for layer in layers], layers, bar, params)
    return model


def gather(meta_dir: Path = config.META_DIR, release_dir: Path = config.RELEASE_DIR,
           model_ids: list[str] | None = None, prune_orphans: bool = False) -> tuple[pa.Table, pa.Table]:
    """Concatenate the per-model rows into the release's ``models`` and ``layers`` tables.

    ``prune_orphans`` removes the filter shards and metadata of models that are no longer
    in ``model_ids`` (DVC leaves the outputs of a removed ``foreach`` item in place).
    """
    meta_dir, release_dir = Path(meta_dir), Path(release_dir)
    present = writer.meta_models(meta_dir)
    ids = model_ids if model_ids is not None else present
    if not ids:
        raise CnnFilterDbError(f"{config.INDEX_FILE}: no models to gather")
    missing = sorted(set(ids) - set(present))
    if missing:
        raise CnnFilterDbError(f"{meta_dir}: no extracted metadata for {missing}; run the extract stage first")
    models, layers = writer.read_meta(meta_dir, ids)
    if prune_orphans:
        for orphan in sorted((set(layout.filter_models(release_dir)) | set(present)) - set(ids)):
            writer.remove_model(release_dir, orphan, meta_dir)
    writer.write_table(models, release_dir, "models")
    writer.write_table(layers, release_dir, "layers")
    return models, layers
