"""``analyze`` end to end on a real release: layer_stats, reports, streaming edge cases
(layers across batches and shards), the Dask engine, and errors that name what is wrong."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import schema, writer
from cnn_filter_db.analysis.pipeline import analyze
from cnn_filter_db.analysis.basis import BasisReducer
from cnn_filter_db.errors import AnalysisError
from test_analysis_metrics import bf_entropy, bf_orthogonality, bf_sparse_mask, real_layers

ROOT = Path(__file__).resolve().parents[1]
FAST = {"bootstrap": 30, "model_plots": False}
METRICS = ["sparsity", "variance_entropy", "variance_entropy_norm", "variance_entropy_clean", "orthogonality",
           "weight_mean", "weight_std", "weight_absmax"]
FLAGS = ["is_random_like", "is_low_diversity_sparse", "is_degenerate"]


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def analysed(small_release, tmp_path_factory):
    """A copy of the small release, analysed with the default params (model plots on)."""
    base = tmp_path_factory.mktemp("analysed")
    release = copy(small_release, base / "release")
    summary = analyze(release, base / "reports", {"bootstrap": 50})
    return release, base / "reports", summary


def stats_of(release: Path) -> pd.DataFrame:
    return pq.read_table(release / "layer_stats").to_pandas()


def drift_of(reports: Path, grouping: str) -> pd.DataFrame:
    return pd.read_csv(reports / "drift" / f"{grouping}.csv", dtype={"group_a": str, "group_b": str})


# --------------------------------------------------------------------------- outputs

def test_layer_stats_table(analysed, small_release):
    release, _, summary = analysed
    files = list((release / "layer_stats").glob("*.parquet"))
    assert [f.name for f in files] == ["train-00000-of-00001.parquet"]
    table = pq.read_table(files[0])
    assert table.schema.equals(schema.LAYER_STATS_SCHEMA)
    layers = pq.read_table(small_release / "layers").to_pandas().sort_values(["model_id", "layer_id"])
    stats = table.to_pandas()
    # every layer of the release has its row; the summary counts the trained population's
    assert len(stats) == len(layers) == summary["release"]["layers"]
    assert summary["layers"] == (layers.model_id != "timm-efficientnet_b0-init").sum()
    pd.testing.assert_frame_equal(stats[layers.columns].reset_index(drop=True), layers.reset_index(drop=True))
    # every metric against brute force on the raw filters
    by_key = stats.set_index(["model_id", "layer_id"])
    for row, w in real_layers(small_release, max_layers=10_000):
        got = by_key.loc[(row["model_id"], row["layer_id"])]
        mask = bf_sparse_mask(w)
        assert got["sparsity"] == mask.mean()
        h = bf_entropy(w)
        if math.isnan(h):
            assert pd.isna(got["variance_entropy"])
        else:
            assert got["variance_entropy"] == pytest.approx(h, abs=1e-9)
        if row["out_channels"] > 1:
            assert got["orthogonality"] == pytest.approx(bf_orthogonality(w, row["out_channels"]), abs=1e-6)
        assert got["weight_absmax"] == float(np.abs(w).max())
        assert bool(got["is_degenerate"]) == bool(got["is_random_like"] or got["is_low_diversity_sparse"])


INIT = "timm-efficientnet_b0-init"  # the one control of the small release


def weights_of(release: Path, models=None) -> np.ndarray:
    paths = sorted(p for p in (release / "filters").rglob("*.parquet")
                   if (models is None or p.parent.name in models) and pq.ParquetFile(p).metadata.num_rows)
    return np.concatenate([pq.read_table(p, columns=["weights"]).column("weights").combine_chunks().flatten()
                           .to_numpy().reshape(-1, 9) for p in paths])


def test_reports(analysed, small_release):
    release, reports, summary = analysed
    metrics = json.loads((reports / "metrics.json").read_text())
    n_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (small_release / "filters").rglob("*.parquet"))
    assert metrics["release"]["filters"] == n_rows == summary["release"]["filters"]
    assert metrics["release"]["models"] == 5
    # every share is over the trained population: the timm baseline is a control, beside
    assert metrics["population"] == "trained" and metrics["models"] == 4
    assert metrics["filters"] == n_rows - 2720
    assert metrics["controls"]["initialisation"]["share_random_like_layers"] == 1.0
    assert metrics["controls"]["initialisation"]["models"] == 1
    assert metrics["share_random_like_layers"] < 0.1
    # the global basis is the trained population's, computed from its filters at once
    trained = [d.name for d in (small_release / "filters").iterdir() if d.name != INIT]
    ref = BasisReducer().partial_fit(weights_of(small_release, trained)).basis()
    glob = json.loads((reports / "basis" / "global.json").read_text())
    assert glob["population"] == "trained" and glob["count"] == n_rows - 2720
    np.testing.assert_allclose(glob["components"], ref.components, atol=1e-9)
    np.testing.assert_allclose(glob["explained_variance_ratio"], ref.explained_variance_ratio, atol=1e-12)
    # the control's own basis
    ctrl = json.loads((reports / "basis" / "controls.json").read_text())
    ref = BasisReducer().partial_fit(weights_of(small_release, [INIT])).basis()
    np.testing.assert_allclose(ctrl["initialisation"]["components"], ref.components, atol=1e-9)
    training = json.loads((reports / "basis" / "training.json").read_text())
    assert set(training["groups"]) == {"pretrained"}
    summary_csv = pd.read_csv(reports / "model_summary.csv").set_index("model_id")
    assert len(summary_csv) == 5
    assert summary_csv.loc[INIT, "population"] == "control" and summary_csv.loc[INIT, "training"] == "initialisation"
    assert set(summary_csv.drop(INIT).population) == {"trained"}
    assert summary_csv.loc[INIT, "share_random_like"] == 1.0 and summary_csv.loc[INIT, "share_degenerate"] == 1.0
    readme = (reports / "README.md").read_text()
    assert "drift/<grouping>.csv" in readme and f"{n_rows:,}" in readme and "**trained population**" in readme
    for name in ["eigen_images.png", "eigen_images_initialisation.png", "entropy_sparsity_vs_depth.png",
                 "drift_task.png", "drift_control.png", "coefficients_depth_decile.png", "layers/nudenet-320n.png"]:
        data = (reports / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_degeneration_sensitivity_counts_the_population(analysed):
    release, reports, _ = analysed
    sens = pd.read_csv(reports / "degeneration_sensitivity.csv")
    assert sorted(zip(sens.margin, sens.low_diversity_rule)) == sorted(
        (m, r) for m in (0.0, 0.02, 0.05) for r in ("and", "or"))
    stats = stats_of(release)
    stats = stats[(stats.model_id != INIT) & stats.variance_entropy.notna()]
    for row in sens.itertuples():
        th = 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(stats.n_filters) - 2.30436435))) - 0.31050834
        rnd = stats.variance_entropy >= th - row.margin
        low, sparse = stats.variance_entropy < 0.5, stats.sparsity >= 0.14
        low = (low & sparse) if row.low_diversity_rule == "and" else (low | sparse)
        assert row.layers == len(stats)
        assert (row.random_like, row.low_diversity_sparse, row.degenerate) == (rnd.sum(), low.sum(), (rnd | low).sum())
    # the flags of layer_stats are those of margin 0 and the AND rule
    base = sens[(sens.margin == 0) & (sens.low_diversity_rule == "and")].iloc[0]
    assert base.degenerate == stats.is_degenerate.sum()


def test_drift_tables(analysed, small_release):
    release, reports, _ = analysed
    layers = pq.read_table(small_release / "layers").to_pandas()
    trained_layers = layers[layers.model_id != INIT]
    groups = pd.read_csv(reports / "drift" / "group-list.csv", dtype={"group": str})
    for grouping in ["task", "visual_category", "training_dataset", "family", "training", "format", "depth_decile"]:
        d = drift_of(reports, grouping)
        names = sorted(set(d.group_a))
        assert len(d) == len(names) ** 2
        m = d.pivot(index="group_a", columns="group_b", values="d")
        np.testing.assert_allclose(m.values, m.values.T, rtol=1e-12)
        assert np.all(np.diag(m.values) == 0)
        off = d[d.group_a != d.group_b]
        assert np.all(off.d > 0)
        # intervals: only where both groups have 2+ models; ordered when present
        ci = off.dropna(subset=["d_lo"])
        assert np.all((ci.models_a >= 2) & (ci.models_b >= 2))
        assert np.all(ci.d_lo <= ci.d_hi)
        assert off[(off.models_a < 2) | (off.models_b < 2)].d_lo.isna().all()
        # the size-controlled D is the median of its draws: its interval contains it
        assert np.all((off.d_sc_lo <= off.d_sc) & (off.d_sc <= off.d_sc_hi))
        assert (d.sc_target == d.filters_a.min()).all()
        # every pair has its groups' nulls, and the mark follows the rule
        assert off.null_a.notna().all() and off.null_b.notna().all()
        ref = np.maximum(off.null_a, off.null_b)
        expected = (off.d <= ref) | (off.d_lo.notna() & (off.d_lo <= ref))
        assert off.no_evidence.astype(bool).tolist() == expected.tolist()
        # groups.csv lists them with their sizes, over the trained population only
        listed = groups[groups.grouping == grouping]
        assert set(listed.group[listed.compared]) == set(names)
        assert set(d.drop_duplicates("group_a").set_index("group_a").filters_a.items()) <= set(
            listed.set_index("group").filters.items())
    depth = drift_of(reports, "depth_decile")
    assert set(depth.group_a) <= {"[0.0, 0.1]"} | {f"({k / 10:.1f}, {(k + 1) / 10:.1f}]" for k in range(1, 10)}
    # the depth deciles together hold every filter of the trained population
    assert depth.drop_duplicates("group_a").filters_a.sum() == trained_layers.n_filters.sum()
    assert INIT not in set(groups.group[groups.grouping == "family"])  # not pooled
    # a group of one model is split by filter, of several by model
    for row in groups[groups.compared].itertuples():
        assert row.null_split == ("models" if row.models >= 2 else "filters")


def test_each_control_is_compared_with_the_trained_population(analysed):
    _, reports, _ = analysed
    d = drift_of(reports, "control").set_index(["group_a", "group_b"])
    fmt = drift_of(reports, "format").set_index(["group_a", "group_b"])
    row = d.loc[("trained population", INIT)]
    assert row.d > fmt.loc[("onnx", "pytorch"), "d"]
    assert not row.no_evidence
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["drift"]["control"]["d_vs_trained"][INIT]["d"] == pytest.approx(row.d)


def test_small_groups_are_listed_not_compared(small_release, tmp_path):
    release = copy(small_release, tmp_path / "release")
    analyze(release, tmp_path / "reports", {**FAST, "groupings": ["family"], "min_group_filters": 10_000,
                                             "size_controlled": False})
    layers = pq.read_table(small_release / "layers").to_pandas()
    models = pq.read_table(small_release / "models").to_pandas()
    sizes = layers[layers.model_id != INIT].merge(models[["model_id", "family"]]).groupby("family").n_filters.sum()
    groups = pd.read_csv(tmp_path / "reports" / "drift" / "group-list.csv").set_index("group")
    assert dict(groups.filters) == dict(sizes)
    assert set(groups.index[groups.compared]) == set(sizes.index[sizes >= 10_000])
    assert 0 < (sizes < 10_000).sum() < len(sizes)
    assert set(drift_of(tmp_path / "reports", "family").group_a) == set(sizes.index[sizes >= 10_000])


def test_null_pairs_and_populations(small_release, tmp_path):
    release = copy(small_release, tmp_path / "release")
    pair = ["facenet-mtcnn-onet", "rapidocr-ppocrv4-det"]
    analyze(release, tmp_path / "r", {**FAST, "groupings": ["task"], "null_pairs": [pair, ["a", "b"]]})
    d = drift_of(tmp_path / "r", "null_pairs")
    assert set(d.group_a) == set(pair)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    (seed,) = metrics["drift"]["null_pairs"]["seed_pairs"]
    assert seed["pair"] == pair and seed["d"] == pytest.approx(d[d.group_a == pair[0]].d.max())
    # population all pools the control; controls analyses it alone
    analyze(release, tmp_path / "all", {**FAST, "groupings": ["training"], "population": "all"})
    m_all = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert m_all["models"] == 5 and m_all["controls"] == {} and "control" not in m_all["drift"]
    assert set(drift_of(tmp_path / "all", "training").group_a) == {"initialisation", "pretrained"}
    analyze(release, tmp_path / "ctl", {**FAST, "groupings": [], "population": "controls"})
    m_ctl = json.loads((tmp_path / "ctl" / "metrics.json").read_text())
    assert m_ctl["models"] == 1 and m_ctl["share_random_like_layers"] == 1.0


# --------------------------------------------------------------------------- streaming

def reshard(src: Path, dst: Path, max_rows: int, row_group_rows: int) -> Path:
    """The same release with small shards and row groups: layers span shards and row groups."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("filters", "layer_stats"))
    layers = pq.read_table(src / "layers").to_pandas()
    for model_dir in sorted((src / "filters").iterdir()):
        rows = layers[layers.model_id == model_dir.name].sort_values("layer_id").to_dict("records")
        t = pq.read_table(model_dir)
        lid = t.column("layer_id").to_numpy()
        w = t.column("weights").combine_chunks().flatten().to_numpy().reshape(-1, 9) if t.num_rows else None
        objs = [writer.Layer(r, w[lid == r["layer_id"]].reshape(r["out_channels"], r["in_channels_per_group"], 3, 3))
                for r in rows]
        writer.write_filters(dst / "filters" / model_dir.name, model_dir.name, objs,
                             params={"max_rows_per_shard": max_rows, "row_group_rows": row_group_rows})
    return dst


