"""The CVPR 2022 CNN Filter DB release (Gavrikov & Keuper, v1.0.0): one HDF5 file of all models.

Layout, as the original repository documents it (README and the authors' ``main.ipynb``):

* the filters: one N x 9 array, one row a filter and the row number its filter id. The
  README names the dataset ``/filter`` (float32), the notebook reads ``f["filters"]``: both
  names are accepted, float32 or float64, N x 9 or N x 3 x 3 (:data:`FILTER_DATASETS`).
* ``/meta``: a pandas DataFrame (``pd.read_hdf(path, "meta")``, fixed or table format), one
  row a 3x3 conv layer, with a MultiIndex on ``model_id`` (int), ``conv_depth`` and
  ``conv_depth_norm``; the index levels are data (the notebook cuts depth deciles from the
  ``conv_depth_norm`` level). Columns: ``filter_ids`` ("start:end", inclusive rows of the
  filter array), ``model`` (the model's unique string id), ``Name``, ``Task``, ``Visual
  Category`` (the README and v0.1.0 call it ``Datatype``), ``Training-Dataset`` and
  ``Pretraining-Dataset`` (comma-separated), ``Paper``, ``Accessible``, ``Dataset URL``,
  ``producer``, ``op_set``, ``depth``, ``total_filters``, ``3x3_filter_share``, per-shape
  counts ``(X, Y) filters`` and counts of ONNX operators. Within a layer the filters are in
  C order (index = out * c_in_per_group + in).

**Safety.** pandas stores the object (string) columns of ``/meta`` pickled, and reading them
unpickles. ``/meta`` is therefore read only from a file whose sha256 equals the sha256 the
user pinned (:func:`verify_sha256`): a file that was swapped or altered is refused before any
pickle is touched. The file is opened through :func:`.hdf5_safety.open_contained` first (no
external storage or links). Once parsed, the table is kept as a Parquet sidecar keyed by the
file's sha256 (:func:`meta_sidecar`), so that a run of hundreds of per-model stages parses
the pickled table once and never again. A ``/meta`` stored as CSV text (an earlier layout)
is parsed as text.

The reader (format ``hdf5-original``) returns one model, selected with ``member`` (the
original ``model`` string; a catalog entry names it in its url as ``#model=...``). Levels are
the original ``conv_depth``; since the release keeps only 3x3 layers, empty placeholder
convs (1x1, no filters) fill the depths it does not list, so that our ``conv_depth`` and
``conv_depth_norm`` equal the original ones. The release records no channel counts: a layer
of n filters is one output channel of n inputs (so its orthogonality is null rather than
wrong), unless the table has channel columns (:data:`OUT_CHANNEL_COLUMNS`). ``groups`` is
not recorded (None).
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..config import TRUSTED_PICKLE_ENV, default_cache_dir
from ..errors import FormatError
from ..hashing import sha256_file
from . import register
from .base import Conv, ModelConvs
from .hdf5_safety import open_contained

FILTER_DATASETS = ("filter", "filters")  # the README's name, the notebook's name
MODEL_COLUMNS = ("model", "model_id")  # the first present names a model
INDEX_LEVELS = ("model_id", "conv_depth", "conv_depth_norm")
LAYER_NAME_COLUMNS = ("layer_name", "layer", "node_name", "onnx_name")
OUT_CHANNEL_COLUMNS = ("out_channels", "c_out", "output_channels", "n_out")
IN_CHANNEL_COLUMNS = ("in_channels_per_group", "in_channels", "c_in", "input_channels", "n_in")
SIDECAR_DIR = "hdf5-original"  # under the weights cache

_verified: dict[tuple, str] = {}
_parsed: dict[str, object] = {}  # sha256 -> the flat /meta DataFrame, for this process


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


def meta_sidecar(sha256: str, cache_dir: Path | None = None) -> Path:
    """Where the parsed /meta of the file with this sha256 is kept (Parquet, no pickles)."""
    return Path(cache_dir or default_cache_dir()) / SIDECAR_DIR / f"{sha256}.meta.parquet"


def read_meta(path: Path, sha256: str | None, cache_dir: Path | None = None):
    """The /meta table as a flat DataFrame: index levels become columns (a level that repeats
    a column is dropped), object columns hold text or None. Parsed once per file sha256."""
    import pandas as pd

    path = Path(path)
    with open_contained(path) as f:
        if "meta" not in f or not any(k in f for k in FILTER_DATASETS):
            raise FormatError(f"{path}: not the CNN Filter DB release (expected /filter or /filters, and /meta)")
        csv_bytes = bytes(bytearray(f["meta"][...])) if isinstance(f["meta"], h5py.Dataset) else None
    verify_sha256(path, sha256)
    if sha256 in _parsed:
        return _parsed[sha256]
    sidecar = meta_sidecar(sha256, cache_dir)
    if sidecar.is_file():
        try:
            df = pd.read_parquet(sidecar)
            _parsed[sha256] = df
            return df
        except Exception:  # a damaged sidecar is rebuilt from the pinned file
            sidecar.unlink(missing_ok=True)
    try:
        if csv_bytes is not None:
            df = pd.read_csv(io.StringIO(csv_bytes.decode("utf-8")))
        else:
            df = pd.read_hdf(path, "meta")
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{path}: /meta is not a readable pandas table ({type(exc).__name__}: {exc})") from None
    df = _flat(df)
    if "filter_ids" not in df.columns or not any(c in df.columns for c in MODEL_COLUMNS):
        raise FormatError(f"{path}: /meta lacks the column 'filter_ids' or 'model' (columns: {list(df.columns)[:12]})")
    _write_sidecar(df, sidecar)
    _parsed[sha256] = df
    return df


def _flat(df):
    """Index levels as columns; object columns as text (None where missing)."""
    import pandas as pd

    if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
        names = list(df.index.names)
        keep = [i for i, n in enumerate(names) if n is not None and n not in df.columns]
        if keep:
            df = df.reset_index(level=keep)
        df = df.reset_index(drop=True)
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [None if _missing(v) else str(v) for v in df[col]]
    return df


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _write_sidecar(df, sidecar: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import atomic_write_bytes

    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(sidecar, sink.getvalue().to_pybytes())
    except (pa.ArrowException, OSError):
        pass  # only a cache: the next run parses the pinned file again


def model_column(df) -> str:
    return next(c for c in MODEL_COLUMNS if c in df.columns)


def parse_range(value, path: Path, model: str) -> tuple[int, int]:
    """"start:end" (inclusive) -> (start, stop) for slicing."""
    if _missing(value) or not str(value).strip():
        raise FormatError(f"{path}: model {model!r}: column 'filter_ids' is empty: the layer has no filter rows")
    text = str(value).strip()
    m = re.fullmatch(r"(\d+)\s*:\s*(\d+)", text) or re.fullmatch(r"(\d+)", text)
    if not m:
        raise FormatError(f"{path}: model {model!r}: column 'filter_ids': {text!r} is not a 'start:end' range")
    start = int(m.group(1))
    end = int(m.group(2)) if m.lastindex == 2 else start
    if end < start:
        raise FormatError(f"{path}: model {model!r}: column 'filter_ids': {text!r} ends before it starts")
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
        if _missing(value):
            return None
        return int(value)
    except (TypeError, ValueError):
        return None


def model_rows(df, model: str, path: Path, n_filters: int | None = None) -> tuple[list[_Row], int]:
    """The layer rows of one model and its maximum depth (the normaliser of conv_depth_norm).

    With ``n_filters`` (the row count of the filter array) every range is checked against it.
    """
    col = model_column(df)
    rows = df[df[col].astype(str) == str(model)]
    if rows.empty:
        raise FormatError(f"{path}: model {model!r}: no rows in /meta (column {col!r})")
    name_col = next((c for c in LAYER_NAME_COLUMNS if c in rows.columns), None)
    out_col = next((c for c in OUT_CHANNEL_COLUMNS if c in rows.columns), None)
    in_col = next((c for c in IN_CHANNEL_COLUMNS if c in rows.columns), None)
    has_depth = "conv_depth" in rows.columns
    result = []
    for i, r in enumerate(rows.to_dict("records")):
        start, stop = parse_range(r["filter_ids"], path, model)
        if n_filters is not None and stop > n_filters:
            raise FormatError(f"{path}: model {model!r}: column 'filter_ids': {r['filter_ids']!r} reaches filter "
                              f"{stop - 1}, but the filter array has {n_filters} rows")
        depth = _int_or_none(r["conv_depth"]) if has_depth else i
        if depth is None or depth < 0:
            raise FormatError(f"{path}: model {model!r}: column 'conv_depth': {r.get('conv_depth')!r} is not a "
                              f"depth (an integer >= 0)")
        name = str(r[name_col]) if name_col and r[name_col] not in (None, "", "nan") else f"conv{i}"
        result.append(_Row(name, start, stop, depth,
                           _int_or_none(r[out_col]) if out_col else None,
                           _int_or_none(r[in_col]) if in_col else None))
    names = [r.name for r in result]
    if len(set(names)) != len(names):  # names must be unique within a model
        for i, r in enumerate(result):
            r.name = f"{r.name}#{i}"
    max_depth = max(r.level for r in result)
    if "conv_depth_norm" in rows.columns and has_depth:
        # conv_depth_norm = conv_depth / max depth of all the model's convs (1x1 ones included)
        for d, n in zip(rows["conv_depth"], rows["conv_depth_norm"]):
            if n and not np.isnan(n) and n > 0:
                max_depth = max(max_depth, int(round(float(d) / float(n))))
    return result, max_depth


@register("hdf5-original", options=("member", "sha256"))
def read_original(path: Path, member: str | None = None, sha256: str | None = None) -> ModelConvs:
    path = Path(path)
    if member is None:
        raise FormatError(f"{path}: the CNN Filter DB release holds many models: name one (a url source "
                          f"ending in '#model=<original model>'), or import them all with `cnn-filter-db "
                          f"import-original {Path(path).name} --sha256 <its sha256>`")
    df = read_meta(path, sha256)
    with open_contained(path) as f:
        ds = filters_dataset(f, path)
        rows, max_depth = model_rows(df, member, path, n_filters=ds.shape[0])
        mapped = mapped_filters(ds, path)
        if mapped is not None:  # layers stay on disk until the writer streams them
            convs = [Conv(r.name, mapped[r.start:r.stop].reshape(layer_shape(r, path, member)), groups=None,
                          level=r.level) for r in rows]
        else:
            convs = [Conv(r.name, read_layer(ds, r, path, member), groups=None, level=r.level) for r in rows]
    return ModelConvs(convs=convs + placeholders(rows, max_depth), format="hdf5-original",
                      framework_versions={"h5py": h5py.__version__})


def mapped_filters(ds, path: Path) -> np.ndarray | None:
    """The filter array as a read-only memory map (N, 9) where HDF5 stores it as one
    contiguous, unfiltered block in this file (as the release does), else None.

    A model of the release can hold tens of millions of filters; mapped, its layers are read
    from disk one at a time while the shards are written, instead of all at once. The offset
    comes from a dataset :func:`.hdf5_safety.open_contained` has checked (no external storage).
    """
    offset = ds.id.get_offset()
    if offset is None or ds.id.get_create_plist().get_nfilters() or ds.id.get_create_plist().get_layout() != \
            h5py.h5d.CONTIGUOUS:
        return None
    try:
        return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=(ds.shape[0], 9))
    except (ValueError, OSError) as exc:  # the block reaches past the end of a truncated file
        raise FormatError(f"{path}: the filter array cannot be read ({exc}); is the file truncated?") from None


def filters_dataset(f, path: Path):
    """The filter array (``/filter`` or ``/filters``), checked for shape and dtype."""
    present = [k for k in FILTER_DATASETS if k in f]
    if not present:
        raise FormatError(f"{path}: no filter array (expected /filter or /filters)")
    if len(present) > 1:
        raise FormatError(f"{path}: both /filter and /filters exist; the release has one filter array")
    ds = f[present[0]]
    if not isinstance(ds, h5py.Dataset) or ds.ndim not in (2, 3) or int(np.prod(ds.shape[1:])) != 9:
        raise FormatError(f"{path}: /{present[0]} has shape {getattr(ds, 'shape', None)}, expected (N, 9) or (N, 3, 3)")
    if ds.dtype not in (np.dtype("<f4"), np.dtype("<f8"), np.dtype(">f4"), np.dtype(">f8")):
        raise FormatError(f"{path}: /{present[0]} has dtype {ds.dtype}, expected float32 or float64")
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
    """One layer's filters as float32 (out, in, 3, 3): one h5py slice of the filter array."""
    if r.stop > ds.shape[0]:
        raise FormatError(f"{path}: model {model!r}: column 'filter_ids': layer {r.name!r} needs filters up to "
                          f"{r.stop - 1}, the filter array has {ds.shape[0]} rows")
    try:
        block = ds[r.start:r.stop]
    except OSError as exc:  # a truncated or damaged file
        raise FormatError(f"{path}: model {model!r}: column 'filter_ids': rows {r.start}:{r.stop - 1} cannot be "
                          f"read ({exc})") from None
    return np.asarray(block, dtype=np.float32).reshape(layer_shape(r, path, model))


def placeholders(rows: list[_Row], max_depth: int) -> list[Conv]:
    """Empty 1x1 convs at the depths the release keeps no 3x3 layer of (see the module doc)."""
    held = {r.level for r in rows}
    return [Conv(f"<depth {d}>", np.zeros((0, 0, 1, 1), np.float32), groups=None, level=d)
            for d in range(max_depth + 1) if d not in held]
