"""Every public reader checks a shard's sha256 against manifest.json by default (issue 11,
item 2): ``dataset.runs.iter_runs``, ``filter_scan.scan_filters``,
``validate.validate_release``, ``analysis.labels.load_labels``, ``analysis.pipeline.analyze``
and the ``validate`` / ``analyze`` commands. The shards are changed so that only the sha256
can tell: rewritten with the same rows and one more key-value pair in the Parquet footer,
so every page checksum still passes. ``verify=False`` (``--no-verify``, which the DVC stages
pass) reads them. The expected row counts come from pyarrow directly, the changed sha256
from hashlib.
"""
from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from cnn_filter_db.analysis.labels import load_labels
from cnn_filter_db.analysis.pipeline import analyze
from cnn_filter_db.cli import build_parser, main
from cnn_filter_db.dataset import manifest as mf
from cnn_filter_db.dataset import schema
from cnn_filter_db.dataset.runs import iter_runs
from cnn_filter_db.errors import IntegrityError
from cnn_filter_db.filter_scan import scan_filters
from cnn_filter_db.validate import validate_release

ROOT = Path(__file__).resolve().parents[1]
MODEL = "efficientnet-lite0"
FAST = {"bootstrap": 0, "model_plots": False, "groupings": []}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tamper(path: Path, table_schema) -> None:
    """Same rows, same page checksums' validity, other bytes: one more footer key."""
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {}) | {b"tampered": _sha(path).encode()}  # other bytes each time
    pq.write_table(table.replace_schema_metadata(meta), path, **schema.parquet_options(table_schema))


def _remanifest(release: Path) -> None:
    mf.write_manifest(release, mf.build_manifest(release, "0.0.0-test", "0" * 64, {"cnn-filter-db": "test"}))


@pytest.fixture
def tampered(copy_release):
    """A release with a manifest, then one filter shard of MODEL and the layers shard
    changed: (release, filter shard, layers shard)."""
    release = copy_release()
    _remanifest(release)
    recorded = {s["path"]: s["sha256"] for s in json.loads((release / "manifest.json").read_text())["shards"]}
    (shard,) = sorted((release / "filters" / MODEL).glob("*.parquet"))
    (layers,) = sorted((release / "layers").glob("*.parquet"))
    before = {p: pq.read_table(p) for p in (shard, layers)}
    _tamper(shard, schema.FILTERS_SCHEMA)
    _tamper(layers, schema.SCHEMAS["layers"])
    for p in (shard, layers):
        assert _sha(p) != recorded[p.relative_to(release).as_posix()]  # the bytes changed
        assert pq.read_table(p).equals(before[p])                       # the rows and page CRCs did not
    return release, shard, layers


def _n_filters(release: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted((release / "filters").glob("*/*.parquet")))


def test_iter_runs_verifies_the_shard(tampered):
    release, shard, _ = tampered
    with pytest.raises(IntegrityError, match=f"^{shard}: sha256 .* differs"):
        list(iter_runs(shard, ["weights"]))
    assert sum(len(r) for r in iter_runs(shard, ["weights"], verify=False)) == pq.ParquetFile(shard).metadata.num_rows


def test_scan_filters_verifies_every_shard(tampered):
    release, shard, _ = tampered
    with pytest.raises(IntegrityError, match=f"^{shard}: sha256 .* differs"):
        scan_filters(release, {})
    assert scan_filters(release, {}, verify=False).rows_ == _n_filters(release)


def test_load_labels_verifies_the_metadata_tables(tampered):
    release, _, layers = tampered
    with pytest.raises(IntegrityError, match=f"^{layers}: sha256 .* differs"):
        load_labels(release)
    labels = load_labels(release, verify=False)
    assert len(labels.layers) == pq.ParquetFile(layers).metadata.num_rows


def test_validate_release_verifies_before_the_content_suites(tampered):
    release, shard, layers = tampered
    with pytest.raises(IntegrityError, match=f"^{layers}: sha256 .* differs"):
        validate_release(release, root=ROOT, tables=["models", "layers"])
    with pytest.raises(IntegrityError, match=f"^{layers}: sha256"):
        validate_release(release, root=ROOT, tables=["filters"])
    result = validate_release(release, root=ROOT, verify=False)
    # read through; only the manifest suite objects: two sha256 and so the fingerprint
    assert {(f.table, f.column) for f in result.failures} == {("manifest", "sha256_recorded,sha256_actual"),
                                                              ("manifest", "fingerprint_recorded")}
    (sha_failure,) = [f for f in result.failures if f.column == "sha256_recorded,sha256_actual"]
    assert sorted(e["path"] for e in sha_failure.examples) == sorted(
        p.relative_to(release).as_posix() for p in (shard, layers))
    assert result.stats["filters"] == _n_filters(release)


def test_validate_release_names_a_changed_filter_shard(tampered):
    release, shard, layers = tampered
    _remanifest(release)
    _tamper(shard, schema.FILTERS_SCHEMA)  # now the filter shard alone differs
    with pytest.raises(IntegrityError, match=f"^{shard}: sha256 .* differs"):
        validate_release(release, root=ROOT, tables=["filters"])


def test_analyze_verifies_every_shard(tampered, tmp_path):
    release, shard, layers = tampered
    with pytest.raises(IntegrityError, match=f"^{layers}: sha256 .* differs"):
        analyze(release, tmp_path / "r1", FAST)
    _remanifest(release)
    _tamper(shard, schema.FILTERS_SCHEMA)  # now the filter shard alone differs
    with pytest.raises(IntegrityError, match=f"^{shard}: sha256 .* differs"):
        analyze(release, tmp_path / "r2", FAST)
    assert analyze(release, tmp_path / "r3", FAST, verify=False)["release"]["filters"] == _n_filters(release)


def test_the_commands_verify_unless_told_not_to(tampered, capsys):
    release, _, layers = tampered
    assert main(["--root", str(ROOT), "validate", str(release), "--tables", "layers"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {layers}: sha256") and err.count("\n") == 1
    assert main(["--root", str(ROOT), "validate", str(release), "--tables", "layers", "--no-verify"]) == 0
    capsys.readouterr()
    assert main(["--root", str(ROOT), "analyze", "--release-dir", str(release), "--reports-dir",
                 str(release.parent / "reports")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {layers}: sha256") and err.count("\n") == 1


@pytest.mark.parametrize("stage,command", [("validate", "validate"), ("analyze", "analyze")])
def test_the_dvc_stages_opt_out_visibly(stage, command):
    """The validate and analyze stages read a folder whose manifest.json is the previous
    build's: their dvc.yaml commands carry --no-verify, and the flag's help says why."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    words = shlex.split(cmd)
    assert words[:2] == ["python", f"stages/{stage}.py"] and "--no-verify" in words
    assert build_parser().parse_args([command, *words[2:]]).no_verify is True
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    (action,) = [a for a in sub._actions if "--no-verify" in a.option_strings]
    assert "previous build's manifest.json" in action.help
