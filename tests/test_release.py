"""A finished release folder: card, manifest, licence policy, and loading it back with
``datasets`` and ``load_layer`` (checked against the source models' kernels)."""
from __future__ import annotations

import hashlib
import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from cnn_filter_db import card, catalog, citation, load_layer, sources
from cnn_filter_db.dataset import schema, writer
from cnn_filter_db.dataset.manifest import check_manifest
from cnn_filter_db.license_policy import LicensePolicy, excluded_models
from cnn_filter_db.release import ReleaseError, build_release, leave_out

from conftest import SMALL_MODELS

PERMISSIVE = {"redistributable_licenses": ["MIT", "Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "CC-BY-SA-4.0", "AGPL-3.0"],
              "allow_unknown_license": False, "hub_repo_id": "test-org/cnn-filter-db"}
NO_AGPL = {**PERMISSIVE, "redistributable_licenses": ["MIT", "Apache-2.0"]}


@pytest.fixture(scope="module")
def release(small_release, tmp_path_factory, root):
    """A finished copy of the small release (every model redistributable)."""
    import shutil

    dst = tmp_path_factory.mktemp("release") / "cnn-filter-db"
    shutil.copytree(small_release, dst)
    build_release(dst, "0.1.0", PERMISSIVE, root=root)
    return dst


# --------------------------------------------------------------------------- licence policy

def test_policy_reasons():
    policy = LicensePolicy(frozenset({"MIT"}), allow_unknown=False)
    rows = [{"model_id": "a", "license": "MIT"}, {"model_id": "b", "license": "AGPL-3.0"},
            {"model_id": "c", "license": "unknown"}, {"model_id": "d", "license": None}]
    out = excluded_models(rows, policy)
    assert list(out) == ["b", "c", "d"]
    assert "AGPL-3.0 is not in release.redistributable_licenses" in out["b"]
    assert "unknown" in out["c"] and "allow_unknown_license" in out["c"]
    assert excluded_models(rows, LicensePolicy(frozenset({"MIT"}), allow_unknown=True)) == {"b": out["b"]}
    with pytest.raises(ValueError, match="redistributable_licenses is required"):
        LicensePolicy.from_params({})


# --------------------------------------------------------------------------- card and manifest

def test_manifest_matches_files(release):
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["version"] == "0.1.0"
    paths = {s["path"] for s in manifest["shards"]}
    assert {f"filters/{m}/{m}-00000-of-00001.parquet" for m in SMALL_MODELS} <= paths
    assert {"layers/train-00000-of-00001.parquet", "models/train-00000-of-00001.parquet"} <= paths
    # SPEC section 4, recomputed with hashlib from the shard files themselves
    shard_sha = sorted(hashlib.sha256((release / s["path"]).read_bytes()).hexdigest() for s in manifest["shards"])
    assert manifest["fingerprint"] == hashlib.sha256("\n".join(shard_sha).encode()).hexdigest()
    assert sorted(manifest["models"]) == sorted(SMALL_MODELS)
    assert set(manifest["files"]) == {"README.md", "CITATION.cff", "croissant.json"}
    assert manifest["versions"]["cnn-filter-db"] and manifest["versions"]["pyarrow"]
    assert manifest["excluded_models"] == {}
    assert check_manifest(release) == []


def test_card_metadata_loaded_with_huggingface_hub(release):
    from huggingface_hub import DatasetCard

    loaded = DatasetCard.load(release / "README.md", repo_type="dataset")
    meta = loaded.data.to_dict()
    models = pq.read_table(release / "models").to_pylist()
    # no single licence that some rows contradict: "other", naming the per-model table
    assert {r["license"] for r in models} >= {"AGPL-3.0", "MIT"}  # the rows do carry several
    assert meta["license"] == "other" and meta["license_name"] == "per-model-licences"
    assert meta["license_link"].endswith("/datasets/test-org/cnn-filter-db/blob/v0.1.0/README.md#licences")
    assert meta["pretty_name"] == "CNN Filter DB"
    assert meta["size_categories"] == ["100K<n<1M"]  # 250,928 + ... filters
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["filters"]["default"] is True
    assert configs["filters"]["data_files"] == [{"split": "train", "path": "filters/*/*.parquet"}]
    assert set(configs) == {"filters", "layers", "models", "filters_trained"}  # no layer_stats in this release
    # the trained population: every model but the timm initialisation baseline, a folder each
    trained = sorted(m for m in SMALL_MODELS if m != "timm-efficientnet_b0-init")
    assert configs["filters_trained"]["data_files"] == [
        {"split": "train", "path": [f"filters/{m}/*.parquet" for m in trained]}]
    info = {d["config_name"]: d for d in meta["dataset_info"]}
    n_trained = sum(r["n_filters"] for r in models if r["model_id"] in trained)
    assert info["filters_trained"]["splits"][0]["num_examples"] == n_trained
    assert {"name": "weights", "list": "float32", "length": 9} in info["filters"]["features"]
    assert {"name": "model_id", "dtype": "string"} in info["filters"]["features"]
    assert {"name": "trained", "dtype": "bool"} in info["models"]["features"]
    for name, folder in (("filters", "filters"), ("layers", "layers"), ("models", "models")):
        files = sorted((release / folder).rglob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)  # counted apart from the card code
        assert info[name]["splits"] == [{"name": "train", "num_bytes": sum(f.stat().st_size for f in files),
                                         "num_examples": rows}]
        assert [f["name"] for f in info[name]["features"]] == pq.read_schema(files[0]).names
    # what datasets itself reads back from the card
    infos = datasets.info.DatasetInfosDict.from_dataset_card_data(loaded.data)
    assert infos["filters"].splits["train"].num_examples == sum(r["n_filters"] for r in models)
    assert infos["filters"].features["weights"] == datasets.List(datasets.Value("float32"), length=9)


def test_card_sections(release):
    from huggingface_hub import DatasetCard

    text = DatasetCard.load(release / "README.md", repo_type="dataset").text
    headings = [l.lstrip("#").strip() for l in text.splitlines() if l.startswith("#")]
    for section in ("Uses", "Direct Use", "Out-of-Scope Use", "Source Data", "Personal and Sensitive Information",
                    "Bias, Risks, and Limitations", "Licences", "Citation", "Dataset Card Contact"):
        assert section in headings, section
    sensitive = text.split("#### Personal and Sensitive Information")[1].split("\n## ")[0]
    assert "face detectors" in sensitive and "nudity detector" in sensitive
    licences = text.split("## Licences")[1].split("\n## ")[0]
    models = pq.read_table(release / "models").to_pylist()
    for lic in {r["license"] for r in models}:  # every licence of the rows, with its models
        line = next(l for l in licences.splitlines() if l.startswith(f"| {lic} |"))
        assert all(f"`{r['model_id']}`" in line for r in models if r["license"] == lic)
    assert "reports/index.html" in text  # the release page


def test_croissant_validates_with_mlcroissant(release):
    mlc = pytest.importorskip("mlcroissant")
    path = release / "croissant.json"
    doc = json.loads(path.read_text())
    ds = mlc.Dataset(jsonld=path)  # raises on any validation error
    md = ds.metadata
    assert md.name == "cnn-filter-db" and md.version == "0.1.0"
    assert md.personal_sensitive_information and "nudity detector" in md.personal_sensitive_information[0]
    for rai in ("data_collection", "data_biases", "data_use_cases", "data_limitations", "data_social_impact",
                "data_release_maintenance_plan"):
        assert getattr(md, rai), rai
    sets = {r.name: r for r in md.record_sets}
    assert set(sets) == {"filters", "layers", "models"}
    weights = next(f for f in sets["filters"].fields if f.name == "filters/weights")
    assert weights.repeated and weights.data_types == [mlc.DataType.FLOAT]
    assert [f.name for f in sets["layers"].fields] == ["layers/" + n for n in pq.read_schema(
        release / "layers" / "train-00000-of-00001.parquet").names]
    assert "https://spdx.org/licenses/AGPL-3.0.html" in doc["license"]
    assert not [i for i in ds.metadata.ctx.issues.warnings if "license" in str(i).lower()]


def test_zenodo_json_follows_citation_cff(root):
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    zen = json.loads((root / ".zenodo.json").read_text())
    assert zen == citation.zenodo_metadata(cff)  # regenerate with the snippet in citation.py
    assert zen["title"] == cff["title"] and zen["license"] == cff["license"] == "CC-BY-SA-4.0"
    assert zen["description"] == " ".join(cff["abstract"].split())
    assert [c["name"] for c in zen["creators"]] == [a["name"] for a in cff["authors"]]
    assert {"identifier": "10.5281/zenodo.6371680", "relation": "isDerivedFrom", "scheme": "doi"} in zen["related_identifiers"]
    assert {"identifier": "arXiv:2203.15331", "relation": "cites", "scheme": "arxiv"} in zen["related_identifiers"]


def test_card_body(release):
    text = (release / "README.md").read_text()
    manifest = json.loads((release / "manifest.json").read_text())
    assert "- **Version:** v0.1.0" in text
    assert manifest["fingerprint"] in text
    models = pq.read_table(release / "models").to_pylist()
    total = sum(r["n_filters"] for r in models)
    assert f"{total:,} filters of" in text
    for r in models:  # each model with both licences in the models table
        assert f"| {r['model_id']} | {r['name']} |" in text
        line = next(l for l in text.splitlines() if l.startswith(f"| {r['model_id']} |"))
        assert f"| {r['license']} | {r['training_data_license']} |" in line
    assert "| detection | 1 | 250,928 |" in text  # counts per task (nudenet)
    assert "| initialisation | 1 | 2,720 |" in text  # counts and shares per training kind
    assert "### Counts by visual category" in text and "### Counts by weights format" in text and "### Counts by family" in text
    assert "First release." in text
    assert 'load_dataset("test-org/cnn-filter-db", "models", revision="v0.1.0")' in text
    assert "@inproceedings{gavrikov2022cnnfilterdb" in text and "2203.15331" in text
    assert f"note = {{Version v0.1.0, fingerprint sha256:{manifest['fingerprint']}}}" in text
    assert "$" not in text.replace("$$", "")  # every placeholder filled
    cff = yaml.safe_load((release / "CITATION.cff").read_text())
    assert cff["version"] == "v0.1.0" and manifest["fingerprint"] in cff["identifiers"][0]["value"]
    spdx = {r["license"] for r in models if r["license"] != "unknown"}
    assert cff["license"] == sorted(spdx) and cff["license-url"].endswith("README.md#licences")


def test_shards_have_a_page_index(release):
    """Every column chunk of every shard carries its offset index (readers can skip pages
    inside a row group), and a column index (page min/max) wherever it has statistics: every
    column but the filters' weights, whose min/max serve no query."""
    files = sorted(release.rglob("*.parquet"))
    assert any("/filters/" in str(f) for f in files)
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                weights = "/filters/" in str(f) and col.path_in_schema == "weights.list.element"
                assert col.has_offset_index, (f, col.path_in_schema)
                assert col.has_column_index == col.is_stats_set == (not weights), (f, col.path_in_schema)


def test_repository_citation_file(root):
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "preferred-citation"):
        assert cff[key]
    assert "2203.15331" in cff["preferred-citation"]["identifiers"][0]["value"]