def assert_same_results(a_release, a_reports, b_release, b_reports, rel=0.0):
    sa, sb = stats_of(a_release), stats_of(b_release)
    for c in METRICS:
        np.testing.assert_allclose(sa[c].astype(float), sb[c].astype(float), rtol=rel, atol=0, equal_nan=True,
                                   err_msg=c)
    for c in FLAGS:
        assert sa[c].equals(sb[c]), c
    for grouping in ["task", "training", "depth_decile", "format", "control"]:
        da, db = drift_of(a_reports, grouping), drift_of(b_reports, grouping)
        for c in ["d", "d_lo", "d_hi", "d_sc", "d_sc_lo", "d_sc_hi", "null_a", "null_b"]:
            np.testing.assert_allclose(da[c], db[c], rtol=max(rel, 1e-12), atol=1e-15, equal_nan=True,
                                       err_msg=f"{grouping} {c}")
        for c in ["filters_a", "models_a", "no_evidence", "d_replicates"]:
            assert da[c].equals(db[c]), (grouping, c)
    ga = json.loads((a_reports / "basis" / "global.json").read_text())
    gb = json.loads((b_reports / "basis" / "global.json").read_text())
    np.testing.assert_allclose(ga["components"], gb["components"], rtol=max(rel, 1e-12), atol=1e-13)


