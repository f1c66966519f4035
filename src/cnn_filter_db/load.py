"""Read filters back as numpy arrays, from a local release folder or from a Hub dataset repo
at a revision (only the files of the models asked for are downloaded).

- :func:`load_layer`: one layer, ``(out, in_per_group, 3, 3)``;
- :func:`load_model`: every layer of a model, ``{layer_id: (out, in_per_group, 3, 3)}``;
- :func:`load_filters`: any selection of models and layers as one ``(N, 3, 3)`` array, with
  the keys of each row.

All three go through Arrow: the ``weights`` column (``fixed_size_list<float32>[9]``) is
flattened to one float32 buffer and reshaped, with no Python per row. Needs only numpy,
pyarrow and huggingface_hub (the base install).

Where to read (``source``): a local folder (a ``str`` or ``Path``), or a Hub dataset as
``hf://ORG/NAME`` (also ``hf://datasets/ORG/NAME``). Only the ``hf://`` form goes to the
Hub, so a mistyped folder is an error saying so, never a network request.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .dataset import layout, reader
from .errors import CnnFilterDbError

HUB_PREFIXES = ("hf://datasets/", "hf://")
HUB_FORM = "hf://ORG/NAME (or hf://datasets/ORG/NAME)"
KEY_COLUMNS = ["model_id", "layer_id", "out_channel", "in_channel"]
LAYER_COLUMNS = ["model_id", "layer_id", "layer_name", "out_channels", "in_channels_per_group"]


class LoadError(CnnFilterDbError, LookupError):
    """A model or layer is not in the release, or the release's rows disagree with its layers."""


class Filters(NamedTuple):
    """What :func:`load_filters` returns: ``weights`` (N, 3, 3) float32, and ``keys``, an Arrow
    table of N rows (model_id, layer_id, out_channel, in_channel) in the same order."""
    weights: np.ndarray
    keys: pa.Table


# --------------------------------------------------------------------------- where

def _repo_id(source) -> str | None:
    """The Hub repo id ``source`` names (``hf://ORG/NAME``, ``hf://datasets/ORG/NAME``), or None
    for a local folder. Only the ``hf://`` form goes to the Hub: any other string or path is
    local, so a mistyped folder is an error saying so, never a network request."""
    if isinstance(source, Path):
        return None
    if not isinstance(source, str):
        raise TypeError(f"source: expected a release folder (str or Path) or {HUB_FORM}, got {type(source).__name__}")
    for prefix in HUB_PREFIXES:
        if source.startswith(prefix):
            repo_id = source[len(prefix):].strip("/")
            if repo_id.count("/") != 1 or not all(repo_id.split("/")):
                raise ValueError(f"source {source!r}: expected {HUB_FORM}")
            return repo_id
    return None


def _release_folder(source, revision: str | None, model_ids: list[str] | None, token, cache_dir) -> Path:
    """The local folder to read: ``source`` itself, or a Hub snapshot holding the layers table
    and the filter shards of ``model_ids`` (of every model when None)."""
    if revision is not None and not isinstance(revision, str):
        raise TypeError(f"revision: expected a tag (v1.2.0), branch or commit as a string, got {type(revision).__name__}")
    repo_id = _repo_id(source)
    if repo_id is None:
        path = Path(source)
        if not path.is_dir():
            raise FileNotFoundError(f"{source}: no such release folder (a Hub dataset is {HUB_FORM})")
        if revision is not None:
            raise ValueError(f"{source}: a local release folder has no revisions (got revision={revision!r}; "
                             f"a Hub dataset is {HUB_FORM})")
        return path
    from huggingface_hub import snapshot_download

    folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir,
                               allow_patterns=layout.download_patterns(model_ids))
    return Path(folder)


def _where(source, revision) -> str:
    return f"{source}" + (f"@{revision}" if revision else "")


# --------------------------------------------------------------------------- reading

def _read_layers(path: Path) -> pa.Table:
    return reader.read_table(path, "layers", columns=LAYER_COLUMNS)


def _read_filters(path: Path, model_id: str, layer_ids: list[int] | None) -> pa.Table:
    """One model's rows (key columns and weights), of ``layer_ids`` only when given."""
    columns = KEY_COLUMNS[1:] + ["weights"]
    if layer_ids is not None and len(layer_ids) == 1:  # one layer: pushed down to the Parquet reader
        return reader.read_filters(path, model_id, columns, layer_ids[0])
    rows = reader.read_filters(path, model_id, columns)
    return rows if layer_ids is None else rows.filter(pc.is_in(rows["layer_id"], pa.array(layer_ids, pa.int32())))


