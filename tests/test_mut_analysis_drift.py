"""Behaviours of drift's hashes, bins, intervals and draws that mutation testing found
undefended (issue 16). Expectations: splitmix64's published test vectors and a reference
written here from its definition, zlib.crc32, numpy quantiles, scipy's KL, hand counts."""
from __future__ import annotations

import warnings
import zlib

import numpy as np
import scipy.stats

from cnn_filter_db.analysis import drift

EPS = 1.1920929e-07
M64 = (1 << 64) - 1


def splitmix64(state: int) -> int:
    """Vigna's splitmix64 step: the output for ``state`` (before the golden-ratio increment)."""
    z = (state + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_reference_splitmix64_gives_the_published_sequence():
    """splitmix64 seeded with 0: its first three outputs, as printed by the reference C code."""
    golden = 0x9E3779B97F4A7C15
    outs = [splitmix64((k * golden) & M64) for k in range(3)]
    assert outs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_mix_int_is_splitmix64():
    rng = np.random.default_rng(0)
    states = [0, 1, 0x9E3779B97F4A7C15, M64, 1 << 63] + [int(x) for x in rng.integers(0, 2 ** 63, 50)]
    for s in states:
        assert drift._mix_int(s) == splitmix64(s), hex(s)
    assert drift._mix_int(0) == 0xE220A8397B1DCDAF


def test_layer_key_hashes_seed_model_crc_and_layer():
    """SPEC of the null's split: key = mix(mix(seed << 32 | crc32(model)) ^ layer)."""
    for seed, model, layer in [(0, "m", 0), (7, "timm-resnet18", 3), (2 ** 31 + 5, "x", 1 << 40), (3, "a", -1)]:
        inner = splitmix64(((seed & 0xFFFFFFFF) << 32) | zlib.crc32(model.encode()))
        assert drift.layer_key(seed, model, layer) == splitmix64(inner ^ (layer & M64)), (seed, model, layer)


def test_uniforms_are_splitmix64_of_the_channels_and_key():
    """u = (splitmix64((out << 32 | in) ^ key) >> 11) / 2**53, filter by filter."""
    out_c = np.array([0, 0, 1, 5, 70000, 3], dtype=np.int64)
    in_c = np.array([0, 1, 0, 9, 2, 65535], dtype=np.int64)
    key = drift.layer_key(11, "some-model", 4)
    got = drift.uniforms(key, out_c, in_c)
    expected = [(splitmix64(((o << 32) | i) ^ key) >> 11) / 2.0 ** 53 for o, i in zip(out_c.tolist(), in_c.tolist())]
    assert got.dtype == np.float64 and got.tolist() == expected
    assert drift.uniforms(0, np.zeros(1, np.int64), np.zeros(1, np.int64))[0] == (0xE220A8397B1DCDAF >> 11) / 2.0 ** 53


def test_model_halves_deal_models_in_key_order_with_layer_minus_one():
    """Models sorted by key(seed, model, -1) (the model's own key, no layer), then dealt
    A, B, A, B...: computed here from the reference hash."""
    ids = [f"model-{i}" for i in range(9)]
    for seed in (0, 1, 42):
        keys = [splitmix64(splitmix64((seed << 32) | zlib.crc32(m.encode())) ^ M64) for m in ids]
        order = sorted(range(len(ids)), key=lambda i: (keys[i], ids[i]))
        expected = [0] * len(ids)
        for rank, i in enumerate(order):
            expected[i] = rank % 2
        assert drift.model_halves(ids, seed).tolist() == expected, seed


def test_bin_edges_cut_the_range_in_equal_parts():
    assert drift.bin_edges(-1.0, 1.0, 4).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert len(drift.bin_edges(-3.0, 4.0, 70)) == 71


def test_probabilities_of_a_one_filter_histogram():
    """One count in bin 1 of 4 (width 0.5): density 2 there, the empty bins EPS, then / sum."""
    counts = np.zeros((9, 4))
    counts[:, 1] = 1
    p = drift.probabilities(counts, 0.5, EPS)
    expected = np.array([EPS, 2.0, EPS, EPS]) / (2.0 + 3 * EPS)
    np.testing.assert_allclose(p, np.tile(expected, (9, 1)), rtol=1e-15)


def test_an_absent_group_gives_nan_quietly():
    """A histogram with no counts (a group that drew weight 0): NaN, and no numpy warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = drift.probabilities(np.zeros((2, 9, 4)), 0.5, EPS)
    assert np.isnan(p).all()


def test_interval_is_the_percentile_interval_over_axis_0():
    """Replicates 0..1000 in cell (0, 0), 1000..2000 in (0, 1), ...: numpy's linear quantiles
    at 2.5 % and 97.5 % are 25 and 975 above each cell's offset; an all-NaN cell is NaN, quietly."""
    base = np.arange(1001.0)
    reps = np.stack([base, base + 1000, base + 2000, np.full(1001, np.nan)], axis=1).reshape(1001, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi, n_valid = drift.interval(reps, 0.95)
        med = drift.median_of(reps)
    assert lo.shape == hi.shape == (2, 2)
    np.testing.assert_allclose(lo, [[25.0, 1025.0], [2025.0, np.nan]], rtol=1e-12)   # (1 - 0.95) / 2 rounds
    np.testing.assert_allclose(hi, [[975.0, 1975.0], [2975.0, np.nan]], rtol=1e-12)
    np.testing.assert_array_equal(n_valid, [[1001, 1001], [1001, 0]])
    np.testing.assert_array_equal(med, [[500.0, 1500.0], [2500.0, np.nan]])
    lo90, hi90, _ = drift.interval(reps, 0.9)
    assert abs(lo90[0, 0] - 50.0) < 1e-9 and abs(hi90[0, 0] - 950.0) < 1e-9


def test_an_interval_reaching_exactly_down_to_the_null_is_no_evidence():
    assert drift.no_evidence(0.3, 0.2, 0.2, 0.05)


def test_poisson_weight_streams_are_numpys_generator_of_the_seed():
    """The default stream is stream 0, and other streams give other weights; same seed, same
    weights (Poisson(1) counts, as float)."""
    default = drift.poisson_weights(20, 50, seed=3)
    np.testing.assert_array_equal(default, drift.poisson_weights(20, 50, seed=3, stream=0))
    assert not np.array_equal(default, drift.poisson_weights(20, 50, seed=3, stream=1))
    assert not np.array_equal(drift.poisson_weights(20, 50, seed=3, stream=1),
                              drift.poisson_weights(20, 50, seed=3, stream=2))
    assert default.dtype == np.float64 and set(np.unique(default)) <= set(range(10))


def _one_filter_groups():
    """Two groups of one model holding one filter each: coefficient i of group 0 in bin 1,
    of group 1 in bin 3 (of 5)."""
    a, b = np.zeros((1, 9, 5), np.int64), np.zeros((1, 9, 5), np.int64)
    a[0, :, 1] = 1
    b[0, :, 3] = 1
    return [a, b], [np.array([0]), np.array([1])]


def test_size_controlled_draws_from_one_filter_groups_are_that_filter():
    """Drawing m filters from a group of one filter gives m copies of it, whatever the seed:
    D is then the symmetric KL of two m-count histograms (scipy), in every draw; no warning
    where a group drew weight 0 (its D is NaN)."""
    hists, idx = _one_filter_groups()
    w = np.array([[1.0, 1.0], [2.0, 1.0], [0.0, 1.0]])
    weights = np.full(9, 1 / 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draws = drift.subsample_drift(hists, idx, w, 40, 0.1, weights, EPS, seed=5)
    p = np.array([EPS, 40 / (40 * 0.1), EPS, EPS, EPS])
    q = p[[0, 3, 2, 1, 4]]
    p, q = p / p.sum(), q / q.sum()
    expected = scipy.stats.entropy(p, q) + scipy.stats.entropy(q, p)
    np.testing.assert_allclose(draws[:2, 0, 1], [expected, expected], rtol=1e-12)
    assert np.isnan(draws[2, 0, 1]) and draws[0, 0, 0] == 0.0
