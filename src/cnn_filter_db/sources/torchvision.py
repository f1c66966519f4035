"""``torchvision``: a torchvision weights enum (``ResNet50_Weights.IMAGENET1K_V2``), downloaded
from its URL; the file's sha256 is pinned in catalog/lock.yaml on the first build and checked
on every later one (see :mod:`cnn_filter_db.sources.pinned`)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..cache import Cache
from ..errors import SourceError
from ..fields import StrictModel
from . import SourceKind, register


class TorchvisionSource(StrictModel):
    """A torchvision weights enum, pinned in catalog/lock.yaml on first build."""

    kind: Literal["torchvision"]
    builder: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,99}$", description="torchvision.models.get_model name, "
                                                                           "e.g. resnet50")
    weights: str = Field(pattern=r"^[A-Za-z0-9_]+_Weights\.[A-Z0-9_]+$", description="e.g. ResNet50_Weights.IMAGENET1K_V2")


def uri(source, model_id: str) -> str:
    return f"torchvision://{source.weights}"


def fetch(source, cache: Cache) -> Path:
    # reached only without a lock root; sources.fetch_file pins through catalog/lock.yaml
    raise SourceError(f"torchvision weights {source.weights} are pinned through catalog/lock.yaml")


register(SourceKind("torchvision", TorchvisionSource, uri, fetch=fetch))
