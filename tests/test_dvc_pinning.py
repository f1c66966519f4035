"""Pinning through git and DVC: `cnn-filter-db release` pushes the outputs to the `storage`
remote, mirrors the new objects into the Hub dataset repo's `dvc-cache/` folder and tags
v<version>; a new clone, which reaches that folder only over HTTP (the repository's default
remote `hub`, here a local Hub server), gets an older release back byte for byte with
`dvc get --rev` and `dvc.api.open(rev=...)`."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_server import HubServer

V1 = ["rapidocr-ppocr-mobile-v2-cls", "facenet-mtcnn-pnet"]
V2_ADDED = "facenet-mtcnn-rnet"
REPO_ID = "test-org/cnn-filter-db"
TOKEN = "hf_pinningtesttoken0123456789"


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def hub(tmp_path):
    server = HubServer(tmp_path / "hub", token=TOKEN).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_release_tags_pushes_and_dvc_gets_older_version(tmp_path, root, cache_dir, hub):
    work, fresh = tmp_path / "work", tmp_path / "fresh"
    public = f"{hub.url}/datasets/{REPO_ID}/resolve/main/dvc-cache"
    env = dict(os.environ, PYTHONPATH=str(work / "src"), CNN_FILTER_DB_CACHE=str(cache_dir),
               HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")

    def run(*cmd, cwd=work, ok=True):
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
        if ok:
            assert proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    cli = [sys.executable, "-m", "cnn_filter_db.cli"]
    run("git", "clone", "--quiet", str(root), str(work), cwd=tmp_path)
    for p in (work / "catalog" / "models").glob("*.yaml"):
        if p.stem not in V1:
            p.unlink()
    run(*cli, "catalog", "index")
    # the public remote and the Hub repo of this test: the local server stands in for huggingface.co
    config = (work / ".dvc" / "config").read_text()
    assert "https://huggingface.co/datasets/cnn-filter-db/cnn-filter-db/resolve/main/dvc-cache" in config
    (work / ".dvc" / "config").write_text(config.replace(
        "https://huggingface.co/datasets/cnn-filter-db/cnn-filter-db/resolve/main/dvc-cache", public))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["release"]["hub_repo_id"] = REPO_ID
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git", "add", "-A")
    run("git", "commit", "-qm", "v0.1.0 catalog")

    run("dvc", "repro")
    refused = run(*cli, "release", ok=False)  # dvc.lock changed and is not committed
    assert refused.returncode == 1 and "uncommitted" in (refused.stderr + refused.stdout).lower()
    run("git", "add", "dvc.lock", "reports")  # the lock and the metrics (reports/summary.json is new in git)
    run("git", "commit", "-qm", "build v0.1.0")
    out = run(*cli, "release").stdout
    assert "tagged v0.1.0" in out
    rel = work / "dist" / "cnn-filter-db"
    v1 = digests(rel)
    assert "manifest.json" in v1 and len([k for k in v1 if k.startswith("filters/")]) == 2
    storage = tmp_path / "cnn-filter-db-storage"  # the push remote, beside the repository
    assert storage.is_dir() and any(storage.rglob("*"))
    mirrored = {p for p in hub.state.get("dataset", REPO_ID).files(hub.state.get("dataset", REPO_ID).resolve("main"))}
    objects = {p.relative_to(storage).as_posix() for p in storage.rglob("*") if p.is_file()}
    assert {f"dvc-cache/{o}" for o in objects} <= mirrored and len(objects) >= 3

    # v0.2.0: one more model
    run("git", "checkout", "origin/HEAD", "--", f"catalog/models/{V2_ADDED}.yaml")  # the full catalog
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["release"]["version"] = "0.2.0"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(*cli, "catalog", "index")
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "v0.2.0: add a model")
    assert "tagged v0.2.0" in run(*cli, "release").stdout
    assert run(*cli, "release", ok=False).returncode == 1  # the tag exists: versions are immutable
    v2 = digests(rel)
    assert v2 != v1 and f"filters/{V2_ADDED}/{V2_ADDED}-00000-of-00001.parquet" in v2

    # a new clone, without any DVC cache of its own and with the push remote gone, gets v0.1.0
    # back from the public remote over HTTP
    storage.rename(tmp_path / "storage-elsewhere")
    hub.requests.clear()
    run("git", "clone", "--quiet", str(work), str(fresh), cwd=tmp_path)
    run("dvc", "get", str(fresh), "dist/cnn-filter-db", "--rev", "v0.1.0", "-o", str(tmp_path / "got"), cwd=tmp_path)
    assert digests(tmp_path / "got") == v1
    fetched = [path for method, path in hub.requests if method == "GET"]
    # DVC's objects, through the Hub's resolve path (large files redirect to its storage's /object/)
    assert fetched and all(path.startswith((f"/datasets/{REPO_ID}/resolve/main/dvc-cache/files/md5/", "/object/"))
                           for path in fetched), fetched
    import dvc.api

    with dvc.api.open("dist/cnn-filter-db/manifest.json", repo=str(fresh), rev="v0.1.0", mode="rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == v1["manifest.json"]
    with dvc.api.open("dist/cnn-filter-db/manifest.json", repo=str(fresh), rev="v0.2.0", mode="rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == v2["manifest.json"]