@pytest.fixture(scope="module")
def fast_local(small_release, tmp_path_factory):
    base = tmp_path_factory.mktemp("fast-local")
    release = copy(small_release, base / "release")
    analyze(release, base / "reports", FAST)
    return release, base / "reports"


def test_layers_spanning_batches_and_shards_give_the_same_results(fast_local, small_release, tmp_path):
    release = reshard(small_release, tmp_path / "resharded", max_rows=30_000, row_group_rows=4_000)
    shards_per_model = {d.name: len(list(d.glob("*.parquet"))) for d in (release / "filters").iterdir()}
    assert shards_per_model["nudenet-320n"] > 5  # its 250,928 filters now span many shards
    layers = pq.read_table(release / "layers").to_pandas()
    assert layers.n_filters.max() > 30_000  # so some layer is cut across shards (fragments)
    analyze(release, tmp_path / "reports", FAST, {"batch_rows": 1_777})
    assert_same_results(*fast_local, release, tmp_path / "reports")


def test_dask_engine_equals_local(fast_local, small_release, tmp_path):
    distributed = pytest.importorskip("distributed")
    release = copy(small_release, tmp_path / "release")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        analyze(release, tmp_path / "reports", FAST, {"engine": "dask", "scheduler": cluster.scheduler_address})
    assert_same_results(*fast_local, release, tmp_path / "reports", rel=1e-9)


