"""Behaviours of the population labels and masks that mutation testing found undefended
(issue 16); expectations from SPEC's formulas in Python floats, numpy's SVD or hand counts."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from cnn_filter_db.analysis import population


def th(n: int) -> float:
    """SPEC's TH(n), written out."""
    return 1.2618047 / (1 + math.exp(-0.88767525 * (math.log2(n) - 2.30436435))) - 0.31050834


def svd_entropy(w: np.ndarray) -> float:
    x = np.asarray(w, dtype=np.float64).reshape(-1, 9)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    p = s ** 2 / (s ** 2).sum()
    p = p[p > 0]
    return float(-(p * np.log10(p)).sum())


def test_random_like_share_counts_filters_of_four_dimensional_layers():
    """An (8, 8, 3, 3) Gaussian layer holds n = 64 filters: its H (numpy SVD, about 0.93) is
    above TH(64) = 0.906 but below TH(576) = 0.948, so it is random-like only when its filters,
    not its 576 weights, are counted."""
    w = np.random.default_rng(0).standard_normal((8, 8, 3, 3)).astype(np.float32)
    h = svd_entropy(w)
    assert th(64) <= h < th(576)
    assert population.random_like_share([w]) == 1.0
    assert population.random_like_share([w.reshape(64, 9)]) == 1.0


def test_a_two_filter_layer_counts_and_is_random_like():
    """H is defined from 2 filters on (SPEC); two filters vary along one direction, H = 0, and
    TH(2) = -0.0089 < 0, so the layer is random-like. A one-filter layer has no H and is left
    out: 1 of the 2 layers with H is random-like below."""
    assert th(2) < 0
    two = np.array([[1, 2, 3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 4, 5, 6, 0, 0, 1]], np.float32)
    assert population.random_like_share([two]) == 1.0
    assert population.random_like_share([two[:1]]) is None
    rng = np.random.default_rng(1)
    patterned = (rng.standard_normal((256, 1)) * rng.standard_normal((1, 9))
                 + 0.01 * rng.standard_normal((256, 9))).astype(np.float32)   # one shared pattern
    assert svd_entropy(patterned) < th(256)
    assert population.random_like_share([two, two[:1], patterned]) == 0.5


def test_no_models_give_empty_boolean_masks():
    for name in population.POPULATIONS:
        mask = population.members(name, [], [])
        assert mask.dtype == bool and mask.shape == (0,), name
    assert population.in_trained_population([], []).dtype == bool
    pop = population.Population("trained", [], [], [], np.zeros(0, dtype=np.int64))
    assert pop.model_in.shape == (0,) and pop.layer_in.shape == (0,) and pop.control_models == []


def test_population_masks_select_models_by_boolean_indexing():
    """The masks index the models: by hand, 'a' pretrained, 'b' trained here, 'c' trained
    here but near initialisation, 'd' an initialisation."""
    ids = np.array(["a", "b", "c", "d"])
    training = ["pretrained", "trained-here", "trained-here", "initialisation"]
    near = [False, False, True, False]
    expected = {"trained": ["a", "b"], "controls": ["c", "d"], "all": ["a", "b", "c", "d"]}
    for name, want in expected.items():
        mask = population.members(name, training, near)
        assert mask.dtype == bool and ids[mask].tolist() == want, name


def test_population_records_its_name_and_each_models_membership():
    training = ["pretrained", "trained-here", "trained-here", "initialisation"]
    near = [False, False, True, False]
    for name in population.POPULATIONS:
        pop = population.Population(name, list("abcd"), training, near, np.array([0, 1, 2, 3]))
        assert pop.name == name
        # membership of the trained population, whatever population is analysed
        assert pop.member.tolist() == ["trained", "trained", "control", "control"]


def test_trained_model_ids_treat_an_unknown_near_initialisation_as_not_near():
    """A null near_initialisation (a model whose label was not written) is not evidence of
    an initialisation: the model stays in the trained population. Hand count: 'a' and 'b'."""
    table = pa.table({"model_id": ["c", "b", "a"], "training": ["trained-here", "pretrained", "pretrained"],
                      "near_initialisation": pa.array([True, None, False])})
    assert population.trained_model_ids(table) == ["a", "b"]
    frame = pd.DataFrame({"model_id": ["c", "b", "a"], "training": ["trained-here", "pretrained", "pretrained"],
                          "near_initialisation": pd.array([True, None, False], dtype="boolean")})
    assert population.trained_model_ids(frame) == ["a", "b"]