def test_licence_policy_leaves_models_out(copy_release, root):
    rel = copy_release()
    first = build_release(rel, "0.1.0", PERMISSIVE, root=root)
    assert "nudenet-320n" in first["models"]
    manifest = build_release(rel, "0.2.0", NO_AGPL, previous=first, root=root)
    assert manifest["excluded_models"] == {"nudenet-320n": "weights licence AGPL-3.0 is not in release.redistributable_licenses"}
    assert not (rel / "filters" / "nudenet-320n").exists()
    for table in ("models", "layers"):
        assert "nudenet-320n" not in set(pq.read_table(rel / table)["model_id"].to_pylist())
    assert all("nudenet" not in s["path"] for s in manifest["shards"])
    text = (rel / "README.md").read_text()
    assert "- `nudenet-320n`: weights licence AGPL-3.0 is not in release.redistributable_licenses" in text
    assert "- removed `nudenet-320n` (left out: weights licence AGPL-3.0" in text
    assert f"Compared with v0.1.0 (fingerprint `{first['fingerprint']}`)" in text
    assert check_manifest(rel) == []


def test_changelog_added_removed_changed():
    before = {"version": "0.1.0", "fingerprint": "f0",
              "models": {"a": {"weights_sha256": "1", "catalog_sha256": "x", "n_filters": 9},
                         "b": {"weights_sha256": "2", "catalog_sha256": "y", "n_filters": 9}}}
    now = {"version": "0.2.0", "fingerprint": "f1", "excluded_models": {},
           "models": {"a": {"weights_sha256": "1", "catalog_sha256": "z", "n_filters": 9},
                      "c": {"weights_sha256": "3", "catalog_sha256": "w", "n_filters": 18}}}
    text = card.changelog(now, before)
    assert "- added `c`" in text
    assert "- removed `b` (removed from the catalog)" in text
    assert "- changed `a`: catalog entry" in text


