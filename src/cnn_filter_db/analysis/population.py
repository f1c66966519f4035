"""Whose filters are trained: each model's training label, and the populations of the analysis.

Every statistic of the analysis (bases, drift, degeneration shares, per-group summaries) is
computed over one population of models; the others are controls, reported beside and never
pooled (SPEC.md section 5). The labels are columns of the ``models`` table, written when a
model is extracted (:func:`model_labels`), so the card and users select the same models:

- ``training``: ``pretrained`` (trained elsewhere; weights downloaded), ``trained-here``
  (catalog source kind ``train``: trained by this pipeline), ``initialisation`` (catalog
  ``trained: false``: random weights from a fixed seed).
- ``training_steps``: optimizer steps of a trained-here run, from its training record; null
  for other models and when the record does not say.
- ``random_like_share``: the share of the model's 3x3 layers whose variance entropy reaches
  the authors' random threshold, ``H >= TH(n)`` (margin 0, whatever the analysis' own
  ``random_like_margin``), over the layers where H is defined (at least 2 filters); null
  when no layer has H.
- ``near_initialisation``: a trained-here model with ``random_like_share >=``
  :data:`NEAR_INITIALISATION_SHARE`: its filters have not left the initialisation (a short
  run from a random init keeps the init's H), so it is a control like an initialisation.

Populations (``analyze.population``): ``trained`` (default) = pretrained models and
trained-here models that are not near initialisation; ``controls`` = the rest
(initialisations and near-initialisation runs); ``all`` = every model.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..params import ALL, CONTROLS, POPULATIONS, TRAINED  # noqa: F401 (part of this module's API)
from .degeneration import random_like
from .entropy import variance_entropy

PRETRAINED, TRAINED_HERE, INITIALISATION = "pretrained", "trained-here", "initialisation"
TRAINING_KINDS = (PRETRAINED, TRAINED_HERE, INITIALISATION)

#: A trained-here model with at least this share of random-like layers is near initialisation.
NEAR_INITIALISATION_SHARE = 0.9

CONTROL = "control"  # a model's membership when it is not in the trained population

#: The grouping that compares each control model with the trained population (its group 0).
CONTROL_GROUPING, TRAINED_GROUP = "control", "trained population"


def training_kind(trained: bool, source_kind: str) -> str:
    """``pretrained``, ``trained-here`` or ``initialisation`` of a catalog entry."""
    if not trained:
        return INITIALISATION
    return TRAINED_HERE if source_kind == "train" else PRETRAINED


def random_like_share(layer_weights: Iterable[np.ndarray]) -> float | None:
    """Share of layers (each an (n, 9) or (out, in, 3, 3) array) with ``H >= TH(n)``."""
    flags = []
    for w in layer_weights:
        w = np.asarray(w).reshape(-1, 9)
        if len(w) >= 2:
            flags.append(random_like(variance_entropy(w), len(w)))
    return float(np.mean(flags)) if flags else None


def is_near_initialisation(training: str, share: float | None) -> bool:
    return training == TRAINED_HERE and share is not None and share >= NEAR_INITIALISATION_SHARE


def model_labels(trained: bool, source_kind: str, layer_weights: Iterable[np.ndarray],
                 training_steps: int | None = None) -> dict:
    """The four label columns of one model's ``models`` row."""
    kind = training_kind(trained, source_kind)
    share = random_like_share(layer_weights)
    return {"training": kind, "training_steps": training_steps if kind == TRAINED_HERE else None,
            "random_like_share": share, "near_initialisation": is_near_initialisation(kind, share)}


def in_trained_population(training, near_initialisation) -> np.ndarray:
    """True for the models of the trained population (arrays of the two columns)."""
    training = np.asarray(training, dtype=object)
    near = np.asarray([bool(v) for v in near_initialisation], dtype=bool)
    return ((training == PRETRAINED) | (training == TRAINED_HERE)) & ~near


def members(population: str, training, near_initialisation) -> np.ndarray:
    """Boolean mask of the models in ``population`` (one of :data:`POPULATIONS`)."""
    trained = in_trained_population(training, near_initialisation)
    if population == TRAINED:
        return trained
    if population == CONTROLS:
        return ~trained
    return np.ones(len(trained), dtype=bool)


def control_kind(training: str, near_initialisation: bool) -> str | None:
    """``initialisation`` or ``near-initialisation`` for a control model, None otherwise."""
    if training == INITIALISATION:
        return INITIALISATION
    return "near-initialisation" if near_initialisation else None


def trained_model_ids(models) -> list[str]:
    """The model ids of the trained population, sorted, from a ``models`` table (pyarrow or
    pandas); the card lists their ``filters/<model_id>/`` folders as the trained config."""
    if hasattr(models, "to_pandas"):
        models = models.to_pandas()
    mask = in_trained_population(models["training"].to_numpy(), models["near_initialisation"].fillna(False))
    return sorted(models["model_id"][mask].tolist())


class Population:
    """The models and layers of one population, and the controls beside it.

    Attributes
    ----------
    name : the population (:data:`POPULATIONS`).
    model_in : (n_models,) bool, in ``models`` order; ``layer_in`` : (n_layers,) bool.
    member : per model, ``trained`` or ``control`` (membership of the trained population).
    control_models : sorted ids of the controls reported beside (population ``trained`` only).
    control_layers : ``initialisation`` / ``near-initialisation`` -> (n_layers,) bool.
    """

    def __init__(self, name: str, model_ids: list[str], training, near_initialisation,
                 model_of_layer: np.ndarray):
        near = [bool(v) for v in near_initialisation]
        trained = in_trained_population(training, near)
        self.name = name
        self.model_in = members(name, training, near)
        self.layer_in = self.model_in[model_of_layer]
        self.member = np.where(trained, TRAINED, CONTROL)
        kinds = [control_kind(t, n) for t, n in zip(training, near)]
        self.control_models, self.control_layers = [], {}
        if name == TRAINED:
            self.control_models = sorted(m for m, k in zip(model_ids, kinds) if k is not None)
            for kind in (INITIALISATION, "near-initialisation"):
                per_model = np.array([k == kind for k in kinds], dtype=bool)
                if per_model.any():
                    self.control_layers[kind] = per_model[model_of_layer]
