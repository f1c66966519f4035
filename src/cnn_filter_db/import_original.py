"""Import the CVPR 2022 CNN Filter DB release (one HDF5 file) as catalog entries and shards.

Each original model becomes ``catalog/models/cvpr22-<model>.yaml``: a ``url`` source with
the file's ``file://`` URL, ``#model=<original model>``, and the file's sha256, in format
``hdf5-original`` (so the normal pipeline can extract it again), plus its filter shards and
metadata rows written with the same functions as ``extract``.

The release's ``/meta`` table is pickled by pandas: it is read only when the file's sha256
equals the ``sha256`` the user pins (see :mod:`.formats.hdf5_original`). Hashing the 105 GB
file takes minutes; it is done once.

Labels: the original's columns (:data:`LABEL_SOURCES`: ``Task``, ``Visual Category`` or
``Datatype``, ``Training-Dataset``, ``Pretraining-Dataset``) are mapped to ours
(:data:`TASKS`, :data:`VISUAL_CATEGORIES`, :data:`DATASETS`, family from the model name);
a task naming segmentation is segmentation (the authors' notebook cleans v1.0.0 so). Every
original label is also kept verbatim in the entry's ``notes``. A label with no equivalent
is used as its slug; if that is not in ``catalog/vocabulary.yaml`` the import stops before
writing anything, naming the model and the column (or, with ``unknown_labels="fallback"``,
uses ``other`` / ``unknown``).

The catalog set ``original-v1`` (``entries_only=True``, ``import-original --entries-only``):
one entry per original model, each naming the one file by its sha256 and the model, and no
shards; ``dvc repro`` with that set selected then extracts every model as its own stage.
Each stage reads the parsed ``/meta`` from its sidecar (parsed once per file) and the
model's rows of the filter array only.
"""
from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import yaml

from . import config
from .atomic import atomic_write_text
from .catalog import Entry, VOCABULARY_FIELDS, entry_path, load_vocabulary, write_index
from .dataset.writer import Layer, write_model
from .errors import CatalogError, CnnFilterDbError, FormatError
from .extract import layers_of, model_row
from .formats.base import Conv, ModelConvs
from .formats.hdf5_original import (filters_dataset, layer_shape, model_column, model_rows, placeholders,
                                    read_layer, read_meta)
from .formats.hdf5_safety import open_contained
from .sources import Loaded

ID_PREFIX = "cvpr22-"
RELEASE_LICENSE = "CC-BY-SA-4.0"  # the licence of the release whose bytes are read
#: The catalog set every imported entry belongs to (issue 12: ``catalog.sets`` selects it).
ORIGINAL_SET = "original-v1"

#: Original label (normalised: lower case, single spaces) -> our vocabulary value. A label
#: not listed here is used as its slug, which must then be in catalog/vocabulary.yaml.
TASKS = {"classification": "classification", "image classification": "classification",
         "detection": "detection", "object detection": "detection",
         "face detection": "face-detection", "gan": "generation", "generation": "generation",
         "image generation": "generation", "generative": "generation", "gan-generator": "generation",
         "gan generator": "generation", "generator": "generation", "gan-discriminator": "gan-discriminator",
         "gan discriminator": "gan-discriminator", "discriminator": "gan-discriminator",
         "text detection": "text-detection", "text recognition": "text-recognition", "ocr": "text-recognition"}
VISUAL_CATEGORIES = {"natural": "natural", "natural images": "natural", "photos": "natural",
                     "people": "people", "faces": "faces", "face": "faces", "text": "text",
                     "handwritten": "handwritten", "handwriting": "handwritten", "digits": "handwritten",
                     "medical": "medical", "medical (ct)": "medical-ct", "medical ct": "medical-ct",
                     "ct": "medical-ct", "medical (mri)": "medical-mri", "medical mri": "medical-mri",
                     "mri": "medical-mri", "medical (x-ray)": "medical-x-ray", "medical x-ray": "medical-x-ray",
                     "x-ray": "medical-x-ray", "satellite": "satellite", "aerial": "satellite",
                     "remote sensing": "satellite", "art": "art", "artworks": "art", "paintings": "art",
                     "fractals": "fractals", "formula": "fractals", "synthetic": "synthetic"}