def _kernels(weights: pa.ChunkedArray) -> np.ndarray:
    """(N, 3, 3) float32 from a ``fixed_size_list<float32>[9]`` column: one copy, no Python per row."""
    parts = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in weights.chunks]
    flat = np.concatenate(parts) if len(parts) != 1 else parts[0]
    return flat.astype(np.float32, copy=False).reshape(-1, 3, 3)


# --------------------------------------------------------------------------- names and ids

def _suggest(wrong, known: Iterable) -> str:
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(wrong), known, n=3, cutoff=0.6)
    return f"did you mean {', '.join(map(repr, close))}?" if close else f"known: {_sample(known)}"


def _sample(values: list[str], n: int = 8) -> str:
    return ", ".join(values[:n]) + (f", ... ({len(values)} in all)" if len(values) > n else "")


def _model_ids(models, layers: pa.Table, where: str) -> list[str]:
    known = sorted(set(layers["model_id"].to_pylist()))
    if models is None:
        return known
    wanted = [models] if isinstance(models, str) else list(models)
    for m in wanted:
        if not isinstance(m, str):
            raise TypeError(f"models: expected model ids (str), got {type(m).__name__} {m!r}")
        if m not in known:
            raise LoadError(f"{where}: no model {m!r}; {_suggest(m, known)}")
    return wanted


def _layer_ids(model_id: str, layers, model_layers: pa.Table, where: str) -> list[int] | None:
    """Layer ids of ``model_id`` for ``layers`` (ids or names, one or many; None: all)."""
    if layers is None:
        return None
    wanted = [layers] if isinstance(layers, (str, int, np.integer)) else list(layers)
    ids = model_layers["layer_id"].to_pylist()
    names = model_layers["layer_name"].to_pylist()
    by_name = dict(zip(names, ids))
    out = []
    for layer in wanted:
        if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, (str, int, np.integer)):
            raise TypeError(f"layer: expected a layer id (int) or a layer name (str), got {type(layer).__name__} {layer!r}")
        if isinstance(layer, str):
            if layer not in by_name:
                raise LoadError(f"{where}: model {model_id!r} has no layer named {layer!r}; {_suggest(layer, names)}")
            out.append(by_name[layer])
        elif int(layer) not in ids:
            raise LoadError(f"{where}: model {model_id!r} has layers {min(ids)}..{max(ids)}, not {layer}")
        else:
            out.append(int(layer))
    return out


def _shapes(model_layers: pa.Table) -> dict[int, tuple[int, int]]:
    return dict(zip(model_layers["layer_id"].to_pylist(),
                    zip(model_layers["out_channels"].to_pylist(), model_layers["in_channels_per_group"].to_pylist())))


def _to_layers(model_id: str, rows: pa.Table, shapes: dict[int, tuple[int, int]], wanted: list[int]) -> dict[int, np.ndarray]:
    """Rows of one model (any order) -> {layer_id: (out, in, 3, 3)}, each cell filled exactly once."""
    layer = rows["layer_id"].to_numpy()
    oc = rows["out_channel"].to_numpy()
    ic = rows["in_channel"].to_numpy()
    kernels = _kernels(rows["weights"])
    order = np.argsort(layer, kind="stable")
    bounds = np.searchsorted(layer[order], wanted, side="left"), np.searchsorted(layer[order], wanted, side="right")
    out = {}
    for lid, lo, hi in zip(wanted, *bounds):
        out_c, in_c = shapes[lid]
        idx = order[lo:hi]
        if hi - lo != out_c * in_c:
            raise LoadError(f"{model_id} layer {lid}: {hi - lo} filter rows, expected {out_c} x {in_c} = {out_c * in_c}")
        arr = np.empty((out_c, in_c, 3, 3), dtype=np.float32)
        seen = np.zeros((out_c, in_c), dtype=bool)
        arr[oc[idx], ic[idx]] = kernels[idx]
        seen[oc[idx], ic[idx]] = True
        if not seen.all():  # the right count but a repeated index: the shard is corrupt
            raise LoadError(f"{model_id} layer {lid}: repeated (out_channel, in_channel) rows")
        out[lid] = arr
    return out


# --------------------------------------------------------------------------- public

