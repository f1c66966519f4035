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

#: format name -> reader(path, **options) -> ModelConvs. Filled by the format modules on import.
READERS: dict[str, Callable[..., ModelConvs]] = {}
#: format name -> the options its reader accepts (see :func:`read`).
READER_OPTIONS: dict[str, frozenset[str]] = {}


def register(name: str, options: tuple[str, ...] = ()):
    """Register a reader; ``options`` names the keyword options of :func:`read` it takes."""
    def deco(fn):
        READERS[name] = fn
        READER_OPTIONS[name] = frozenset(options)
        return fn

    return deco


def read(path: Path, fmt: str, *, member: str | None = None, sha256: str | None = None,
         layer_classes: dict[str, str] | None = None) -> ModelConvs:
    """Read ``path`` as format ``fmt``; a clear :class:`FormatError` names the file otherwise.

    ``member`` selects one model of a file that holds several (the ``hdf5-original`` release);
    formats of one model refuse it. ``sha256`` is the pinned hash of the file, passed to
    readers that must check it before reading anything unsafe; others ignore it.
    ``layer_classes`` (a catalog entry's ``keras_layer_classes``) names the class of Keras
    layers whose names do not tell it; other formats refuse it.
    """
    _load_all()
    if fmt not in READERS:
        raise FormatError(f"{path}: format {fmt!r} is not supported; expected one of {sorted(READERS)}")
    accepted = READER_OPTIONS.get(fmt, frozenset())
    if member is not None and "member" not in accepted:
        raise FormatError(f"{path}: format {fmt!r} holds one model; a member ({member!r}) cannot be selected")
    if layer_classes and "layer_classes" not in accepted:
        raise FormatError(f"{path}: format {fmt!r} takes no keras_layer_classes (only format 'keras' does)")
    options = {k: v for k, v in (("member", member), ("sha256", sha256), ("layer_classes", layer_classes))
               if k in accepted}
    return READERS[fmt](Path(path), **options)


def _load_all() -> None:
    # Imported lazily so that `import cnn_filter_db` stays cheap and optional readers
    # (keras, tflite) only need their dependencies when used.
    from . import onnx, torch  # noqa: F401
    for optional in ("safetensors", "keras", "tflite", "hdf5_original"):
        try:
            __import__(f"{__name__}.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                continue  # the module is not written yet
            raise


__all__ = ["Conv", "ModelConvs", "READERS", "read", "register", "FormatError"]
