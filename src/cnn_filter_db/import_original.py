"""Import the CVPR 2022 CNN Filter DB release (one HDF5 file) as catalog entries and shards.

Each original model becomes ``catalog/models/cvpr22-<model>.yaml``: a ``url`` source with
the file's ``file://`` URL, ``#model=<original model>``, and the file's sha256, in format
``hdf5-original`` (so the normal pipeline can extract it again), plus its filter shards and
metadata rows written with the same functions as ``extract``.

The release's ``/meta`` table is pickled by pandas: it is read only when the file's sha256
equals the ``sha256`` the user pins (see :mod:`.formats.hdf5_original`). Hashing the 105 GB
file takes minutes; it is done once.

Labels: the original's columns are mapped to ours (:data:`TASKS`, :data:`VISUAL_CATEGORIES`,
:data:`DATASETS`, family from the model name); every original label is also kept verbatim
in the entry's ``notes``. A label with no equivalent is used as its slug; if that is not in
``catalog/vocabulary.yaml`` the import stops before writing anything and lists the values to
add (or, with ``unknown_labels="fallback"``, uses ``other`` / ``unknown``).
"""
from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from . import config
from .catalog import Entry, VOCABULARY_FIELDS, entry_path, load_vocabulary, write_index
from .errors import CatalogError, CnnFilterDbError, FormatError

ID_PREFIX = "cvpr22-"
RELEASE_LICENSE = "CC-BY-SA-4.0"  # the licence of the release whose bytes are read

#: Original label (normalised: lower case, single spaces) -> our vocabulary value.
TASKS = {"classification": "classification", "image classification": "classification",
         "segmentation": "segmentation", "semantic segmentation": "segmentation",
         "instance segmentation": "segmentation", "detection": "detection", "object detection": "detection",
         "face detection": "face-detection", "gan": "generation", "generation": "generation",
         "image generation": "generation", "generative": "generation", "text detection": "text-detection",
         "text recognition": "text-recognition", "ocr": "text-recognition"}
VISUAL_CATEGORIES = {"natural": "natural", "natural images": "natural", "photos": "natural",
                     "people": "people", "faces": "faces", "face": "faces", "text": "text",
                     "handwritten": "handwritten", "handwriting": "handwritten", "digits": "handwritten",
                     "medical": "medical", "medical (ct)": "medical", "medical (mri)": "medical",
                     "medical (x-ray)": "medical", "medical ct": "medical", "medical mri": "medical",
                     "medical x-ray": "medical", "ct": "medical", "mri": "medical", "x-ray": "medical",
                     "satellite": "satellite", "aerial": "satellite", "remote sensing": "satellite",
                     "art": "art", "artworks": "art", "paintings": "art", "fractals": "synthetic",
                     "synthetic": "synthetic"}
