"""The CVPR 2022 CNN Filter DB release (Gavrikov & Keuper, v1.0.0): one HDF5 file of all models.

Layout: ``/filters`` float64 (N, 3, 3) (or (N, 9)), one row a filter; ``/meta`` a pandas
table written by ``DataFrame.to_hdf``, one row a 3x3 conv layer, with the model's columns
repeated on each of its rows and ``filter_ids`` "start:end" (inclusive) naming the rows of
``/filters``. Within a layer the filters are in C order (index = out * c_in_per_group + in).

**Safety.** pandas stores the object (string) columns of ``/meta`` pickled, and reading them
unpickles. ``/meta`` is therefore read only from a file whose sha256 equals the sha256 the
user pinned (:func:`verify_sha256`): a file that was swapped or altered is refused before any
pickle is touched. A ``/meta`` stored as CSV text (an earlier layout of the same release) is
parsed as text.

The reader (format ``hdf5-original``) returns one model, selected with ``member`` (the
original ``model`` string; a catalog entry names it in its url as ``#model=...``). Levels are
the original ``conv_depth``; since the release keeps only 3x3 layers, empty placeholder
convs (1x1, no filters) fill the depths it does not list, so that our ``conv_depth`` and
``conv_depth_norm`` equal the original ones. Channel counts come from the table where it has
them (:data:`OUT_CHANNEL_COLUMNS`, :data:`IN_CHANNEL_COLUMNS`); otherwise a layer of n
filters is stored as one output channel of n inputs (so its orthogonality is null rather
than wrong). ``groups`` is not recorded (None).
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import TRUSTED_PICKLE_ENV
from ..hashing import sha256_file
from ..errors import FormatError
from . import register
from .base import Conv, ModelConvs

MODEL_COLUMNS = ("model", "model_id")  # the first present names a model
LAYER_NAME_COLUMNS = ("layer_name", "layer", "node_name", "onnx_name")
OUT_CHANNEL_COLUMNS = ("out_channels", "c_out", "output_channels", "n_out")
IN_CHANNEL_COLUMNS = ("in_channels_per_group", "in_channels", "c_in", "input_channels", "n_in")

_verified: dict[tuple, str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, remembered for the process while its size and mtime stay the same."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_file(path)
    return _verified[key]


def _is_verified_cache_file(path: Path, sha256: str) -> bool:
    # The content-addressed cache (sources.cache.Cache) stores a file as sha256/<ab>/<sha256>
    # and checks its hash whenever it hands it out, so hashing it again here would only repeat
    # that work (minutes for the 105 GB release).
    p = Path(path)
    return p.name == sha256 and p.parent.name == sha256[:2] and p.parent.parent.name == "sha256"


def verify_sha256(path: Path, sha256: str | None) -> None:
    """Refuse ``path`` unless its sha256 is the pinned one (its /meta is pickled)."""
    if not sha256 or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise FormatError(f"{path}: refused: the release's /meta table is stored pickled by pandas, so it is "
                          f"read only from a file whose sha256 you trust: pass --sha256 to import-original, or, "
                          f"after checking the file, list its sha256 in ${TRUSTED_PICKLE_ENV}")
    if _is_verified_cache_file(path, sha256):
        return
    got = sha256_of(path)
    if got != sha256:
        raise FormatError(f"{path}: refused: sha256 is {got}, not the pinned {sha256}; its /meta table is stored "
                          f"pickled by pandas and is read only from the pinned file")


def read_meta(path: Path, sha256: str | None):
    """The /meta table as a flat DataFrame (index levels that repeat a column are dropped)."""
    import h5py
    import pandas as pd

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "meta" not in f or not any(k in f for k in ("filters", "filter")):
                raise FormatError(f"{path}: not the CNN Filter DB release (expected /filters and /meta)")
            csv_bytes = None
            if isinstance(f["meta"], h5py.Dataset):
                csv_bytes = bytes(bytearray(f["meta"][...]))
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    verify_sha256(path, sha256)
    try:
        if csv_bytes is not None:
            df = pd.read_csv(io.StringIO(csv_bytes.decode("utf-8")))
        else:
            df = pd.read_hdf(path, "meta")
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{path}: /meta is not a readable pandas table ({type(exc).__name__}: {exc})") from None
    if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
        names = [n for n in df.index.names]
        keep = [i for i, n in enumerate(names) if n is not None and n not in df.columns]
        if keep:
            df = df.reset_index(level=keep)
        df = df.reset_index(drop=True)
    if "filter_ids" not in df.columns or not any(c in df.columns for c in MODEL_COLUMNS):
        raise FormatError(f"{path}: /meta lacks the columns filter_ids and model")
    return df


def model_column(df) -> str:
    return next(c for c in MODEL_COLUMNS if c in df.columns)


def parse_range(value, path: Path, model: str) -> tuple[int, int]:
    """"start:end" (inclusive) -> (start, stop) for slicing."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+)\s*:\s*(\d+)", text) or re.fullmatch(r"(\d+)", text)
    if not m:
        raise FormatError(f"{path}: model {model!r}: filter_ids {text!r} is not a 'start:end' range")
    start = int(m.group(1))
    end = int(m.group(2)) if m.lastindex == 2 else start
    if end < start:
        raise FormatError(f"{path}: model {model!r}: filter_ids {text!r} ends before it starts")
    return start, end + 1


