"""safetensors files, read with ``safetensors.numpy`` (no torch needed).

Convolutions are picked as in a PyTorch state dict (:mod:`.state_dict`): every 4-D tensor
named ``weight`` / ``*.weight`` / ``*_weight``; ``groups`` is None.

Order (the level of each conv): safetensors stores its tensors sorted by name, so the order
of the original state dict is lost. The level is therefore the **natural order of the tensor
names** (numbers compared as numbers: ``features.2`` before ``features.10``), which restores
the order of ``nn.Sequential`` and numbered blocks. A file may instead state the order in its
``__metadata__`` under the key ``"order"``: a JSON list of tensor names; the names it lists
come first, in that order, and any others follow in natural order.

bfloat16 tensors (which numpy cannot hold) are widened to float32 exactly from their raw
bytes; 8-bit float and integer conv weights are refused.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import register
from .base import ModelConvs
from .sniff import mismatch_hint
from .state_dict import is_conv_weight_name, natural_key, state_dict_convs

#: Metadata key that may hold an explicit tensor order (a JSON list of names).
ORDER_KEY = "order"
_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                 "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
                 "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_}
_MAX_HEADER = 100_000_000


@register("safetensors")
def read_safetensors(path: Path) -> ModelConvs:
    import safetensors
    from safetensors import safe_open

    header, data_start = read_header(path)
    metadata = header.get("__metadata__") or {}
    names = [k for k in header if k != "__metadata__"]
    try:
        arrays = {}
        with safe_open(str(path), framework="numpy") as f:
            for name in ordered_names(names, metadata, path):
                info = header[name]
                if len(info.get("shape", ())) != 4 or not is_conv_weight_name(name):
                    continue
                dtype = info.get("dtype")
                if dtype == "BF16":
                    arrays[name] = _read_bf16(path, data_start, info)
                elif dtype in _NUMPY_DTYPES:
                    arrays[name] = f.get_tensor(name)
                else:
                    raise FormatError(f"{path}: tensor {name!r} has dtype {dtype}, which is not supported "
                                      f"(supported: F64, F32, F16, BF16)")
    except safetensors.SafetensorError as exc:
        raise FormatError(f"{path}: not a readable safetensors file ({exc})") from None
    convs = state_dict_convs(arrays, str(path))
    return ModelConvs(convs=convs, format="safetensors", framework_versions={"safetensors": safetensors.__version__})


def read_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the offset where its data starts.

    The format is an 8-byte little-endian header length, the JSON header, then the data;
    every tensor's ``data_offsets`` must lie inside the file (a truncated file fails here).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not (2 <= n <= min(_MAX_HEADER, size - 8)):
            raise FormatError(f"{path}: not a safetensors file (no valid header length){mismatch_hint(path, 'safetensors')}")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{path}: not a safetensors file (the header is not JSON){mismatch_hint(path, 'safetensors')}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: not a safetensors file (the header is not a JSON object)")
    data_start = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise FormatError(f"{path}: tensor {name!r} has no valid data_offsets in the header") from None
        if data_start + end > size:
            raise FormatError(f"{path}: truncated: tensor {name!r} ends at byte {data_start + end}, "
                              f"but the file has {size} bytes")
    return header, data_start


def ordered_names(names: list[str], metadata: dict, path: Path) -> list[str]:
    """Tensor names in the order the docstring of this module defines."""
    rest = sorted(names, key=natural_key)
    if ORDER_KEY not in metadata:
        return rest
    try:
        explicit = json.loads(metadata[ORDER_KEY])
        if not isinstance(explicit, list) or not all(isinstance(x, str) for x in explicit):
            raise ValueError
    except ValueError:
        raise FormatError(f"{path}: __metadata__[{ORDER_KEY!r}] must be a JSON list of tensor names") from None
    unknown = [x for x in explicit if x not in names]
    if unknown:
        raise FormatError(f"{path}: __metadata__[{ORDER_KEY!r}] names tensors the file does not hold: {unknown[:5]}")
    listed = set(explicit)
    return list(dict.fromkeys(explicit)) + [x for x in rest if x not in listed]


def _read_bf16(path: Path, data_start: int, info: dict) -> np.ndarray:
    begin, end = info["data_offsets"]
    shape = tuple(int(x) for x in info["shape"])
    if end - begin != 2 * int(np.prod(shape)):
        raise FormatError(f"{path}: a BF16 tensor's byte size does not match its shape {shape}")
    raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=data_start + begin)
    # bfloat16 is the top half of a float32: widening is exact
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