def test_manifest_mismatch_is_reported(copy_release, root):
    rel = copy_release()
    build_release(rel, "0.1.0", PERMISSIVE, root=root)
    shard = rel / "models" / "train-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes() + b"\0")
    (rel / "notes.txt").write_text("stray")
    problems = check_manifest(rel)
    assert any("models/train-00000-of-00001.parquet: sha256 differs" in p for p in problems)
    assert any("notes.txt: not listed in manifest.json" in p for p in problems)
    assert any("fingerprint" in p for p in problems)


def test_bad_version_and_schema(copy_release, root):
    rel = copy_release()
    with pytest.raises(ReleaseError, match="not a semantic version"):
        build_release(rel, "v1", PERMISSIVE, root=root)
    # a layers table whose columns drifted from dataset/schema.py is refused, naming the file
    layers = pq.read_table(rel / "layers").drop_columns(["conv_kind"])
    writer.write_table(layers, rel, "layers")
    with pytest.raises(ReleaseError, match=r"layers/train-00000-of-00001.parquet: columns"):
        build_release(rel, "0.1.0", PERMISSIVE, root=root)
    assert not (rel / "README.md").exists() and not (rel / "manifest.json").exists()


# --------------------------------------------------------------------------- loading back

def test_load_dataset_local_configs(release):
    filters = datasets.load_dataset(str(release), split="train")
    assert filters.features["weights"] == datasets.List(datasets.Value("float32"), length=9)
    assert filters.features["layer_id"] == datasets.Value("int32")
    n = json.loads((release / "manifest.json").read_text())
    assert filters.num_rows == sum(s["rows"] for s in n["shards"] if s["path"].startswith("filters/"))
    layers = datasets.load_dataset(str(release), "layers", split="train")
    models = datasets.load_dataset(str(release), "models", split="train")
    assert sorted(models["model_id"]) == sorted(SMALL_MODELS)
    assert sum(models["n_filters"]) == filters.num_rows == sum(layers["n_filters"])
    assert set(layers.column_names) == set(schema.LAYERS_SCHEMA.names)
    trained = datasets.load_dataset(str(release), "filters_trained", split="train")
    assert trained.num_rows == sum(n for m, n, t in zip(models["model_id"], models["n_filters"], models["training"])
                                   if t != "initialisation")
    assert "timm-efficientnet_b0-init" not in set(trained.unique("model_id"))