# --------------------------------------------------------------------------- errors

def test_missing_filter_rows_are_named(small_release, tmp_path):
    release = copy(small_release, tmp_path / "release")
    shutil.rmtree(release / "filters" / "facenet-mtcnn-onet")
    with pytest.raises(AnalysisError, match=r"facenet-mtcnn-onet, layer_id 0\).*extract"):
        analyze(release, tmp_path / "reports", FAST)


def test_filter_rows_without_a_layer_row_are_named(small_release, tmp_path):
    release = copy(small_release, tmp_path / "release")
    layers = pq.read_table(release / "layers")
    keep = [not (m == "efficientnet-lite0" and lid == 7) for m, lid in
            zip(layers.column("model_id").to_pylist(), layers.column("layer_id").to_pylist())]
    writer.write_table(layers.filter(keep), release, "layers")
    with pytest.raises(AnalysisError, match=r"efficientnet-lite0, layer_id 7\) have no row in the layers table"):
        analyze(release, tmp_path / "reports", FAST)


def test_bad_params_are_named(small_release, tmp_path):
    with pytest.raises(AnalysisError, match="unknown keys \\['bins_count'\\]"):
        analyze(small_release, tmp_path / "reports", {"bins_count": 3})
    with pytest.raises(AnalysisError, match="unknown grouping 'colour'"):
        analyze(small_release, tmp_path / "reports", {"groupings": ["task", "colour"]})
    with pytest.raises(AnalysisError, match="engine"):
        analyze(small_release, tmp_path / "reports", FAST, {"engine": "spark"})
    with pytest.raises(AnalysisError, match=r"unknown keys \['workers'\]"):  # a run option, not a param
        analyze(small_release, tmp_path / "reports", {"workers": 3})