DATASETS = {"imagenet": "imagenet-1k", "imagenet1k": "imagenet-1k", "imagenet-1k": "imagenet-1k",
            "ilsvrc2012": "imagenet-1k", "ilsvrc": "imagenet-1k", "cifar10": "cifar10", "cifar-10": "cifar10",
            "cifar100": "cifar100", "cifar-100": "cifar100", "mnist": "mnist", "fashion-mnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "kmnist": "kmnist"}
_NONE = {"", "nan", "none", "-", "n/a", "null"}
FAMILIES = (("efficientnet", "efficientnet"), ("mobilenet", "mobilenet"), ("regnet", "regnet"),
            ("convnext", "convnext"), ("yolo", "yolo"), ("inception", "inception"), ("googlenet", "inception"),
            ("vgg", "vgg"), ("resnet", "resnet"), ("resnext", "resnet"))
FALLBACKS = {"task": "other", "family": "other", "dataset": "unknown", "visual_category": "other"}
#: Original columns copied into the notes (when present), in this order.
LABEL_COLUMNS = ("model", "Name", "Task", "Datatype", "Training-Dataset", "Pretraining-Dataset", "Paper",
                 "Accessible", "Dataset URL", "producer", "op_set", "depth", "total_filters")


@dataclass
class ImportReport:
    imported: list[dict] = field(default_factory=list)  # {model_id, original, n_layers, n_filters}
    failed: list[tuple[str, str]] = field(default_factory=list)  # (original model, problem)
    skipped: list[str] = field(default_factory=list)  # existing entries kept (force=False)


def import_original(h5_path: Path, sha256: str, out_root: Path = Path("."), *,
                    release_dir: Path | None = None, meta_dir: Path | None = None,
                    models: list[str] | None = None, unknown_labels: str = "error", force: bool = False,
                    progress: bool = False) -> ImportReport:
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

    A model whose filters fail (a bad range, NaN or inf) is reported in ``failed`` and leaves
    nothing behind; the others are written.
    """
    import h5py

    from .atomic import atomic_write_text
    from .dataset.writer import write_model
    from .extract import layers_of, model_row
    from .formats.base import Conv, ModelConvs
    from .formats.hdf5_original import (filters_dataset, layer_shape, model_column, model_rows, placeholders,
                                        read_meta)
    from .sources import Loaded

    h5_path = Path(h5_path).resolve()
    out_root = Path(out_root)
    release_dir = Path(release_dir) if release_dir else out_root / config.RELEASE_DIR
    meta_dir = Path(meta_dir) if meta_dir else out_root / config.META_DIR
    if unknown_labels not in ("error", "fallback"):
        raise ValueError("unknown_labels must be 'error' or 'fallback'")
    df = read_meta(h5_path, sha256)  # refuses a file that is not the pinned one
    col = model_column(df)
    originals = list(dict.fromkeys(df[col].astype(str)))
    if models is not None:
        missing = sorted(set(models) - set(originals))
        if missing:
            raise FormatError(f"{h5_path}: no such models in /meta: {missing[:10]}")
        originals = [m for m in originals if m in set(models)]
    vocab = load_vocabulary(out_root)
    entries, problems, used = {}, [], set()
    for original in originals:
        first = df[df[col].astype(str) == original].iloc[0]
        model_id = _unique_id(original, used)
        data = entry_data(model_id, original, first, h5_path, sha256)
        problems.extend(_apply_vocabulary(data, vocab, unknown_labels, original))
        entries[original] = data
    if problems:
        raise CatalogError(problems)

    report = ImportReport()
    with h5py.File(h5_path, "r") as f:
        ds = filters_dataset(f, h5_path)
        for original, data in entries.items():
            model_id = data["model_id"]
            target = entry_path(model_id, out_root)
            if target.exists() and not force:
                report.skipped.append(model_id)
                continue
            try:
                entry = Entry.model_validate(data)
                rows, max_depth = model_rows(df, original, h5_path)
                by_name = {r.name: r for r in rows}
                # The layer rows need only shapes: zero-stride views stand in for the weights,
                # which are then read one layer at a time while the shards are written.
                shells = [Conv(r.name, np.broadcast_to(np.float32(0), layer_shape(r, h5_path, original)),
                               groups=None, level=r.level) for r in rows] + placeholders(rows, max_depth)
                layers = layers_of(model_id, shells)
            except (CnnFilterDbError, ValueError) as exc:
                report.failed.append((original, str(exc)))
                continue
            atomic_write_text(target, render_entry(data))
            try:
                convs = ModelConvs([], "hdf5-original", {"h5py": h5py.__version__})
                loaded = Loaded(convs, sha256, data["source"]["url"], h5_path)
                model = model_row(entry, loaded, layers, out_root)
                write_model(release_dir, meta_dir, model,
                            [layer.row for layer in layers], _stream(model_id, layers, by_name, ds, h5_path, original))
            except CnnFilterDbError as exc:  # a bad range or NaN found while streaming: nothing kept
                target.unlink(missing_ok=True)
                report.failed.append((original, str(exc)))
                continue
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            report.imported.append({"model_id": model_id, "original": original,
                                    "n_layers": model["n_layers"], "n_filters": model["n_filters"]})
            if progress:
                print(f"{model_id}: {model['n_layers']} layers, {model['n_filters']} filters", flush=True)
    if (out_root / config.MODELS_DIR).is_dir():
        write_index(out_root)
    return report


def _stream(model_id, layers, by_name, ds, path, original):
    """The layers with their real weights, read one at a time; NaN or inf stops the model."""
    from .dataset.writer import Layer
    from .formats.hdf5_original import read_layer

    for layer in layers:
        weight = read_layer(ds, by_name[layer.row["layer_name"]], path, original)
        if not np.isfinite(weight).all():
            bad = int((~np.isfinite(weight)).sum())
            raise FormatError(f"{model_id}: layer {layer.row['layer_name']!r} holds {bad} NaN or infinite weights")
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


def _datasets(value: str | None) -> str | None:
    if value is None:
        return None
    parts = [p for p in (_text(x) for x in re.split(r"[,;]", value)) if p]
    return "+".join(_map(DATASETS, p) for p in parts) if parts else None


def family_of(name: str) -> str:
    low = name.lower().replace("-", "").replace("_", "")
    return next((fam for key, fam in FAMILIES if key in low), "other")


def entry_data(model_id: str, original: str, row, h5_path: Path, sha256: str) -> dict:
    """The catalog entry (a plain dict, in field order) of one original model."""
    get = lambda c: _text(row[c]) if c in row.index else None  # noqa: E731
    name = get("Name") or original
    labels = {c: get(c) for c in LABEL_COLUMNS if c in row.index and get(c) is not None}
    labels["model"] = original
    url = f"{h5_path.as_uri()}#model={urllib.parse.quote(original, safe='')}"
    paper = get("Paper")
    homepage = get("Accessible")
    notes = ("Imported from the CNN Filter DB v1.0.0 release (CVPR 2022; CC BY-SA 4.0) by "
             "`cnn-filter-db import-original`. Original labels: "
             + "; ".join(f"{k}={v}" for k, v in labels.items()) + ".")
    return {
        "model_id": model_id,
        "name": name,
        "source": {"kind": "url", "url": url, "sha256": sha256},
        "format": "hdf5-original",
        "architecture": slug(name),
        "family": family_of(name),
        "task": _map(TASKS, get("Task")) or "unknown",
        "visual_category": _map(VISUAL_CATEGORIES, get("Datatype")) or "unknown",
        "training_dataset": _datasets(get("Training-Dataset")) or "unknown",
        "pretraining_dataset": _datasets(get("Pretraining-Dataset")) or "none",
        "trained": True,
        "license": RELEASE_LICENSE,
        "training_data_license": "unknown",
        "paper": paper,
        "accuracy": None,
        "homepage": homepage if homepage and re.match(r"https?://", homepage) else None,
        "notes": notes,
    }


def _apply_vocabulary(data: dict, vocab: dict, mode: str, original: str) -> list[tuple[str, str, str]]:
    problems = []
    for fld, vocab_name in VOCABULARY_FIELDS.items():
        value = data.get(fld)
        if value is None or value in vocab.get(vocab_name, ()):
            continue
        fallback = FALLBACKS.get(vocab_name)
        if mode == "fallback" and fallback in vocab.get(vocab_name, ()):
            data[fld] = fallback
            continue
        problems.append((f"{original} ({data['model_id']})", fld,
                         f"original label maps to {value!r}, which is not in vocabulary '{vocab_name}' of "
                         f"{config.VOCABULARY_FILE}: add it there, or import with unknown_labels='fallback'"))
    return problems


def render_entry(data: dict) -> str:
    header = ("# Imported from the CNN Filter DB v1.0.0 release by `cnn-filter-db import-original`.\n"
              "# The original labels are kept in `notes`; check the mapped fields before a pull request.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
