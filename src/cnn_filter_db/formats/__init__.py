"""How weight bytes are read: one module a format, each returning :class:`Conv` records.

Every reader takes a local path and returns the model's 2-D convolutions (any kernel size,
since 1x1 and 7x7 convs count for depth) in a :class:`ModelConvs`. Extraction then keeps the
3x3 ones. Readers never unpickle arbitrary objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import FormatError
from .base import Conv, ModelConvs

#: format name -> reader(path) -> ModelConvs. Filled by the format modules on import.
READERS: dict[str, Callable[[Path], ModelConvs]] = {}


def register(name: str):
    def deco(fn):
        READERS[name] = fn
        return fn

    return deco


def read(path: Path, fmt: str) -> ModelConvs:
    """Read ``path`` as format ``fmt``; a clear :class:`FormatError` names the file otherwise."""
    _load_all()
    if fmt not in READERS:
        raise FormatError(f"{path}: format {fmt!r} is not supported; expected one of {sorted(READERS)}")
    return READERS[fmt](Path(path))


def _load_all() -> None:
    # Imported lazily so that `import cnn_filter_db` stays cheap and optional readers
    # (keras, tflite) only need their dependencies when used.
    from . import onnx, torch  # noqa: F401
    for optional in ("safetensors", "keras", "tflite"):
        try:
            __import__(f"{__name__}.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                continue  # the module is not written yet
            raise


__all__ = ["Conv", "ModelConvs", "READERS", "read", "register", "FormatError"]
