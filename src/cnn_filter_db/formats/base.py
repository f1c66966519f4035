"""The record every format reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Conv:
    """One 2-D convolution as a weights file knows it.

    ``weight`` has shape (out_channels, in_channels_per_group, kh, kw), the layout of
    PyTorch and ONNX; readers of other layouts transpose to it. ``groups`` is None where the
    format does not record it (state dicts, safetensors). ``level`` is the depth level:
    the longest data path from the inputs for graphs, the order in the file for state dicts.
    ``kind`` is set where the format itself says (e.g. a Keras DepthwiseConv2D); otherwise
    extraction applies SPEC.md's rule.
    """

    name: str
    weight: np.ndarray
    groups: int | None
    level: int
    kind: str | None = None

    @property
    def kernel(self) -> tuple[int, int]:
        return tuple(self.weight.shape[2:])  # type: ignore[return-value]


@dataclass
class ModelConvs:
    """All 2-D convolutions of one model, plus facts about the file."""

    convs: list[Conv]
    format: str
    framework_versions: dict[str, str] = field(default_factory=dict)
