"""The training recipe: the ``source.recipe`` mapping of a ``train`` catalog entry.

The top-level fields are the paper's recipe (SPEC.md section 1: SGD Nesterov, momentum
0.9, lr 0.01, weight decay 0.01, batch 256, 100 epochs, linear warm-up over 30 % of the
steps then cosine to ~0, seed 0; random-crop + flip for CIFAR, digits resized to 32) with
one correction: the best epoch is chosen on a validation split, and the test split is only
used for the final evaluation. That is the ``paper`` profile. ``quick`` replaces the cost
knobs (epochs, batch size, input size) by :data:`DEFAULT_QUICK`, updated by the recipe's
own ``profiles.quick``, which may also train on a smaller dataset that ships in a package
(offline) and with another optimizer (AdamW: a few hundred SGD steps leave the filters at
their initialisation); every profile runs the same code.

Example
-------
>>> r = Recipe.model_validate({"architecture": "resnet9", "dataset": "sklearn-digits",
...                            "profiles": {"quick": {"epochs": 2, "input_size": 8}}})
>>> r.resolve("quick").epochs, r.resolve("paper").epochs
(2, 100)
"""
from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from ..errors import SourceError
from ..fields import exact_scalar

#: Profiles a recipe can be run with; ``paper`` is the recipe's top level itself.
PROFILES = ("paper", "quick")
#: The ``quick`` profile when a recipe does not say: the budget on a 2-core CPU.
DEFAULT_QUICK = {"epochs": 2, "batch_size": 64, "input_size": 16}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _exact(cls, value, info):
        # a recipe comes from a catalog file: a boolean or a string must not pass for a number
        return exact_scalar(value, cls.model_fields[info.field_name].annotation)


class SGD(_Strict):
    """SGD; the paper's values are the defaults."""

    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(0.01, ge=0)


class AdamW(_Strict):
    """AdamW (decoupled weight decay); torch's defaults except no weight decay."""

    name: Literal["adamw"]
    lr: float = Field(0.001, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


def _optimizer_name(value) -> str:
    """The union's tag: ``name``, and SGD when a mapping leaves it out (the paper's optimizer)."""
    return value.get("name", "sgd") if isinstance(value, dict) else getattr(value, "name", "sgd")


#: ``name`` chooses the optimizer; without one it is SGD.
Optimizer = Annotated[Union[Annotated[SGD, Tag("sgd")], Annotated[AdamW, Tag("adamw")]],
                      Discriminator(_optimizer_name)]


class Schedule(_Strict):
    """Learning rate: linear warm-up from ~0 over ``warmup_fraction`` of all steps, then
    half a cosine down to ``final_lr_fraction`` of the peak (so to ~0)."""

    name: Literal["warmup-cosine"] = "warmup-cosine"
    warmup_fraction: float = Field(0.3, ge=0, lt=1)
    final_lr_fraction: float = Field(0.0, ge=0, le=1)


class Split(_Strict):
    """Fractions of the data held out for validation and test.

    ``test: official`` uses the dataset's own test split (Hub datasets that have one);
    validation is then carved out of the official training split. Splits are stratified
    by class and drawn with the recipe's seed.
    """

    validation: float = Field(0.1, gt=0, lt=1)
    test: float | Literal["official"] = 0.2
    limit: int | None = Field(None, ge=20, description="use only this many examples (stratified), for tests")

    @field_validator("test")
    @classmethod
    def _fraction(cls, v):
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError("must be a fraction in (0, 1) or 'official'")
        return v

    @model_validator(mode="after")
    def _room_for_training(self):
        if isinstance(self.test, float) and self.validation + self.test >= 0.9:
            raise ValueError("validation + test leave less than 10 % for training")
        return self


def _known_dataset(name: str) -> str:
    from .data import DATASETS

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return name


class ProfileOverrides(_Strict):
    """What a profile may change: the cost knobs (including a smaller dataset that ships in a
    package, with its split), and the optimizer (a short run on a CPU leaves SGD's filters at
    their initialisation; the models table's ``source_uri`` names the profile and optimizer)."""

    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=2)
    input_size: int | None = Field(None, ge=8)
    dataset: str | None = Field(None, description="a name of cnn_filter_db.train.data.DATASETS")
    split: Split | None = None
    optimizer: Optimizer | None = None

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v):
        return v if v is None else _known_dataset(v)


class Recipe(_Strict):
    """A whole training run; ``profiles`` is empty once resolved."""

    architecture: str
    dataset: str = Field(description="a name of cnn_filter_db.train.data.DATASETS")
    hub_id: str | None = Field(None, description="Hub dataset id, overriding the dataset's default")
    input_size: int = Field(32, ge=8, description="images are resized to input_size x input_size")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=2)
    optimizer: Optimizer = SGD()
    schedule: Schedule = Schedule()
    augmentation: Literal["auto", "none", "crop-flip"] = Field(
        "auto", description="crop-flip: random crop with 4-pixel padding + horizontal flip; "
                            "auto: crop-flip for CIFAR, none for digits")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    split: Split = Split()
    profiles: dict[Literal["quick"], ProfileOverrides] = Field(default_factory=dict)

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, v):
        from .architectures import ARCHITECTURES

        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {v!r}; known: {', '.join(ARCHITECTURES)}")
        return v

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v):
        return _known_dataset(v)

    def resolve(self, profile: str) -> Recipe:
        """The recipe as run under ``profile``: its overrides applied, ``profiles`` cleared."""
        if profile not in PROFILES:
            raise SourceError(f"unknown training profile {profile!r}; known: {', '.join(PROFILES)}")
        data = self.model_dump()
        data["profiles"] = {}
        if profile == "quick":
            data.update(DEFAULT_QUICK)
            given = self.profiles.get(profile)
            if given is not None:
                data.update({k: v for k, v in given.model_dump().items() if v is not None})
        return Recipe.model_validate(data)

    def key(self) -> str:
        """sha256 of the canonical JSON of the recipe: the same text for the same run."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class CheckpointPin(_Strict):
    """The checkpoint a profile of a recipe gives on a CPU (``train.determinism``): any CPU of
    ``platform`` gives these bytes with these package versions; builds there check it."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the safetensors checkpoint")
    versions: dict[str, str] = Field(description="package -> version the pin was made with (torch, numpy, ...)")
    platform: str = Field("x86_64", description="the machine architecture it holds for (platform.machine())")


def parse_recipe(data: dict, where: str = "source.recipe") -> Recipe:
    """Validate a recipe mapping; errors name each bad field as ``where.field``."""
    if not isinstance(data, dict):
        raise SourceError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            # the optimizer union's tag ("sgd", "adamw") is not a field of the file: leave it out
            parts = [str(x) for i, x in enumerate(err["loc"]) if not (i and err["loc"][i - 1] == "optimizer")]
            loc = ".".join(parts)
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{where}.{loc}: {msg}")
        raise SourceError("invalid training recipe:\n  " + "\n  ".join(lines)) from None