def test_load_dataset_streaming_and_pushdown(release):
    stream = datasets.load_dataset(str(release), split="train", streaming=True)
    row = next(iter(stream))
    assert len(row["weights"]) == 9 and isinstance(row["weights"][0], float)
    assert stream.features["weights"] == datasets.List(datasets.Value("float32"), length=9)

    mid = "facenet-mtcnn-onet"
    expected = pq.read_table(release / "models", filters=[("model_id", "==", mid)])["n_filters"][0].as_py()
    # the card records each split's example count, which datasets checks against what a
    # filtered (non-streaming) load produced: the card says to pass no_checks (datasets#7867)
    with pytest.raises(datasets.exceptions.NonMatchingSplitsSizesError):
        datasets.load_dataset(str(release), split="train", filters=[("model_id", "==", mid)])
    subset = datasets.load_dataset(str(release), split="train", filters=[("model_id", "==", mid)],
                                   columns=["model_id", "layer_id", "weights"], verification_mode="no_checks")
    assert subset.column_names == ["model_id", "layer_id", "weights"]
    assert subset.num_rows == expected and set(subset["model_id"]) == {mid}
    streamed = datasets.load_dataset(str(release), split="train", streaming=True,
                                     filters=[("model_id", "==", mid)], columns=["layer_id", "weights"])
    rows = list(streamed)
    assert len(rows) == expected and set(rows[0]) == {"layer_id", "weights"}


@pytest.mark.parametrize("model_id", ["facenet-mtcnn-onet", "efficientnet-lite0", "rapidocr-ppocrv4-det",
                                      "timm-efficientnet_b0-init"])
