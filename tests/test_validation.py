"""Validation of a release folder: a clean build passes; each kind of corruption of a real
built release fails naming exactly that problem (table and checked column), no other."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import layout, schema, writer
from cnn_filter_db.dataset import manifest as mf
from cnn_filter_db.hashing import sha256_file
from cnn_filter_db.validate import validate_release

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def validate(release: Path, **kw):
    return validate_release(release, root=ROOT, **kw)


def problems(result) -> set[tuple[str, str]]:
    return {(f.table, f.column) for f in result.failures}


def shard_of(release: Path, model_id: str) -> Path:
    (path,) = sorted((release / "filters" / model_id).glob("*.parquet"))
    return path


def rewrite_shard(path: Path, change) -> None:
    """Read a filter shard, change its rows, write it back with FILTERS_SCHEMA."""
    table = change(pq.read_table(path))
    pq.write_table(table.cast(schema.FILTERS_SCHEMA), path, **schema.parquet_options(schema.FILTERS_SCHEMA))


def with_weights(table: pa.Table, weights: np.ndarray) -> pa.Table:
    col = pa.FixedSizeListArray.from_arrays(pa.array(weights.astype(np.float32).ravel()), 9)
    return table.set_column(table.schema.get_field_index("weights"), "weights", col)


def weights_of(table: pa.Table) -> np.ndarray:
    return table.column("weights").combine_chunks().flatten().to_numpy().reshape(-1, 9).copy()


def key_of(table: pa.Table, row: int) -> tuple[str, int]:
    return table.column("model_id")[row].as_py(), table.column("layer_id")[row].as_py()


def rewrite_meta(release: Path, name: str, change) -> None:
    """Change a metadata table (``models`` or ``layers``) through pandas, same schema."""
    (path,) = sorted((release / name).glob("*.parquet"))
    table_schema = schema.SCHEMAS[name]
    df = pq.read_table(path).to_pandas()
    df = change(df)
    pq.write_table(pa.Table.from_pandas(df, schema=table_schema, preserve_index=False), path)


def write_manifest(release: Path) -> dict:
    manifest = mf.build_manifest(release, "0.0.0-test", "0" * 64, {"cnn-filter-db": "test"})
    mf.write_manifest(release, manifest)
    return manifest


MODEL = "efficientnet-lite0"  # a state dict with depthwise layers: several layers in one shard
ROW = 1000                    # a row inside a layer of it (not the first or last of the shard)


def assert_only(result, table: str, column: str, key: tuple | None = None) -> None:
    assert not result.success
    assert problems(result) == {(table, column)}, result.summary()
    (failure,) = result.failures
    if key is not None:
        assert {"model_id": key[0], "layer_id": key[1]}.items() <= failure.examples[0].items(), failure.examples
    text = result.summary()
    assert failure.description in text and f"{table:<9} FAILED" in text
    if key is not None:
        assert f"model_id={key[0]} layer_id={key[1]}" in text


# --------------------------------------------------------------------------- clean

def test_clean_release_passes_and_writes_reports(copy_release, tmp_path):
    release = copy_release()
    reports = tmp_path / "reports" / "validation"
    result = validate(release, reports_dir=reports)
    assert result.success, result.summary()
    assert result.failures == []
    assert result.tables["manifest"].success is None  # no manifest.json before the release stage
    assert "manifest  skipped" in result.summary()
    filters = result.tables["filters"]
    n_filters = int(pq.read_table(release / "models").column("n_filters").to_numpy().sum())
    assert result.stats["filters"] == n_filters and filters.rows == len(pq.read_table(release / "layers"))

    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["success"] is True and metrics["failed_expectations"] == 0
    assert metrics["evaluated_expectations"] == sum(t.evaluated for t in result.tables.values()) > 30
    for table in ("models", "layers", "filters"):
        payload = json.loads((reports / f"{table}.json").read_text())
        assert payload["success"] is True
        (run,) = payload["run_results"]
        assert len(run["results"]) == result.tables[table].evaluated
    assert json.loads((reports / "manifest.json").read_text())["skipped"] is True
    index = (reports / "data_docs" / "index.html").read_text()
    assert "filters" in index and list((reports / "data_docs" / "validations").rglob("*.html"))
    # the DVC outputs hold no clock time nor random id: a second run writes the same bytes
    again = tmp_path / "again"
    validate(release, reports_dir=again, data_docs=False)
    for name in ("models.json", "layers.json", "filters.json", "metrics.json"):
        assert (again / name).read_bytes() == (reports / name).read_bytes(), name


def test_clean_release_with_manifest_passes(copy_release):
    release = copy_release()
    manifest = write_manifest(release)
    result = validate(release)
    assert result.success, result.summary()
    assert result.tables["manifest"].success is True
    assert result.tables["manifest"].rows == len(manifest["shards"])


# --------------------------------------------------------------------------- filters

@pytest.mark.parametrize("value,column", [(np.nan, "non_finite"), (np.inf, "non_finite"), (-np.inf, "non_finite"),
                                          (5e4, "max_abs")])
def test_bad_weight_value(copy_release, value, column):
    release = copy_release()
    path = shard_of(release, MODEL)
    key = key_of(pq.read_table(path), ROW)

    def change(t):
        w = weights_of(t)
        w[ROW, 4] = value
        return with_weights(t, w)

    rewrite_shard(path, change)
    assert_only(validate(release), "filters", column, key)


def test_exploded_weight_bound_comes_from_params(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    rewrite_shard(path, lambda t: with_weights(t, np.where(np.arange(len(t))[:, None] == ROW, 50.0, weights_of(t))))
    assert validate(release).success  # 50 is below the default bound of 1e3
    assert_only(validate(release, params={"max_abs_weight": 10.0}), "filters", "max_abs", key_of(pq.read_table(path), ROW))


def test_duplicated_row(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    key = key_of(pq.read_table(path), ROW)
    rewrite_shard(path, lambda t: pa.concat_tables([t.slice(0, ROW + 1), t.slice(ROW, len(t) - ROW)]))
    assert_only(validate(release), "filters", "duplicate_keys", key)


def test_missing_row(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    key = key_of(pq.read_table(path), ROW)
    rewrite_shard(path, lambda t: pa.concat_tables([t.slice(0, ROW), t.slice(ROW + 1)]))
    assert_only(validate(release), "filters", "missing_keys", key)


def test_missing_layer_of_filters(copy_release):
    """Every row of the last layer gone: the layer is still reported, as missing."""
    release = copy_release()
    path = shard_of(release, MODEL)
    table = pq.read_table(path)
    last = table.column("layer_id").to_numpy().max()
    rewrite_shard(path, lambda t: t.filter(pa.compute.not_equal(t.column("layer_id"), last)))
    assert_only(validate(release), "filters", "missing_keys", (MODEL, int(last)))


def test_filter_row_of_unknown_layer(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    unknown = int(pq.read_table(path).column("layer_id").to_numpy().max()) + 1

    def change(t):
        extra = next(writer.filter_batches(MODEL, unknown, np.ones((1, 1, 3, 3), np.float32), 10))
        return pa.concat_tables([t, pa.Table.from_batches([extra])])  # appended: the sort order holds

    rewrite_shard(path, change)
    assert_only(validate(release), "filters", "in_layers", (MODEL, unknown))


def test_unsorted_rows(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    key = key_of(pq.read_table(path), ROW)
    # swap two neighbouring rows: every key is still there once, only the order breaks
    rewrite_shard(path, lambda t: t.take(np.r_[0:ROW, ROW + 1, ROW, ROW + 2:len(t)]))
    assert_only(validate(release), "filters", "unordered_keys", key)


def test_content_check_does_not_trust_the_manifest(copy_release):
    """A NaN written, then the manifest rebuilt to match the corrupted shard: the manifest
    suite passes, the content check still fails."""
    release = copy_release()
    path = shard_of(release, MODEL)
    rewrite_shard(path, lambda t: with_weights(t, np.where(np.arange(len(t))[:, None] == ROW, np.nan, weights_of(t))))
    write_manifest(release)
    result = validate(release)
    assert result.tables["manifest"].success is True
    assert_only(result, "filters", "non_finite", key_of(pq.read_table(path), ROW))


def test_shard_with_other_schema_is_malformed(copy_release):
    release = copy_release()
    path = shard_of(release, MODEL)
    table = pq.read_table(path)
    w = pa.array(list(weights_of(table).astype(np.float64)), type=pa.list_(pa.float64()))
    pq.write_table(table.set_column(4, "weights", w), path)
    result = validate(release)
    assert problems(result) == {("filters", "malformed_rows")}, result.summary()
    assert result.failures[0].unexpected_count == len(pq.read_table(release / "layers").to_pandas().query("model_id == @MODEL"))


# --------------------------------------------------------------------------- manifest

def test_wrong_sha256_in_manifest(copy_release):
    release = copy_release()
    manifest = write_manifest(release)
    entry = next(s for s in manifest["shards"] if s["path"].startswith(f"filters/{MODEL}/"))
    entry["sha256"] = "0" * 64
    mf.write_manifest(release, manifest)
    result = validate(release)
    assert problems(result) == {("manifest", "sha256_recorded,sha256_actual")}, result.summary()
    assert result.failures[0].examples[0]["path"] == entry["path"]
    assert entry["path"] in result.summary()


def test_stray_files_and_an_edited_card_are_reported(copy_release):
    release = copy_release()
    (release / "README.md").write_text("# the card\n")
    (release / "CITATION.cff").write_text("cff-version: 1.2.0\n")
    manifest = mf.build_manifest(release, "0.0.0-test", "0" * 64, {"cnn-filter-db": "test"})
    manifest["files"] = {n: sha256_file(release / n) for n in ("README.md", "CITATION.cff")}
    mf.write_manifest(release, manifest)
    assert validate(release, tables=["manifest"]).success
    (release / "README.md").write_text("# the card, edited after the release\n")
    (release / "filters" / "notes.txt").write_text("stray\n")
    (release / "filters" / ".notes.txt.x.tmp").write_text("a crashed write: not part of the release\n")
    result = validate(release, tables=["manifest"])
    assert problems(result) == {("manifest", "listed"), ("manifest", "sha256_recorded,sha256_actual")}, result.summary()
    by_column = {f.column: [e["path"] for e in f.examples] for f in result.failures}
    assert by_column == {"listed": ["filters/notes.txt"], "sha256_recorded,sha256_actual": ["README.md"]}
    assert mf.check_manifest(release) == [f"{release / 'filters/notes.txt'}: not listed in manifest.json",
                                          f"{release / 'README.md'}: sha256 differs from manifest.json"]


# --------------------------------------------------------------------------- models and layers

def test_vocabulary_value_not_allowed(copy_release):
    release = copy_release()

    def change(df):
        df.loc[df["model_id"] == MODEL, "task"] = "astrology"
        return df

    rewrite_meta(release, "models", change)
    result = validate(release)
    assert_only(result, "models", "task")
    assert result.failures[0].examples == [{"model_id": MODEL, "task": "astrology"}]


def test_layer_whose_filter_count_disagrees(copy_release):
    release = copy_release()

    def change(df):
        df.loc[(df["model_id"] == MODEL) & (df["layer_id"] == 3), "n_filters"] += 1
        return df

    rewrite_meta(release, "layers", change)
    assert_only(validate(release), "layers", "n_filters,grid_filters", (MODEL, 3))


def test_model_count_disagrees_with_layers(copy_release):
    release = copy_release()

    def change(df):
        df.loc[df["model_id"] == MODEL, "n_layers"] += 1
        return df

    rewrite_meta(release, "models", change)
    assert_only(validate(release), "models", "n_layers,layers_n_layers")


def test_two_models_with_the_same_weights(copy_release):
    release = copy_release()
    other = "facenet-mtcnn-onet"

    def change(df):
        df.loc[df["model_id"] == other, "weights_sha256"] = df.loc[df["model_id"] == MODEL, "weights_sha256"].iloc[0]
        return df

    rewrite_meta(release, "models", change)
    result = validate(release)
    assert_only(result, "models", "weights_sha256")
    assert {e["model_id"] for e in result.failures[0].examples} == {MODEL, other}
    assert MODEL in result.summary() and other in result.summary()


def test_layer_of_unknown_model(copy_release):
    release = copy_release()

    def change(df):
        return df[df["model_id"] != MODEL]

    rewrite_meta(release, "models", change)
    result = validate(release)
    assert_only(result, "layers", "model_id", (MODEL, 0))
    n_layers = len(pq.read_table(release / "layers").to_pandas().query("model_id == @MODEL"))
    assert result.failures[0].unexpected_count == n_layers


# --------------------------------------------------------------------------- stage

def test_stage_exits_non_zero_with_summary(copy_release, tmp_path):
    release = copy_release()
    rewrite_shard(shard_of(release, MODEL),
                  lambda t: with_weights(t, np.where(np.arange(len(t))[:, None] == ROW, np.nan, weights_of(t))))
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(ROOT), "validate", str(release),
                           "--reports", str(reports)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "filters   FAILED" in proc.stdout and f"model_id={MODEL}" in proc.stdout
    assert len(proc.stdout.splitlines()) < 15 and len(proc.stderr.splitlines()) < 5, proc.stdout + proc.stderr
    assert json.loads((reports / "metrics.json").read_text())["success"] is False


# --------------------------------------------------------------------------- the streaming scan

def split_shard(release: Path, model_id: str, at: int, overlap: int = 0) -> None:
    """Rewrite a model's rows as two shards, the second starting ``overlap`` rows early."""
    folder = release / "filters" / model_id
    paths = sorted(folder.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    for p in paths:
        p.unlink()
    opts = schema.parquet_options(schema.FILTERS_SCHEMA)
    for i, part in enumerate([table.slice(0, at), table.slice(at - overlap)]):
        pq.write_table(part.cast(schema.FILTERS_SCHEMA), folder / layout.shard_name(model_id, i, 2), **opts)


def test_order_runs_on_across_shards(copy_release):
    release = copy_release()
    split_shard(release, MODEL, ROW)
    assert validate(release).success
    split_shard(release, MODEL, ROW + 100, overlap=1)  # the first row of shard 1 repeats shard 0's last
    table = pq.read_table(sorted((release / "filters" / MODEL).glob("*.parquet"))[0])
    assert_only(validate(release), "filters", "duplicate_keys", key_of(table, len(table) - 1))


def test_scan_counts_do_not_depend_on_batch_size(copy_release):
    """Batch boundaries (the previous key carried over) change nothing, and the per-row
    fallback for many short runs (shuffled rows) finds the same maxima and non-finite rows."""
    from cnn_filter_db.filter_scan import FilterScan
    from cnn_filter_db.validate import layer_shapes

    release = copy_release()
    path = shard_of(release, MODEL)
    rewrite_shard(path, lambda t: with_weights(
        pa.concat_tables([t.slice(0, ROW + 1), t.slice(ROW, len(t) - ROW)]),  # a duplicate
        np.where(np.arange(len(t) + 1)[:, None] == 2 * ROW, np.inf, weights_of(t)[np.r_[0:ROW + 1, ROW:len(t)]])))
    shapes = layer_shapes(pq.read_table(release / "layers").to_pandas())
    frames = [FilterScan(shapes, batch_rows=b).add_model_dir(path.parent).frame() for b in (1 << 18, 999, 64)]
    cols = ["rows", "non_finite", "duplicate_keys", "unordered_keys", "missing_keys", "max_abs", "out_channel_max"]
    for f in frames[1:]:
        assert f[cols].equals(frames[0][cols])
    assert frames[0]["duplicate_keys"].sum() == 1 and frames[0]["non_finite"].sum() == 1

    rng = np.random.default_rng(0)
    rewrite_shard(path, lambda t: t.take(rng.permutation(len(t))))
    shuffled = FilterScan(shapes).add_model_dir(path.parent).frame()
    assert shuffled["unordered_keys"].sum() > 0
    for c in ("rows", "non_finite", "max_abs"):
        assert np.allclose(shuffled[c], frames[0][c], equal_nan=True), c


def test_release_stage_checks_the_manifest_only(copy_release, tmp_path):
    release = copy_release()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        validate(release, tables=["manifest"], require_manifest=True)
    manifest = write_manifest(release)
    manifest["fingerprint"] = "f" * 64
    mf.write_manifest(release, manifest)
    reports = tmp_path / "reports"
    result = validate(release, reports_dir=reports, tables=["manifest"], require_manifest=True, data_docs=False)
    assert list(result.tables) == ["manifest"]
    assert problems(result) == {("manifest", "fingerprint_recorded")}, result.summary()
    shard_sha = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in release.rglob("*.parquet"))
    recomputed = hashlib.sha256("\n".join(shard_sha).encode()).hexdigest()  # SPEC section 4, by hashlib
    assert f"observed [\"{'f' * 64}\"]" in result.summary() and recomputed in result.summary()
    assert sorted(p.name for p in reports.iterdir()) == ["manifest.json", "metrics.json"]


def test_missing_column_is_reported_not_raised(copy_release):
    release = copy_release()
    (path,) = sorted((release / "models").glob("*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["license"]), path)
    result = validate(release)
    assert {t for t, _ in problems(result)} == {"models"}
    assert ("models", "table") in problems(result) and ("models", "license") in problems(result)
    assert '"missing columns": ["license"]' in result.summary()
    assert 'The column "license" in BatchData does not exist' in result.summary()