DATASETS = {"imagenet": "imagenet-1k", "imagenet1k": "imagenet-1k", "imagenet-1k": "imagenet-1k",
            "ilsvrc2012": "imagenet-1k", "ilsvrc": "imagenet-1k", "imagenet21k": "imagenet-21k",
            "imagenet-21k": "imagenet-21k", "cifar10": "cifar10", "cifar-10": "cifar10",
            "cifar100": "cifar100", "cifar-100": "cifar100", "mnist": "mnist", "fashion-mnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "kmnist": "kmnist", "coco": "coco",
            "ms coco": "coco", "mscoco": "coco", "pascal voc": "pascal-voc", "voc": "pascal-voc",
            "cityscapes": "cityscapes", "ade20k": "ade20k", "celeba": "celeba", "svhn": "svhn", "stl10": "stl10",
            "stl-10": "stl10", "places365": "places365", "fractaldb-1k": "fractaldb-1k",
            "fractaldb-10k": "fractaldb-10k"}
_NONE = {"", "nan", "none", "-", "n/a", "null"}
FAMILIES = (("efficientnet", "efficientnet"), ("mobilenet", "mobilenet"), ("regnet", "regnet"),
            ("convnext", "convnext"), ("yolo", "yolo"), ("inception", "inception"), ("googlenet", "inception"),
            ("vgg", "vgg"), ("resnet", "resnet"), ("resnext", "resnet"))
FALLBACKS = {"task": "other", "family": "other", "dataset": "unknown", "visual_category": "other"}
#: Our label field -> the original's columns that hold it (the first present is used).
LABEL_SOURCES = {"task": ("Task",), "visual_category": ("Visual Category", "Datatype"),
                 "training_dataset": ("Training-Dataset",), "pretraining_dataset": ("Pretraining-Dataset",)}
#: Original columns copied into the notes (when present), in this order.
LABEL_COLUMNS = ("model", "Name", "Task", "Visual Category", "Datatype", "Training-Dataset", "Pretraining-Dataset",
                 "Paper", "Accessible", "Dataset URL", "producer", "op_set", "depth", "total_filters",
                 "3x3_filter_share")


@dataclass
class ImportReport:
    imported: list[dict] = field(default_factory=list)  # {model_id, original, n_layers, n_filters}
    failed: list[tuple[str, str]] = field(default_factory=list)  # (original model, problem)
    skipped: list[str] = field(default_factory=list)  # existing entries kept (force=False)


@dataclass
class _Plan:
    """One original model, checked against /meta, the filter array and the vocabulary."""

    original: str
    data: dict
    rows: list
    max_depth: int


def import_original(h5_path: Path, sha256: str, out_root: Path = Path("."), *,
                    release_dir: Path | None = None, meta_dir: Path | None = None,
                    models: list[str] | None = None, unknown_labels: str = "error", force: bool = False,
                    progress: bool = False, entries_only: bool = False, source_url: str | None = None,
                    cache_dir: Path | None = None) -> ImportReport:
    """Write a catalog entry, filter shards and metadata rows for every model of the release.

    Parameters
    ----------
    h5_path : the release's HDF5 file.
    sha256 : its pinned sha256; the file is refused unless it matches (``/meta`` is pickled).
    out_root : the project root whose ``catalog/`` receives the entries (its vocabulary is used).
    release_dir, meta_dir : where shards and metadata go (default: under ``out_root``).
    models : original ``model`` names to import (default: all).
    unknown_labels : ``"error"`` stops before writing when a mapped label is not in the
        vocabulary; ``"fallback"`` uses other / unknown instead.
    force : replace existing entries (otherwise they are skipped and reported).
    entries_only : write the catalog entries (set ``original-v1``) and no shards: the
        pipeline then extracts each model as its own stage.
    source_url : the URL the entries name (default: the file's ``file://`` URL).
    cache_dir : where the parsed /meta is kept (default: the weights cache).

    Every model is checked before anything is written (its rows in /meta, every
    ``filter_ids`` range against the filter array, its labels against the vocabulary); the
    first problem stops the import with an error naming the model and the column. A model
    whose filters then fail to read (a damaged file, NaN or inf) is reported in ``failed``
    and leaves nothing behind; the models written before it stay as they are.
    """
    h5_path = Path(h5_path).resolve()
    out_root = Path(out_root)
    release_dir = Path(release_dir) if release_dir else out_root / config.RELEASE_DIR
    meta_dir = Path(meta_dir) if meta_dir else out_root / config.META_DIR
    if unknown_labels not in ("error", "fallback"):
        raise ValueError("unknown_labels must be 'error' or 'fallback'")
    df = read_meta(h5_path, sha256, cache_dir)  # refuses a file that is not the pinned one
    originals = list(dict.fromkeys(df[model_column(df)].astype(str)))
    if models is not None:
        missing = sorted(set(models) - set(originals))
        if missing:
            raise FormatError(f"{h5_path}: model {missing[0]!r}: no rows in /meta (column {model_column(df)!r})"
                              + (f"; also missing: {missing[1:10]}" if len(missing) > 1 else ""))
        originals = [m for m in originals if m in set(models)]
    with open_contained(h5_path) as f:
        n_filters = filters_dataset(f, h5_path).shape[0]
    plans = _plan(df, originals, h5_path, sha256, n_filters, out_root, unknown_labels, source_url)

    report = ImportReport()
    with open_contained(h5_path) as f:
        ds = filters_dataset(f, h5_path)
        for plan in plans:
            target = entry_path(plan.data["model_id"], out_root)
            if target.exists() and not force:
                report.skipped.append(plan.data["model_id"])
                continue
            try:
                done = _write_one(plan, ds, h5_path, sha256, target, out_root,
                                  None if entries_only else (release_dir, meta_dir))
            except CnnFilterDbError as exc:  # a damaged range or NaN found while streaming: nothing kept
                report.failed.append((plan.original, str(exc)))
                continue
            report.imported.append(done)
            if progress:
                print(f"{done['model_id']}: {done['n_layers']} layers, {done['n_filters']} filters", flush=True)
    if (out_root / config.MODELS_DIR).is_dir():
        write_index(out_root)
    return report


