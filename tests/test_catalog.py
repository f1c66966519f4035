"""The catalog: entry model, vocabulary, index and schema, and the errors bad entries give."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import catalog
from cnn_filter_db.errors import CatalogError


def make_root(tmp_path: Path, root: Path, ids=("facenet-mtcnn-pnet", "timm-resnet18-init")) -> Path:
    """A minimal project root with a few real entries, the vocabulary and a fresh index/schema."""
    (tmp_path / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", tmp_path / "catalog")
    for mid in ids:
        shutil.copy(root / "catalog" / "models" / f"{mid}.yaml", tmp_path / "catalog" / "models")
    catalog.write_index(tmp_path)
    (tmp_path / "catalog" / "schema.json").write_text(catalog.render_schema(tmp_path))
    return tmp_path


def edit(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_default_catalog_is_valid(root):
    entries, problems = catalog.validate_catalog(root)
    assert problems == []
    assert len(entries) >= 18
    kinds = {e.source.kind for e in entries}
    assert {"pypi", "timm"} <= kinds


def test_committed_schema_is_generated_from_entry_model(root):
    schema = (root / "catalog" / "schema.json").read_text()
    assert schema == catalog.render_schema(root)
    data = yaml.safe_load(schema)
    assert data["additionalProperties"] is False
    assert "detection" in data["properties"]["task"]["enum"]


@pytest.mark.parametrize("change, field, expected", [
    ({"task": ...}, "task", "required field is missing"),
    ({"colour": "blue"}, "colour", "unknown field"),
    ({"task": "dreaming"}, "task", "not in vocabulary 'task'"),
    ({"license": "WTFPL-9"}, "license", "not in vocabulary 'license'"),
    ({"accuracy": 97.5, "accuracy_metric": "top-1"}, "accuracy", "less than or equal to 1"),
    ({"model_id": "Bad ID!"}, "model_id", "should match pattern"),
    ({"model_id": "another-name"}, "model_id", "must equal the file name"),
])
def test_bad_entry_names_file_field_and_expectation(tmp_path, root, change, field, expected):
    r = make_root(tmp_path, root)
    path = r / "catalog" / "models" / "facenet-mtcnn-pnet.yaml"
    edit(path, **change)
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, r)
    problems = info.value.problems
    assert any(p[0] == str(path) and p[1] == field and expected in p[2] for p in problems), problems


def test_bad_sha256_pin_is_a_schema_error(tmp_path, root):
    r = make_root(tmp_path, root)
    path = r / "catalog" / "models" / "facenet-mtcnn-pnet.yaml"
    data = yaml.safe_load(path.read_text())
    data["source"]["sha256"] = "abc"
    data["source"]["wheel"] = "x"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, r)
    fields = {p[1] for p in info.value.problems}
    assert {"source.sha256", "source.wheel"} <= fields


def test_index_mismatch_and_stale_schema_are_reported(tmp_path, root):
    r = make_root(tmp_path, root)
    shutil.copy(root / "catalog" / "models" / "facenet-mtcnn-rnet.yaml", r / "catalog" / "models")
    _, problems = catalog.validate_catalog(r)
    assert [p[0] for p in problems] == ["catalog/index.yaml"]
    assert "cnn-filter-db catalog index" in problems[0][2]
    catalog.write_index(r)
    assert catalog.validate_catalog(r)[1] == []
    with open(r / "catalog" / "vocabulary.yaml", "a") as fh:
        fh.write("  - my-new-dataset\n")  # appended to the last list (format)
    _, problems = catalog.validate_catalog(r)
    assert [p[0] for p in problems] == ["catalog/schema.json"]


def test_cli_validate_exit_code_and_message(tmp_path, root):
    r = make_root(tmp_path, root)
    cmd = [sys.executable, "-m", "cnn_filter_db.cli", "--root", str(r), "catalog", "validate"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    edit(r / "catalog" / "models" / "timm-resnet18-init.yaml", trained=True, extra_field=1)
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "timm-resnet18-init.yaml: extra_field: unknown field" in bad.stderr
    assert "1 file(s)" in bad.stderr


def test_timm_baseline_must_not_claim_trained(tmp_path, root):
    r = make_root(tmp_path, root)
    path = r / "catalog" / "models" / "timm-resnet18-init.yaml"
    edit(path, trained=True)
    with pytest.raises(CatalogError, match="initialisation baseline"):
        catalog.parse_entry(path, r)


def test_every_trained_entry_pins_its_default_checkpoint(root):
    """An entry trained here is checked against its pinned checkpoint sha256 on every build;
    one without a pin for the default profile would build unchecked."""
    from cnn_filter_db.params import TrainParams

    trained = [e for e in catalog.load_catalog(root) if e.source.kind == "train"]
    assert len(trained) >= 3
    unpinned = [e.model_id for e in trained if TrainParams.profile not in e.source.checkpoint]
    assert unpinned == [], f"train entries without a {TrainParams.profile!r} checkpoint pin: {unpinned}"
    assert all(len(e.source.checkpoint[TrainParams.profile].sha256) == 64 for e in trained)
