"""``train``: a model the pipeline trains from the recipe in its entry (see :mod:`cnn_filter_db.train`).

The recipe is the full :class:`~cnn_filter_db.train.recipe.Recipe` model, so ``catalog
validate`` checks every field of it, not the first training run.
"""
from __future__ import annotations

from pathlib import Path
import re
from typing import Literal

from pydantic import Field, model_validator

from .. import train
from ..fields import StrictModel
from ..loaded import Loaded
from ..train.recipe import CheckpointPin, Recipe
from . import SourceKind, register
from .hf import REPO_ID


class TrainSource(StrictModel):
    """A model the pipeline trains from a recipe."""

    kind: Literal["train"]
    recipe: Recipe
    checkpoint: dict[str, CheckpointPin] = Field(
        default_factory=dict, description="profile -> the checkpoint it must give on a CPU (checked on every build)")

    @model_validator(mode="after")
    def _hub_dataset(self):
        # the recipe model also takes a local folder (tests); a catalog entry names a Hub dataset
        hub_id = self.recipe.hub_id
        if hub_id is not None and not re.fullmatch(REPO_ID, hub_id):
            raise ValueError(f"recipe.hub_id: {hub_id!r} is not a Hub dataset id (namespace/name)")
        return self


def uri(source, model_id: str) -> str:
    return f"train://{model_id}"


def build(source, model_id: str, cache_dir: Path | None = None, **options) -> Loaded:
    """Train (or reuse the cached run of) the recipe; ``options`` as :func:`cnn_filter_db.train.load`."""
    return train.load_recipe(model_id, source.recipe, cache_dir=cache_dir, pins=source.checkpoint, **options)


register(SourceKind("train", TrainSource, uri, build=build))