def _plan(df, originals, h5_path, sha256, n_filters, out_root, unknown_labels, source_url) -> list[_Plan]:
    """Check every model before anything is written: ranges first (one error), then labels (all)."""
    col = model_column(df)
    vocab = load_vocabulary(out_root)
    groups = {name: g for name, g in df.groupby(df[col].astype(str), sort=False)}
    plans, problems, used = [], [], set()
    for original in originals:
        rows, max_depth = model_rows(groups[original], original, h5_path, n_filters=n_filters)
        model_id = _unique_id(original, used)
        first = groups[original].iloc[0]
        data, origin = entry_data(model_id, original, first, h5_path, sha256, source_url)
        problems.extend(_apply_vocabulary(data, origin, vocab, unknown_labels, original, h5_path))
        plans.append(_Plan(original, data, rows, max_depth))
    if problems:
        raise CatalogError(problems)
    return plans


def _write_one(plan: _Plan, ds, h5_path: Path, sha256: str, target: Path, out_root: Path,
               outputs: tuple[Path, Path] | None) -> dict:
    """One model's entry and, with ``outputs`` (release and meta folders), its shards and
    metadata rows; on any failure nothing of it is left."""
    data, original, model_id = plan.data, plan.original, plan.data["model_id"]
    try:
        entry = Entry.model_validate(data)
        # The layer rows need only shapes: zero-stride views stand in for the weights, which
        # are then read one layer at a time while the shards are written.
        shells = [Conv(r.name, np.broadcast_to(np.float32(0), layer_shape(r, h5_path, original)),
                       groups=None, level=r.level) for r in plan.rows] + placeholders(plan.rows, plan.max_depth)
        layers = layers_of(model_id, shells)
    except ValueError as exc:
        raise FormatError(f"{h5_path}: model {original!r}: {exc}") from None
    atomic_write_text(target, render_entry(data))
    try:
        if outputs is not None:
            release_dir, meta_dir = outputs
            loaded = Loaded(ModelConvs([], "hdf5-original", {"h5py": h5py.__version__}), sha256,
                            data["source"]["url"], h5_path)
            model = model_row(entry, loaded, layers, out_root)
            by_name = {r.name: r for r in plan.rows}
            write_model(release_dir, meta_dir, model, [layer.row for layer in layers],
                        _stream(model_id, layers, by_name, ds, h5_path, original))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return {"model_id": model_id, "original": original, "n_layers": len(layers),
            "n_filters": sum(layer.row["n_filters"] for layer in layers)}


def _stream(model_id, layers, by_name, ds, path, original):
    """The layers with their real weights, read one at a time; NaN or inf stops the model."""
    for layer in layers:
        weight = read_layer(ds, by_name[layer.row["layer_name"]], path, original)
        if not np.isfinite(weight).all():
            bad = int((~np.isfinite(weight)).sum())
            raise FormatError(f"{path}: model {original!r}: column 'filter_ids': layer {layer.row['layer_name']!r} "
                              f"({model_id}) holds {bad} NaN or infinite weights")
        yield Layer(layer.row, weight)


