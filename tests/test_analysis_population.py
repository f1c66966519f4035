"""Training labels of the models table, the populations, and the original's depth deciles."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis import population
from cnn_filter_db.analysis.labels import DEPTH_DECILE_LABELS, depth_decile_codes
from test_analysis_metrics import bf_entropy, real_layers

TH = lambda n: 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834  # noqa: E731


def test_training_kinds_and_the_near_initialisation_rule():
    assert population.training_kind(False, "timm") == "initialisation"
    assert population.training_kind(False, "train") == "initialisation"
    assert population.training_kind(True, "train") == "trained-here"
    assert population.training_kind(True, "pypi") == "pretrained"
    assert population.is_near_initialisation("trained-here", 0.9)
    assert not population.is_near_initialisation("trained-here", 8 / 9)
    assert not population.is_near_initialisation("pretrained", 1.0)  # only runs of this pipeline
    assert not population.is_near_initialisation("trained-here", None)
    labels = population.model_labels(True, "pypi", [], training_steps=120)
    assert labels == {"training": "pretrained", "training_steps": None, "random_like_share": None,
                      "near_initialisation": False}


def test_a_short_run_from_a_random_init_is_near_initialisation():
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((64 * 32, 9)).astype(np.float32) for _ in range(9)]
    labels = population.model_labels(True, "train", init, training_steps=110)
    assert labels["random_like_share"] == 1.0 and labels["near_initialisation"] and labels["training_steps"] == 110
    # a run whose layers left the init: shared patterns in 7 of 9 layers
    protos = rng.standard_normal((2, 9))
    moved = [(rng.standard_normal((2048, 2)) @ protos + 0.05 * rng.standard_normal((2048, 9))).astype(np.float32)
             for _ in range(7)] + init[:2]
    labels = population.model_labels(True, "train", moved)
    assert labels["random_like_share"] == pytest.approx(2 / 9) and not labels["near_initialisation"]


def test_models_table_labels_of_a_real_release(small_release):
    models = pq.read_table(small_release / "models").to_pandas().set_index("model_id")
    assert dict(models.training) == {"rapidocr-ppocrv4-det": "pretrained", "facenet-mtcnn-onet": "pretrained",
                                     "efficientnet-lite0": "pretrained", "nudenet-320n": "pretrained",
                                     "timm-efficientnet_b0-init": "initialisation"}
    assert models.training_steps.isna().all() and not models.near_initialisation.any()
    # the share, by brute force on the layers' filters
    flags = {}
    for row, w in real_layers(small_release, max_layers=10_000):
        h = bf_entropy(w)
        if not math.isnan(h):
            flags.setdefault(row["model_id"], []).append(h >= TH(len(w)))
    for model_id, f in flags.items():
        assert models.loc[model_id, "random_like_share"] == pytest.approx(np.mean(f), abs=1e-12), model_id
    assert models.loc["timm-efficientnet_b0-init", "random_like_share"] == 1.0
    assert population.trained_model_ids(pq.read_table(small_release / "models")) == sorted(
        set(models.index) - {"timm-efficientnet_b0-init"})


def test_population_masks():
    training = ["pretrained", "trained-here", "trained-here", "initialisation"]
    near = [False, False, True, False]
    pop = population.Population("trained", ["a", "b", "c", "d"], training, near, np.array([0, 0, 1, 2, 3, 3]))
    assert pop.model_in.tolist() == [True, True, False, False]
    assert pop.layer_in.tolist() == [True, True, True, False, False, False]
    assert pop.control_models == ["c", "d"]
    assert pop.control_layers["near-initialisation"].tolist() == [False, False, False, True, False, False]
    assert pop.control_layers["initialisation"].tolist() == [False, False, False, False, True, True]
    ctl = population.Population("controls", ["a", "b", "c", "d"], training, near, np.array([0, 1, 2, 3]))
    assert ctl.model_in.tolist() == [False, False, True, True] and ctl.control_models == []
    assert population.Population("all", list("abcd"), training, near, np.arange(4)).model_in.all()


# --------------------------------------------------------------------------- depth deciles

def original_decile(x: Fraction) -> int:
    """The original's pd.cut bin of an exact depth ratio: (k/10, (k+1)/10], 0 in the first."""
    return 0 if x == 0 else math.ceil(10 * x) - 1


def test_depth_deciles_match_the_original_on_every_ratio_and_boundary():
    depth, expected, boundary = [], [], 0
    for levels in range(2, 61):
        for d in range(levels):
            x = Fraction(d, levels - 1)
            depth.append(np.float32(d / (levels - 1)))  # as extract stores conv_depth_norm
            expected.append(original_decile(x))
            boundary += (10 * x).denominator == 1
    got = depth_decile_codes(np.array(depth, dtype=np.float32))
    assert boundary > 100  # the cases that floor(10 x) put one decile too high
    np.testing.assert_array_equal(got, expected)
    assert depth_decile_codes(np.array([0.3, 0.7, 1.0, 0.0, 0.05], np.float32)).tolist() == [2, 6, 9, 0, 0]
    assert depth_decile_codes(np.array([np.nan])).tolist() == [-1]


def test_depth_decile_labels_are_the_original_ones():
    assert DEPTH_DECILE_LABELS == ["[0.0, 0.1]", "(0.1, 0.2]", "(0.2, 0.3]", "(0.3, 0.4]", "(0.4, 0.5]",
                                   "(0.5, 0.6]", "(0.6, 0.7]", "(0.7, 0.8]", "(0.8, 0.9]", "(0.9, 1.0]"]
    # pandas itself, on exact values, agrees with the codes
    x = np.array([0.0, 0.1, 0.10001, 0.3, 0.5, 0.95, 1.0])
    cut = pd.cut(x, np.arange(11) / 10, include_lowest=True, labels=False)
    np.testing.assert_array_equal(depth_decile_codes(x), cut)
