"""Guessing a weights file's format from its first bytes, to name what a mislabelled file is.

Used by the readers for their "this is not a ... file" errors and by ``catalog add`` to
propose the format of a new entry. It looks at magic bytes and container listings only;
nothing is unpickled or executed.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: What each format name looks like, for error messages.
DESCRIPTIONS = {
    "onnx": "an ONNX model",
    "pytorch": "a PyTorch file",
    "safetensors": "a safetensors file",
    "keras": "a Keras file (.h5, .weights.h5 or .keras)",
    "tflite": "a TFLite flatbuffer",
    "hdf5-original": "the CVPR 2022 CNN Filter DB HDF5 file",
}


def detect_format(path: Path) -> str | None:
    """The format ``path`` looks like (a key of :data:`DESCRIPTIONS`), or None when unsure."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    if len(head) < 8:
        return None
    if head.startswith(_HDF5_MAGIC):
        return _hdf5_kind(path)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:2] == b"PK":
        return _zip_kind(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pytorch"  # legacy torch serialisation: a pickle stream
    n = struct.unpack("<Q", head[:8])[0]
    if 2 <= n <= 100_000_000 and head[8:9] == b"{" and n + 8 <= path.stat().st_size:
        try:
            with open(path, "rb") as fh:
                fh.seek(8)
                json.loads(fh.read(n))
            return "safetensors"
        except (ValueError, UnicodeDecodeError):
            pass
    if path.suffix.lower() == ".onnx" or _looks_like_onnx(head):
        return "onnx"
    return None


def describe(fmt: str | None) -> str:
    return DESCRIPTIONS.get(fmt, "a file of unknown format") if fmt else "a file of unknown format"


def mismatch_hint(path: Path, expected: str) -> str:
    """`` (it looks like ...)`` when the file looks like another format, else ``""``."""
    got = detect_format(path)
    if got and got != expected:
        return f" (it looks like {describe(got)}: format {got!r})"
    return ""


def _hdf5_kind(path: Path) -> str | None:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            if "model_weights" in keys or "layers" in keys or "model_config" in f.attrs:
                return "keras"
            if ("filters" in keys or "filter" in keys) and "meta" in keys:
                return "hdf5-original"
    except Exception:  # a truncated or odd HDF5 file: no guess
        return None
    return None


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if "config.json" in names and "model.weights.h5" in names:
        return "keras"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch"
    return None


def _looks_like_onnx(head: bytes) -> bool:
    # A ModelProto starts with field 1 (ir_version, varint: tag 0x08) and usually names its
    # producer (field 2, tag 0x12) soon after; a weak test, used only after the others.
    return head[:1] == b"\x08" and b"\x12" in head[2:6]