# --------------------------------------------------------------------------- mapping

def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = " ".join(str(value).split())
    return None if text.lower() in _NONE else text


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.+]+", "-", text.lower()).strip("-.+") or "unknown"


def _unique_id(original: str, used: set) -> str:
    base = (ID_PREFIX + slug(original))[:78].rstrip("-.")
    model_id, n = base, 1
    while model_id in used:
        n += 1
        model_id = f"{base[:75]}-{n}"
    used.add(model_id)
    return model_id


def _map(table: dict, value: str | None) -> str | None:
    if value is None:
        return None
    key = value.lower()
    return table.get(key, table.get(key.replace(" ", ""), slug(value)))


def _task(value: str | None) -> str | None:
    """The original's task; v1.0.0 mislabels segmentation models, so any task naming
    segmentation is segmentation (as the authors' notebook cleans it)."""
    if value is not None and "segmentation" in value.lower():
        return "segmentation"
    return _map(TASKS, value)


def _datasets(value: str | None) -> str | None:
    if value is None:
        return None
    parts = [p for p in (_text(x) for x in re.split(r"[,;]", value)) if p]
    return "+".join(_map(DATASETS, p) for p in parts) if parts else None


def family_of(name: str) -> str:
    low = name.lower().replace("-", "").replace("_", "")
    return next((fam for key, fam in FAMILIES if key in low), "other")


def entry_data(model_id: str, original: str, row, h5_path: Path, sha256: str,
               source_url: str | None = None) -> tuple[dict, dict]:
    """The catalog entry (a plain dict, in field order) of one original model, and for each
    label field the (original column, original value) it came from."""
    get = lambda c: _text(row[c]) if c in row.index else None  # noqa: E731
    name = get("Name") or original
    labels = {c: get(c) for c in LABEL_COLUMNS if c in row.index and get(c) is not None}
    labels["model"] = original
    origin = {}
    for fld, columns in LABEL_SOURCES.items():
        column = next((c for c in columns if c in row.index), columns[0])
        origin[fld] = (column, get(column))
    base = source_url or h5_path.as_uri()
    url = f"{base.split('#')[0]}#model={urllib.parse.quote(original, safe='')}"
    paper = get("Paper")
    homepage = get("Accessible")
    notes = ("Imported from the CNN Filter DB v1.0.0 release (CVPR 2022; CC BY-SA 4.0) by "
             "`cnn-filter-db import-original`. Original labels: "
             + "; ".join(f"{k}={v}" for k, v in labels.items()) + ".")
    data = {
        "model_id": model_id,
        "name": name,
        "source": {"kind": "url", "url": url, "sha256": sha256},
        "format": "hdf5-original",
        "architecture": slug(name),
        "family": family_of(name),
        "task": _task(origin["task"][1]) or "unknown",
        "visual_category": _map(VISUAL_CATEGORIES, origin["visual_category"][1]) or "unknown",
        "training_dataset": _datasets(origin["training_dataset"][1]) or "unknown",
        "pretraining_dataset": _datasets(origin["pretraining_dataset"][1]) or "none",
        "trained": True,
        "license": RELEASE_LICENSE,
        "training_data_license": "unknown",
        "paper": paper,
        "accuracy": None,
        "homepage": homepage if homepage and re.match(r"https?://", homepage) else None,
        "notes": notes,
        "set": ORIGINAL_SET,
    }
    return data, origin


def _apply_vocabulary(data: dict, origin: dict, vocab: dict, mode: str, original: str,
                      h5_path: Path) -> list[tuple[str, str, str]]:
    problems = []
    for fld, vocab_name in VOCABULARY_FIELDS.items():
        value = data.get(fld)
        if value is None or value in vocab.get(vocab_name, ()):
            continue
        fallback = FALLBACKS.get(vocab_name)
        if mode == "fallback" and fallback in vocab.get(vocab_name, ()):
            data[fld] = fallback
            continue
        column, label = origin.get(fld, (fld, value))
        problems.append((f"{h5_path}: model {original!r}", f"column {column!r}",
                         f"{label!r} maps to {value!r} ({fld}), which is not in vocabulary '{vocab_name}' of "
                         f"{config.VOCABULARY_FILE}: add it there, or import with --fallback-labels"))
    return problems


def render_entry(data: dict) -> str:
    header = ("# Imported from the CNN Filter DB v1.0.0 release by `cnn-filter-db import-original`.\n"
              "# The original labels are kept in `notes`; check the mapped fields before a pull request.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
