"""Tell a weights file's format from its first bytes (not from its extension, which can lie)."""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff_format(path: Path) -> str | None:
    """The format name of ``path`` (a key of formats.READERS), or None if unrecognised."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(HDF5_MAGIC):
        return "keras"
    if head[4:8] == b"TFL3":
        return "tflite"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return "pytorch"
        if "config.json" in names and any(n.endswith(".h5") for n in names):
            return "keras"
        return None
    if head[:1] == b"\x80":
        return "pytorch"  # legacy torch serialisation (a pickle stream)
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        try:
            with open(path, "rb") as fh:
                fh.seek(8)
                json.loads(fh.read(n))
            return "safetensors"
        except (ValueError, OverflowError, MemoryError):
            pass
    if _looks_like_onnx(path):
        return "onnx"
    return None


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return len(model.graph.node) > 0
    except Exception:
        return False