@dataclass
class _Row:
    name: str
    start: int
    stop: int
    level: int
    out_c: int | None
    in_c: int | None


def _int_or_none(value) -> int | None:
    try:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        return int(value)
    except (TypeError, ValueError):
        return None


def model_rows(df, model: str, path: Path) -> tuple[list[_Row], int]:
    """The layer rows of one model and its maximum depth (the normaliser of conv_depth_norm)."""
    col = model_column(df)
    rows = df[df[col].astype(str) == str(model)]
    if rows.empty:
        raise FormatError(f"{path}: no model {model!r} in /meta (column {col!r})")
    name_col = next((c for c in LAYER_NAME_COLUMNS if c in rows.columns), None)
    out_col = next((c for c in OUT_CHANNEL_COLUMNS if c in rows.columns), None)
    in_col = next((c for c in IN_CHANNEL_COLUMNS if c in rows.columns), None)
    result = []
    for i, (_, r) in enumerate(rows.iterrows()):
        start, stop = parse_range(r["filter_ids"], path, model)
        depth = _int_or_none(r["conv_depth"]) if "conv_depth" in rows.columns else i
        name = str(r[name_col]) if name_col and str(r[name_col]) not in ("", "nan") else f"conv{i}"
        result.append(_Row(name, start, stop, depth if depth is not None else i,
                           _int_or_none(r[out_col]) if out_col else None,
                           _int_or_none(r[in_col]) if in_col else None))
    names = [r.name for r in result]
    if len(set(names)) != len(names):  # names must be unique within a model
        for i, r in enumerate(result):
            r.name = f"{r.name}#{i}"
    max_depth = max(r.level for r in result)
    if "conv_depth_norm" in rows.columns:
        # conv_depth_norm = conv_depth / max depth of all the model's convs (1x1 ones included)
        for d, n in zip(rows["conv_depth"], rows["conv_depth_norm"]):
            if n and not np.isnan(n) and n > 0:
                max_depth = max(max_depth, int(round(float(d) / float(n))))
    return result, max_depth


@register("hdf5-original", options=("member", "sha256"))
def read_original(path: Path, member: str | None = None, sha256: str | None = None) -> ModelConvs:
    import h5py

    path = Path(path)
    if member is None:
        raise FormatError(f"{path}: the CNN Filter DB release holds many models: name one (a url source "
                          f"ending in '#model=<original model>')")
    df = read_meta(path, sha256)
    rows, max_depth = model_rows(df, member, path)
    with h5py.File(path, "r") as f:
        convs = model_convs(f, rows, max_depth, path, member)
    return ModelConvs(convs=convs, format="hdf5-original", framework_versions={"h5py": h5py.__version__})


def filters_dataset(f, path: Path):
    ds = f["filters"] if "filters" in f else f["filter"]
    if ds.ndim not in (2, 3) or int(np.prod(ds.shape[1:])) != 9:
        raise FormatError(f"{path}: /filters has shape {ds.shape}, expected (N, 3, 3) or (N, 9)")
    return ds


def layer_shape(r: _Row, path: Path, model: str) -> tuple[int, int, int, int]:
    """(out, in, 3, 3) from the table's channel counts, else (1, n, 3, 3)."""
    n = r.stop - r.start
    if r.out_c and r.in_c and r.out_c * r.in_c == n:
        return (r.out_c, r.in_c, 3, 3)
    if r.out_c and r.in_c:
        raise FormatError(f"{path}: model {model!r}: layer {r.name!r} has {n} filters, but its channel "
                          f"counts say {r.out_c} x {r.in_c}")
    return (1, n, 3, 3)


def read_layer(ds, r: _Row, path: Path, model: str) -> np.ndarray:
    """One layer's filters as float32 (out, in, 3, 3): one h5py slice of /filters."""
    if r.stop > ds.shape[0]:
        raise FormatError(f"{path}: model {model!r}: layer {r.name!r} needs filters up to {r.stop - 1}, "
                          f"/filters has {ds.shape[0]} rows")
    return np.asarray(ds[r.start:r.stop], dtype=np.float32).reshape(layer_shape(r, path, model))


def placeholders(rows: list[_Row], max_depth: int) -> list[Conv]:
    """Empty 1x1 convs at the depths the release keeps no 3x3 layer of (see the module doc)."""
    held = {r.level for r in rows}
    return [Conv(f"<depth {d}>", np.zeros((0, 0, 1, 1), np.float32), groups=None, level=d)
            for d in range(max_depth + 1) if d not in held]


def model_convs(f, rows: list[_Row], max_depth: int, path: Path, model: str) -> list[Conv]:
    """Read one model's layers, one filter range at a time (h5py slicing)."""
    ds = filters_dataset(f, path)
    convs = [Conv(r.name, read_layer(ds, r, path, model), groups=None, level=r.level) for r in rows]
    return convs + placeholders(rows, max_depth)