def test_load_layer_equals_source_kernels(release, root, cache_dir, model_id):
    from cnn_filter_db.extract import layers_of

    entry = catalog.load_entry(model_id, root)
    loaded = sources.load(entry, cache_dir=cache_dir)
    layers = layers_of(model_id, loaded.convs.convs, dict(entry.conv_kind_overrides))
    for layer in (layers[0], layers[len(layers) // 2], layers[-1]):
        got = load_layer(model_id, layer.row["layer_id"], source=release)
        assert got.dtype == np.float32 and got.shape == layer.weight.shape
        np.testing.assert_array_equal(got, layer.weight)


def test_load_layer_errors(release):
    with pytest.raises(Exception, match="has layers 0..7, not 99"):
        load_layer("efficientnet-lite0", 99, source=release)
    with pytest.raises(Exception, match="no model 'nope'"):
        load_layer("nope", 0, source=release)
    with pytest.raises(ValueError, match="no revisions"):
        load_layer("efficientnet-lite0", 0, source=release, revision="v0.1.0")
    with pytest.raises(FileNotFoundError):
        load_layer("efficientnet-lite0", 0, source=release / "missing")


def test_leave_out_is_idempotent(copy_release):
    rel = copy_release()
    assert leave_out(rel, ["efficientnet-lite0"]) == ["efficientnet-lite0"]
    assert leave_out(rel, ["efficientnet-lite0"]) == []
    assert not (rel / "filters" / "efficientnet-lite0").exists()
    assert not any(p.name.startswith(".") for p in (rel / "filters").iterdir())


def test_layer_stats_config_and_catalog_exclusions(copy_release, root):
    import pyarrow as pa

    rel = copy_release()
    layers = pq.read_table(rel / "layers")
    n = layers.num_rows
    stats = pa.table({"model_id": layers["model_id"], "layer_id": layers["layer_id"],
                      "sparsity": pa.array(np.linspace(0, 1, n), pa.float32()),
                      "is_degenerate": pa.array([i % 2 == 0 for i in range(n)])})
    writer.write_table(stats, rel, "layer_stats")
    # a catalog entry of unknown licence that never reached the release is named in the card too
    craft = catalog.load_entry("easyocr-craft-mlt-25k", root)
    manifest = build_release(rel, "0.1.0", NO_AGPL, root=root, entries=[craft])
    assert set(manifest["excluded_models"]) == {"nudenet-320n", "easyocr-craft-mlt-25k"}
    text = (rel / "README.md").read_text()
    assert "- `easyocr-craft-mlt-25k`: weights licence unknown" in text
    meta = card.read_front_matter(text)
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["layer_stats"]["data_files"] == [{"split": "train", "path": "layer_stats/*.parquet"}]
    info = {d["config_name"]: d for d in meta["dataset_info"]}
    assert info["layer_stats"]["features"][2:] == [{"name": "sparsity", "dtype": "float32"},
                                                   {"name": "is_degenerate", "dtype": "bool"}]
    assert info["layer_stats"]["splits"][0]["num_examples"] == pq.read_table(rel / "layer_stats").num_rows
    loaded = datasets.load_dataset(str(rel), "layer_stats", split="train")
    kept = pq.read_table(rel / "layers").num_rows
    assert loaded.num_rows == kept < n  # nudenet's rows left out of layer_stats as well
    assert "nudenet-320n" not in set(loaded["model_id"])
    assert loaded.features["sparsity"] == datasets.Value("float32")
    assert "layer_stats/train-00000-of-00001.parquet" in {s["path"] for s in manifest["shards"]}


def test_template_errors_name_the_placeholder(release):
    manifest = json.loads((release / "manifest.json").read_text())
    rows = pq.read_table(release / "models").to_pylist()
    kwargs = dict(manifest=manifest, models=rows, schemas=dict(card.SCHEMAS), excluded={})
    with pytest.raises(ValueError, match=r"dataset_card.md: unknown placeholder \$fingerprnt"):
        card.render("v$version $fingerprnt", **kwargs)
    with pytest.raises(ValueError, match=r"write \$\$ for a literal dollar"):
        card.render("costs 5 $ only", **kwargs)
    assert card.render("price $$5, v$version", **kwargs).endswith("price $5, v0.1.0")
