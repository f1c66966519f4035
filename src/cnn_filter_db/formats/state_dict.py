"""Picking convolutions out of a flat name -> array mapping (PyTorch state dicts, safetensors).

Neither format records groups or the graph, so both share one rule: every 4-D tensor named
``weight`` (or ``*.weight`` / ``*_weight``) is a 2-D convolution, ``groups`` is None, and the
level is the conv's position in the order given (SPEC.md section 4).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError
from .base import Conv


def is_conv_weight_name(key: str) -> bool:
    return key == "weight" or key.endswith(".weight") or key.endswith("_weight")


def state_dict_convs(tensors: Mapping[str, np.ndarray], where: str = "state dict") -> list[Conv]:
    """The 2-D convolutions of a flat mapping, in the mapping's order.

    A 4-D conv weight that is not floating point (for example int8 weights of a quantised
    model, whose scales live elsewhere) is refused rather than read as numbers it is not.
    """
    convs = []
    for key, value in tensors.items():
        if value.ndim != 4 or not is_conv_weight_name(key):
            continue
        if not np.issubdtype(value.dtype, np.floating):
            raise FormatError(f"{where}: tensor {key!r} is a 4-D conv weight of dtype {value.dtype}; only "
                              f"floating-point weights are supported (quantised weights need their scales)")
        convs.append(Conv(name=key.removesuffix(".weight"), weight=np.asarray(value, dtype=np.float32),
                          groups=None, level=len(convs)))
    return convs


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key comparing the numbers inside a name as numbers: ``layer2.10`` after ``layer2.9``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(name) if part)