def test_a_grouping_gives_the_same_drift_alone_or_with_others(fast_local, small_release, tmp_path):
    # `groups` is null for layers of state dicts (the format does not say): that grouping
    # has its own filters and its own coefficient range, which must not leak into the others
    release = copy(small_release, tmp_path / "release")
    every = {**FAST, "min_group_filters": 2}  # compare the small depthwise groups too
    analyze(release, tmp_path / "both", {**every, "groupings": ["groups", "task", "accuracy_metric"]})
    analyze(release, tmp_path / "alone", {**every, "groupings": ["groups"]})
    alone = drift_of(tmp_path / "alone", "groups")
    layers = pq.read_table(small_release / "layers").to_pandas()
    assert 0 < layers.groups.isna().sum() < len(layers)
    trained = layers[layers.model_id != INIT]
    assert alone.drop_duplicates("group_a").filters_a.sum() == trained[trained.groups.notna()].n_filters.sum()
    pd.testing.assert_frame_equal(drift_of(tmp_path / "both", "groups"), alone)
    pd.testing.assert_frame_equal(drift_of(tmp_path / "both", "task"), drift_of(fast_local[1], "task"),
                                  check_exact=False, rtol=1e-12)
    # a grouping whose labels are all null is reported empty, not an error
    assert len(drift_of(tmp_path / "both", "accuracy_metric")) == 0
    metrics = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert metrics["drift"]["accuracy_metric"] == {"groups": 0, "compared": 0, "nulls": {}}


def test_stage_script_reads_params_yaml(small_release, tmp_path):
    release = copy(small_release, tmp_path / "dist" / "cnn-filter-db")
    (tmp_path / "params.yaml").write_text(
        "analyze:\n  bootstrap: 10\n  model_plots: false\n  groupings: [training, conv_kind]\n  bins: 35\n")
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "analyze.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "analysed" in proc.stdout
    assert (release / "layer_stats" / "train-00000-of-00001.parquet").exists()
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert set(metrics["drift"]) == {"training", "conv_kind", "control"}
    assert "bins: 35" in (tmp_path / "reports" / "README.md").read_text()
    conv_kind = drift_of(tmp_path / "reports", "conv_kind")
    assert {"dense", "depthwise"} <= set(conv_kind.group_a)
    assert not (tmp_path / "reports" / "plots" / "layers").exists()
