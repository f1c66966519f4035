"""Per-layer measures (SPEC.md section 5) against brute-force numpy, on real layers and on
hand-made layers with known answers."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis import degeneration, entropy, orthogonality, sparsity
from cnn_filter_db.analysis.entropy import random_entropy, variance_entropy
from cnn_filter_db.analysis.layer import layer_stats


# --------------------------------------------------------------------------- brute force

def bf_sparse_mask(w: np.ndarray, eps: float = 0.01) -> np.ndarray:
    t = np.float32(eps * np.abs(w).max()) if np.abs(w).max() > 0 else np.float32(1.0)
    return (np.abs(w) < t).all(axis=1)


def bf_entropy(w: np.ndarray) -> float:
    x = w.astype(np.float64)
    if len(x) < 2:
        return float("nan")
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    lam = s ** 2 / (len(x) - 1)
    if lam.sum() == 0:
        return 0.0
    p = lam / lam.sum()
    p = p[p > 0]
    return float(-(p * np.log10(p)).sum())


def bf_orthogonality(w: np.ndarray, c_out: int) -> float:
    if c_out == 1:
        return float("nan")
    rows = w.astype(np.float64).reshape(c_out, -1)
    norms = np.linalg.norm(rows, axis=1)
    rows = np.array([r / n if n > 0 else r for r, n in zip(rows, norms)])
    g = rows @ rows.T
    return float(1 - np.abs(g - np.eye(c_out)).sum() / (c_out * (c_out - 1)))


def real_layers(release, max_layers: int = 200):
    """(model_id, layer row, (n, 9) float32 weights) of every layer of a release."""
    layers = pq.read_table(release / "layers").to_pylist()
    by_model = {}
    for path in sorted((release / "filters").rglob("*.parquet")):
        t = pq.read_table(path, columns=["model_id", "layer_id", "weights"])
        if t.num_rows == 0:
            continue
        mid = t.column("model_id")[0].as_py()
        lid = t.column("layer_id").to_numpy()
        w = t.column("weights").combine_chunks().flatten().to_numpy().reshape(-1, 9)
        by_model.setdefault(mid, []).append((lid, w))
    out = []
    for row in layers:
        parts = [w[lid == row["layer_id"]] for lid, w in by_model[row["model_id"]]]
        out.append((row, np.concatenate(parts)))
    return out[:max_layers]


@pytest.fixture(scope="module")
def layers(small_release):
    return real_layers(small_release)


# --------------------------------------------------------------------------- real layers

def test_metrics_match_brute_force_on_real_layers(layers):
    assert len(layers) > 50
    kinds = {row["conv_kind"] for row, _ in layers}
    assert {"dense", "depthwise"} <= kinds
    for row, w in layers:
        n, c_out = len(w), row["out_channels"]
        assert n == row["n_filters"]
        m, mom = layer_stats(w, c_out)
        where = f"{row['model_id']} layer {row['layer_id']}"
        mask = bf_sparse_mask(w)
        assert m["sparsity"] == pytest.approx(mask.mean(), abs=0), where
        h = bf_entropy(w)
        if n < 2:
            assert m["variance_entropy"] is None, where
        else:
            assert m["variance_entropy"] == pytest.approx(h, abs=1e-9), where
            th = 1.2618047 / (1 + math.exp(-0.88767525 * (math.log2(n) - 2.30436435))) - 0.31050834
            if th > 0:
                assert m["variance_entropy_norm"] == pytest.approx(h / th, abs=1e-8), where
        h_clean = bf_entropy(w[~mask])
        if (~mask).sum() >= 2:
            assert m["variance_entropy_clean"] == pytest.approx(h_clean, abs=1e-8), where
        o = bf_orthogonality(w, c_out)
        if c_out > 1:
            assert m["orthogonality"] == pytest.approx(o, abs=1e-6), where
        else:
            assert m["orthogonality"] is None
        x = w.astype(np.float64)
        assert m["weight_mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-15), where
        assert m["weight_std"] == pytest.approx(x.std(), rel=1e-6, abs=1e-12), where
        assert m["weight_absmax"] == float(np.abs(w).max())
        # moments of the shape-normalised filters
        amax = np.abs(x).max(axis=1, keepdims=True)
        f = x / np.where(amax > 0, amax, 1)
        assert mom[0] == n
        np.testing.assert_allclose(mom[1:10], f.sum(axis=0), rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(mom[10:].reshape(9, 9), f.T @ f, rtol=1e-10, atol=1e-9)


def test_some_real_layers_have_sparse_filters(layers):
    # the clean-entropy path must be exercised by real data, not only by hand cases
    assert any(layer_stats(w, row["out_channels"])[0]["sparsity"] > 0 for row, w in layers)


def test_module_functions_agree_with_layer_stats(layers):
    row, w = max(layers, key=lambda rw: rw[0]["n_filters"])
    m, _ = layer_stats(w, row["out_channels"])
    assert sparsity.sparsity(w) == m["sparsity"]
    assert variance_entropy(w) == pytest.approx(m["variance_entropy"], abs=1e-12)
    assert orthogonality.orthogonality(w, row["out_channels"]) == pytest.approx(m["orthogonality"], abs=1e-12)


# --------------------------------------------------------------------------- hand cases

def test_all_zero_layer():
    w = np.zeros((4 * 3, 9), np.float32)
    m, mom = layer_stats(w, 4)
    assert m["sparsity"] == 1.0          # t = 1 and every |w| = 0 < 1
    assert m["variance_entropy"] == 0.0  # every variance is 0
    assert m["variance_entropy_clean"] is None  # no filter left
    # zero rows stay zero: G = 0, so sum|G - I| = c_out
    assert m["orthogonality"] == pytest.approx(1 - 4 / (4 * 3))
    assert m["weight_absmax"] == 0.0 and m["weight_std"] == 0.0
    assert mom[0] == 12 and not mom[1:].any()
    assert m["is_low_diversity_sparse"] is True and m["is_degenerate"] is True


def test_identical_filters():
    f = np.array([0.3, -0.1, 0.2, 0.05, 0.9, -0.4, 0.1, 0.1, -0.7], np.float32)
    w = np.tile(f, (64, 1))
    m, _ = layer_stats(w, 8)
    assert m["variance_entropy"] == 0.0
    assert m["variance_entropy_norm"] == 0.0
    assert m["sparsity"] == 0.0
    assert m["orthogonality"] == pytest.approx(0.0, abs=1e-6)  # every pair of channels is parallel
    assert m["is_random_like"] is False


def test_orthonormal_channels():
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(18, 18)))
    rows = (q[:5] * 0.37).astype(np.float32)      # 5 orthogonal rows of length 2 * 9
    w = rows.reshape(5 * 2, 9)
    m, _ = layer_stats(w, 5)
    assert m["orthogonality"] == pytest.approx(1.0, abs=1e-6)
    assert bf_orthogonality(w, 5) == pytest.approx(1.0, abs=1e-7)  # float32 rows: ~1e-8 off


def test_one_filter():
    w = np.arange(9, dtype=np.float32).reshape(1, 9)
    m, _ = layer_stats(w, 1)
    assert m["variance_entropy"] is None and m["variance_entropy_norm"] is None
    assert m["orthogonality"] is None
    assert m["sparsity"] == 0.0
    assert m["is_random_like"] is None and m["is_degenerate"] is None


def test_one_output_channel():
    w = np.random.default_rng(0).normal(size=(64, 9)).astype(np.float32)
    m, _ = layer_stats(w, 1)
    assert m["orthogonality"] is None
    assert m["variance_entropy"] == pytest.approx(bf_entropy(w), abs=1e-10)


def test_equal_variances_give_log10_9():
    # the 9 coordinate axes, each filter +-1 on one of them: equal variance in every direction
    eye = np.eye(9, dtype=np.float32)
    w = np.concatenate([eye, -eye])
    m, _ = layer_stats(w, 2)
    assert m["variance_entropy"] == pytest.approx(math.log10(9), abs=1e-12)


def test_sparsity_threshold_is_strict():
    w = np.zeros((3, 9), np.float32)
    w[0, 0] = 100.0
    w[1, 4] = 1.0            # exactly 0.01 * max: not below t, so not sparse
    w[2, 8] = 0.99           # below t: sparse
    assert sparse_list(w) == [False, False, True]


def sparse_list(w):
    return sparsity.sparse_mask(sparsity.row_absmax(w), 0.01).tolist()


def test_tiny_weights_orthogonality_uses_float64_norms():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8 * 4, 9)).astype(np.float32)
    o = orthogonality.orthogonality(w, 8)
    tiny = (w.astype(np.float64) * 1e-36).astype(np.float32)  # squares underflow float32
    assert np.all(tiny != 0)
    assert orthogonality.orthogonality(tiny, 8) == pytest.approx(o, abs=1e-5)


def test_random_baseline_formula():
    # TH(n) as torchconvquality defines it
    for n in (3, 9, 64, 4096, 10 ** 6):
        expected = 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834
        assert random_entropy(n) == pytest.approx(expected, rel=1e-15)
    # the fit is a lower envelope of random layers' H: below their mean at n = 64 (0.9208)
    assert 0.88 < random_entropy(64) < 0.9208


def test_gaussian_layers_n64_mean_entropy():
    rng = np.random.default_rng(2022)
    hs = [variance_entropy(rng.standard_normal((64, 9)).astype(np.float32)) for _ in range(2000)]
    assert abs(np.mean(hs) - 0.9208) < 0.002


def test_gaussian_layers_n4096_mean_entropy():
    rng = np.random.default_rng(2023)
    hs = [variance_entropy(rng.standard_normal((4096, 9)).astype(np.float32)) for _ in range(50)]
    assert abs(np.mean(hs) - 0.9537) < 0.001


def test_degeneration_flags_thresholds_are_parameters():
    n = 64
    th = random_entropy(n)
    # margin 0 by default: the authors' threshold itself
    assert degeneration.flags(th, 0.0, n)["is_random_like"] is True
    assert degeneration.flags(th - 1e-9, 0.0, n)["is_random_like"] is False
    assert degeneration.flags(th - 0.019, 0.0, n, margin=0.02)["is_random_like"] is True
    assert degeneration.flags(th - 0.021, 0.0, n, margin=0.02)["is_random_like"] is False
    assert degeneration.flags(th - 0.021, 0.0, n, margin=0.05)["is_random_like"] is True
    f = degeneration.flags(0.49, 0.14, n)
    assert f["is_low_diversity_sparse"] is True and f["is_degenerate"] is True
    assert degeneration.flags(0.49, 0.13, n)["is_low_diversity_sparse"] is False
    assert degeneration.flags(0.49, 0.10, n, sparsity_min=0.1)["is_low_diversity_sparse"] is True
    assert degeneration.flags(0.6, 0.5, n, entropy_max=0.7)["is_degenerate"] is True


def test_entropy_noise_floor_keeps_real_small_variances():
    # a direction with 1e-8 of the variance is real and must count
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5000, 9))
    x[:, 8] *= 1e-4
    h = entropy.variance_entropy(x.astype(np.float32))
    assert h == pytest.approx(bf_entropy(x.astype(np.float32)), abs=1e-9)
