"""Contributing a model: `catalog add` scaffolds an entry from real weights, `catalog check`
reviews the entries a pull request changes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import catalog, sources
from cnn_filter_db.errors import CatalogError
from cnn_filter_db.review import check_catalog, markdown_report
from cnn_filter_db.scaffold import add_entry

FILLED = {"name": "MTCNN P-Net copy", "architecture": "mtcnn-pnet", "family": "mtcnn", "task": "face-detection",
          "visual_category": "faces", "training_dataset": "wider-face+celeba", "pretraining_dataset": "none",
          "license": "MIT", "training_data_license": "unknown"}


def new_root(tmp_path: Path, root: Path) -> Path:
    r = tmp_path / "proj"
    (r / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", r / "catalog")
    (r / "catalog" / "schema.json").write_text(catalog.render_schema(r))
    catalog.write_index(r)
    return r


def fill(path: Path, **extra) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(FILLED, **extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_add_local_file_scaffolds_entry_with_todos(tmp_path, root, cache_dir):
    r = new_root(tmp_path, root)
    pnet = sources.fetch_file(catalog.load_entry("facenet-mtcnn-pnet", root), cache_dir)
    local = tmp_path / "weights.bin"  # the extension says nothing: the format is sniffed
    shutil.copy(pnet, local)
    path, found = add_entry(str(local), "my-pnet", root=r, cache_dir=tmp_path / "c")
    assert (found.format, found.n_layers, found.n_filters) == ("pytorch", 3, 702)
    text = path.read_text()
    assert f"url: {local.resolve().as_uri()}" in text and found.sha256 in text
    assert text.count("TODO") >= 8
    assert catalog.index_models(r) == ["my-pnet"]
    _, problems = catalog.validate_catalog(r)
    todo_fields = {p[1] for p in problems if "'TODO'" in p[2]}
    assert {"family", "task", "license", "visual_category", "training_dataset"} <= todo_fields
    with pytest.raises(CatalogError, match="pass --force"):
        add_entry(str(local), "my-pnet", root=r, cache_dir=tmp_path / "c")
    fill(path)
    assert catalog.validate_catalog(r)[1] == []


def test_add_pypi_and_timm_sources(tmp_path, root):
    r = new_root(tmp_path, root)
    _, found = add_entry("pypi:facenet-pytorch==2.6.0:facenet_pytorch/data/rnet.pt", "rnet", root=r,
                         cache_dir=tmp_path / "c")
    assert found.source["kind"] == "pypi" and (found.n_layers, found.n_filters) == (2, 1428)
    assert found.sha256 == catalog.load_entry("facenet-mtcnn-rnet", root).source.sha256
    path, found = add_entry("timm:resnet18", "resnet18-init", root=r)
    assert found.n_filters == 1_220_608
    data = yaml.safe_load(path.read_text())
    assert data["trained"] is False and data["source"] == {"kind": "timm", "architecture": "resnet18", "seed": 0}
    with pytest.raises(CatalogError, match="should match pattern"):
        add_entry("timm:resnet18", "Bad Id", root=r)


def git(r: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", "-C", str(r), *args], check=True, capture_output=True, text=True, env=env).stdout


def test_check_reports_only_changed_entries(tmp_path, root, cache_dir):
    r = new_root(tmp_path, root)
    shutil.copy(root / "catalog" / "models" / "facenet-mtcnn-onet.yaml", r / "catalog" / "models")
    catalog.write_index(r)
    git(r, "init", "-q")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    base = git(r, "rev-parse", "HEAD").strip()
    # the pull request: one good entry, one whose sha256 pin is wrong
    shutil.copy(root / "catalog" / "models" / "facenet-mtcnn-pnet.yaml", r / "catalog" / "models")
    bad = yaml.safe_load((root / "catalog" / "models" / "facenet-mtcnn-rnet.yaml").read_text())
    bad["source"]["sha256"] = "f" * 64
    (r / "catalog" / "models" / "facenet-mtcnn-rnet.yaml").write_text(yaml.safe_dump(bad))
    catalog.write_index(r)
    git(r, "add", "-A")
    git(r, "commit", "-qm", "pr")
    checked, problems = check_catalog(r, since=base, cache_dir=cache_dir)
    assert problems == []
    by_id = {c.model_id: c for c in checked}
    assert set(by_id) == {"facenet-mtcnn-pnet", "facenet-mtcnn-rnet"}
    assert (by_id["facenet-mtcnn-pnet"].n_layers, by_id["facenet-mtcnn-pnet"].n_filters) == (3, 702)
    assert by_id["facenet-mtcnn-pnet"].problems == []
    assert any("sha256 mismatch" in p for p in by_id["facenet-mtcnn-rnet"].problems)
    report = markdown_report(checked, problems)
    assert "| `facenet-mtcnn-pnet` | pytorch | 3 | 702 | none |" in report
    assert "Result: **fail**" in report
    cli = subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(r), "catalog", "check",
                          "--changed-since", base, "--cache-dir", str(cache_dir)], capture_output=True, text=True)
    assert cli.returncode == 1 and "facenet-mtcnn-rnet" in cli.stdout and "facenet-mtcnn-onet" not in cli.stdout


def test_contributing_states_the_limits_the_loader_applies(root):
    """CONTRIBUTING.md's list of what is refused quotes the loader's limits: keep them equal."""
    from cnn_filter_db import config, strict_yaml

    text = (root / "CONTRIBUTING.md").read_text()
    assert "What a pull request may contain, and what is refused" in text
    assert f"files over {strict_yaml.MAX_BYTES // 1024} KB" in text
    assert f"nesting deeper than {strict_yaml.MAX_DEPTH}" in text
    assert f"integers over {strict_yaml.MAX_INT_DIGITS} digits" in text
    assert f"`{config.MODEL_ID_PATTERN}`" in text
