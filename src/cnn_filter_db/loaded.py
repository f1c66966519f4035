"""The record every source kind returns: a model's convolutions and where its weights came from.

It sits below both ``sources`` and ``train`` so that neither imports the other for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .formats.base import ModelConvs


@dataclass
class Loaded:
    """A model's convolutions and the provenance of its weights."""

    convs: ModelConvs
    weights_sha256: str
    uri: str
    path: Path | None = None  # the cached file, for file sources
    accuracy: float | None = None  # measured by the pipeline (trained models)
    validation_accuracy: float | None = None
    training_steps: int | None = None  # optimizer steps of a trained-here run (its training record)
    training_dataset: str | None = None  # the dataset a trained-here run used (a profile may change it)
