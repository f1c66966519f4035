"""PyTorch state dicts (.pt/.pth), zip or legacy serialisation, loaded with
``weights_only=True`` only: a file that needs arbitrary objects unpickled is refused."""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import FormatError
from . import register
from .base import ModelConvs
from .state_dict import state_dict_convs  # noqa: F401  (shared with safetensors; re-exported)

# Keys under which training scripts commonly nest the state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "params")


@register("pytorch")
def read_state_dict_file(path: Path) -> ModelConvs:
    import torch

    _check_torch_file(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(
            f"{path}: refused: the file needs arbitrary Python objects unpickled, and only "
            f"plain tensors are loaded (torch.load weights_only=True): {first}"
        ) from None
    except Exception as exc:
        raise FormatError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {exc})") from None
    tensors = flatten_state_dict(obj)
    if not tensors:
        raise FormatError(f"{path}: the PyTorch file holds no tensors (expected a state dict)")
    convs = state_dict_convs({k: _to_numpy(v) for k, v in tensors.items()}, str(path))
    return ModelConvs(convs=convs, format="pytorch", framework_versions={"torch": torch.__version__})


def _to_numpy(t):
    """float32 for floating tensors (bf16 and fp8 included) and for torch-quantised ones (dequantised
    with their own scales); other dtypes keep theirs, so that plain integer conv weights are refused
    by :func:`state_dict_convs` instead of read as numbers they are not."""
    t = t.detach().cpu()
    if t.is_quantized:
        t = t.dequantize()
    return t.float().numpy() if t.is_floating_point() else t.numpy()


def _check_torch_file(path: Path) -> None:
    """Reject files that are neither a torch zip archive nor a legacy pickle stream early."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if zipfile.is_zipfile(path):
        return
    if head[:1] == b"\x80":  # pickle protocol marker of the legacy serialisation
        return
    raise FormatError(f"{path}: not a PyTorch file (expected a zip archive or a legacy pickle stream)")


def flatten_state_dict(obj) -> dict:
    """Tensors of a (possibly nested) state dict, keyed by dotted path, in stored order.

    A leading ``module.`` (DataParallel) is stripped; a dict that nests the real state dict
    under a common key (``state_dict``, ``model``, ...) is unwrapped.
    """
    import torch

    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    out: dict = {}

    def walk(value, path: tuple[str, ...]) -> None:
        if isinstance(value, torch.Tensor):
            out[_strip_module(".".join(path))] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, path + (str(k),))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, path + (str(i),))

    walk(obj, ())
    return out


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key
