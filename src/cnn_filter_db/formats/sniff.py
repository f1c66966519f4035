"""Tell a weights file's format from its first bytes (not from its extension, which can lie).

Used by ``catalog add`` to propose the format of a new entry and by the readers to say what a
mislabelled file really is. It looks at magic bytes, container listings and HDF5 group names;
nothing is unpickled or executed.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: What each format name looks like, for error messages.
DESCRIPTIONS = {
    "onnx": "an ONNX model",
    "pytorch": "a PyTorch file",
    "safetensors": "a safetensors file",
    "keras": "a Keras file (.h5, .weights.h5 or .keras)",
    "tflite": "a TFLite flatbuffer",
    "hdf5-original": "the CVPR 2022 CNN Filter DB HDF5 file",
}


def sniff_format(path: Path) -> str | None:
    """The format name of ``path`` (a key of formats.READERS), or None if unrecognised."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    if len(head) < 8:
        return None
    if head.startswith(HDF5_MAGIC):
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
    if _looks_like_onnx(head) and _parses_as_onnx(path):
        return "onnx"
    return None


def describe(fmt: str | None) -> str:
    return DESCRIPTIONS.get(fmt, "a file of unknown format") if fmt else "a file of unknown format"


def mismatch_hint(path: Path, expected: str) -> str:
    """`` (it looks like ...)`` when the file looks like another format, else ``""``."""
    got = sniff_format(path)
    if got and got != expected:
        return f" (it looks like {describe(got)}: format {got!r})"
    return ""


def _hdf5_kind(path: Path) -> str | None:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            # Keras 2 model.save (model_weights, model_config) and save_weights (a layer_names
            # attribute at the root); Keras 3 .weights.h5 (a root 'vars' group, 'layers' of a
            # functional model)
            if keys & {"model_weights", "layers", "vars"} or {"model_config", "layer_names"} & set(f.attrs):
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
    # protobuf writes fields in number order: a ModelProto starts with field 1 (ir_version,
    # a varint: tag 0x08); only such files are worth parsing
    return head[:1] == b"\x08"


def _parses_as_onnx(path: Path) -> bool:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return len(model.graph.node) > 0
    except Exception:
        return False