def load_model(model_id: str, source: str | Path, revision: str | None = None, *, layers=None,
               token: str | None = None, cache_dir: str | Path | None = None) -> dict[int, np.ndarray]:
    """Every 3x3 layer of a model (or those in ``layers``: ids or names) as
    ``{layer_id: float32 array (out, in_per_group, 3, 3)}``, in depth order.

    Parameters
    ----------
    source : a release folder, or a Hub dataset as ``hf://ORG/NAME``.
    revision : for the Hub, a tag (``v1.2.0``), branch or commit; None for a folder.

    Examples
    --------
    >>> kernels = load_model("efficientnet-lite0", "dist/cnn-filter-db")   # doctest: +SKIP
    >>> kernels[0].shape                                                    # doctest: +SKIP
    (32, 3, 3, 3)
    """
    if not isinstance(model_id, str):
        raise TypeError(f"model_id: expected a model id (str), got {type(model_id).__name__} {model_id!r}")
    path = _release_folder(source, revision, [model_id], token, cache_dir)
    where = _where(source, revision)
    every = _read_layers(path)
    (model_id,) = _model_ids(model_id, every, where)
    model_layers = every.filter(pc.field("model_id") == model_id)
    wanted = _layer_ids(model_id, layers, model_layers, where)
    shapes = _shapes(model_layers)
    rows = _read_filters(path, model_id, wanted)
    return _to_layers(model_id, rows, shapes, sorted(shapes) if wanted is None else wanted)


def load_layer(model_id: str, layer: int | str, source: str | Path, revision: str | None = None,
               *, token: str | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """One layer's 3x3 kernels as a float32 array of shape (out, in_per_group, 3, 3).

    Parameters
    ----------
    layer : its ``layer_id`` (0-based, depth order) or its ``layer_name``.
    source : a release folder (``dist/cnn-filter-db`` in a built checkout), or a Hub dataset
        as ``hf://ORG/NAME`` (also ``hf://datasets/ORG/NAME``); only that form goes to the Hub.
    revision : for the Hub, a tag (``v1.2.0``), branch or commit; None for a folder.

    The shards read are checked against the release's ``manifest.json`` (sha256, remembered
    per file while it keeps its size and mtime) and their Parquet page checksums: a changed
    byte raises :class:`~cnn_filter_db.errors.IntegrityError` or ``FormatError`` naming the
    shard, never returns other numbers.

    Examples
    --------
    >>> w = load_layer("efficientnet-lite0", 0, "dist/cnn-filter-db")  # doctest: +SKIP
    >>> w.shape                                                         # doctest: +SKIP
    (32, 3, 3, 3)
    """
    if isinstance(layer, (list, tuple)) or layer is None:
        raise TypeError(f"layer: expected one layer id (int) or layer name (str), got {layer!r} "
                        "(load_model takes several)")
    (kernels,) = load_model(model_id, source, revision, layers=[layer], token=token, cache_dir=cache_dir).values()
    return kernels


def load_filters(source: str | Path, models=None, layers=None, revision: str | None = None, *,
                 token: str | None = None, cache_dir: str | Path | None = None) -> Filters:
    """The filters of any selection as one ``(N, 3, 3)`` float32 array, with their keys.

    Parameters
    ----------
    models : a model id or a list of them; None: every model of the release.
    layers : layer ids or names (one or a list), taken in each selected model; None: all.
    revision : for the Hub, a tag (``v1.2.0``), branch or commit; None for a folder.

    Returns
    -------
    Filters : ``(weights, keys)``; ``keys`` is an Arrow table (model_id, layer_id,
        out_channel, in_channel), row i describing ``weights[i]``, in stored order.

    Examples
    --------
    >>> weights, keys = load_filters("dist/cnn-filter-db", models=["nudenet-320n"], layers=[0, 1])  # doctest: +SKIP
    >>> keys.to_pandas().groupby("layer_id").size()                                                 # doctest: +SKIP
    """
    wanted_models = None if models is None else ([models] if isinstance(models, str) else list(models))
    path = _release_folder(source, revision, wanted_models, token, cache_dir)
    where = _where(source, revision)
    every = _read_layers(path)
    model_ids = _model_ids(wanted_models, every, where)
    weights, keys = [], []
    for mid in model_ids:
        model_layers = every.filter(pc.field("model_id") == mid)
        rows = _read_filters(path, mid, _layer_ids(mid, layers, model_layers, where))
        weights.append(_kernels(rows["weights"]))
        model_col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows.num_rows, np.int32)), pa.array([mid]))
        keys.append(pa.table({"model_id": model_col, **{c: rows[c] for c in KEY_COLUMNS[1:]}}))
    if not weights:
        return Filters(np.empty((0, 3, 3), np.float32), pa.table({c: [] for c in KEY_COLUMNS}))
    return Filters(np.concatenate(weights) if len(weights) > 1 else weights[0], pa.concat_tables(keys))
