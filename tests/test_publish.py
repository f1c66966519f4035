"""Publishing to a Hub and pinning versions, end to end against the local Hub server of
``hub_server.py`` (the real ``huggingface_hub`` and ``datasets`` on the client side).

The client side runs in a subprocess: ``huggingface_hub`` and ``datasets`` read
``HF_ENDPOINT`` and the offline switches at import, and the test session imported them
offline (conftest). Each subprocess gets the server as endpoint, no offline switch, and
its own HF_HOME under the test's tmp folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cnn_filter_db.publish import PublishError, publish
from cnn_filter_db.release import build_release

from hub_server import HubServer

SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "hf_TestTokenDoNotLeak0123456789abcdef"
REPO = "test-org/cnn-filter-db"
PERMISSIVE = {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"], "hub_repo_id": REPO}
NO_AGPL = {"redistributable_licenses": ["MIT", "Apache-2.0"], "hub_repo_id": REPO}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = HubServer(tmp_path_factory.mktemp("hub"), token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def releases(small_release, tmp_path_factory, root):
    """v0.1.0 (all five models) and v0.2.0 (nudenet-320n left out by the licence policy)."""
    base = tmp_path_factory.mktemp("releases")
    v1 = base / "v0.1.0" / "cnn-filter-db"
    shutil.copytree(small_release, v1)
    m1 = build_release(v1, "0.1.0", PERMISSIVE, root=root)
    v2 = base / "v0.2.0" / "cnn-filter-db"
    shutil.copytree(v1, v2)
    build_release(v2, "0.2.0", NO_AGPL, previous=m1, root=root)
    return {"0.1.0": v1, "0.2.0": v2}


def client(code: str, hub: HubServer, home: Path, token: str | None = TOKEN, check: bool = True,
           debug_logs: bool = False) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with the local Hub as endpoint; returns the process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    if token is not None:
        env["HF_TOKEN"] = token
    prelude = "import json, logging, sys\nfrom pathlib import Path\n"
    if debug_logs:  # everything huggingface_hub, datasets and this package log, at DEBUG
        prelude += "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        prelude += "import huggingface_hub.utils.logging as hl; hl.set_verbosity_debug()\n"
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"client failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc


def publish_code(release_dir: Path, repo: str = REPO) -> str:
    return f"""
        from cnn_filter_db.publish import publish, PublishError
        try:
            r = publish(Path({str(release_dir)!r}), {repo!r})
        except PublishError as exc:
            print("REFUSED:", exc)
            sys.exit(3)
        print("RESULT", json.dumps({{"commit": r.commit, "tag": r.tag, "deleted": r.deleted}}))
    """


def result_of(proc) -> dict:
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def published(hub, releases, tmp_path_factory):
    """Both versions published in order, as a maintainer would."""
    home = tmp_path_factory.mktemp("hf-home-publisher")
    r1 = result_of(client(publish_code(releases["0.1.0"]), hub, home))
    r2 = result_of(client(publish_code(releases["0.2.0"]), hub, home))
    return {"0.1.0": r1, "0.2.0": r2}


# --------------------------------------------------------------------------- publish

def test_published_commits_and_tags(hub, releases, published):
    repo = hub.state.get("dataset", REPO)
    assert repo.state["tags"] == {"v0.1.0": published["0.1.0"]["commit"], "v0.2.0": published["0.2.0"]["commit"]}
    assert published["0.1.0"]["commit"] != published["0.2.0"]["commit"]
    # one commit a version on top of the repo's initial commit
    c2 = repo.state["commits"][published["0.2.0"]["commit"]]
    assert c2["parent"] == published["0.1.0"]["commit"] and c2["title"] == "Release v0.2.0"
    for version, commit in (("0.1.0", published["0.1.0"]["commit"]), ("0.2.0", published["0.2.0"]["commit"])):
        files = repo.files(commit)
        local = releases[version]
        expected = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} | {".gitattributes"}
        assert set(files) == expected
        for rel in expected - {".gitattributes"}:  # byte-identical
            assert repo.read(files[rel][0]) == (local / rel).read_bytes()
    assert published["0.2.0"]["deleted"] == ["filters/nudenet-320n/nudenet-320n-00000-of-00001.parquet"]


def test_republishing_a_version_is_refused(hub, releases, published, tmp_path):
    repo = hub.state.get("dataset", REPO)
    n_commits = len(repo.state["commits"])
    proc = client(publish_code(releases["0.1.0"]), hub, tmp_path / "home", check=False)
    assert proc.returncode == 3
    assert f"tag v0.1.0 already exists (commit {published['0.1.0']['commit']}); versions are immutable" in proc.stdout
    assert len(repo.state["commits"]) == n_commits
    assert repo.state["tags"]["v0.1.0"] == published["0.1.0"]["commit"]


def test_manifest_mismatch_is_refused_before_any_request(hub, releases, tmp_path):
    rel = tmp_path / "cnn-filter-db"
    shutil.copytree(releases["0.2.0"], rel)
    shard = rel / "filters" / "efficientnet-lite0" / "efficientnet-lite0-00000-of-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # one flipped byte
    shard.write_bytes(bytes(data))
    before = len(hub.requests)
    with pytest.raises(PublishError, match=r"does not match its manifest(.|\n)*efficientnet-lite0-00000-of-00001.parquet: sha256 differs"):
        publish(rel, "test-org/mismatch", endpoint=hub.url, token=TOKEN)
    assert len(hub.requests) == before


def test_validation_hook_refuses(releases, hub):
    seen = []

    def failing(path):
        seen.append(path)
        return ["filters: weights hold NaN (expectation expect_column_values_to_not_be_null)"]

    before = len(hub.requests)
    with pytest.raises(PublishError, match="validation failed(.|\n)*weights hold NaN"):
        publish(releases["0.2.0"], "test-org/invalid", endpoint=hub.url, token=TOKEN, validate=failing)
    assert seen == [releases["0.2.0"]]
    assert len(hub.requests) == before


def test_dry_run_prints_plan_without_network(releases, hub, capsys):
    before = len(hub.requests)
    result = publish(releases["0.1.0"], "test-org/dry", dry_run=True, endpoint=hub.url, token=TOKEN)
    out = capsys.readouterr().out
    assert len(hub.requests) == before  # not even a HEAD
    assert result.commit is None and result.dry_run
    shard = releases["0.1.0"] / "filters" / "nudenet-320n" / "nudenet-320n-00000-of-00001.parquet"
    size_mb = f"{shard.stat().st_size / 1e6:.1f} MB"
    assert (f"filters/nudenet-320n/nudenet-320n-00000-of-00001.parquet  ->  hf://datasets/test-org/dry/"
            f"filters/nudenet-320n/nudenet-320n-00000-of-00001.parquet  ({size_mb})") in out
    assert "manifest.json  ->  hf://datasets/test-org/dry/manifest.json" in out
    assert f"dry run: {len(result.files)} files" in out and "tagged v0.1.0" in out
    assert TOKEN not in out


def test_token_is_never_printed_or_logged(hub, releases, tmp_path):
    # success path, with every logger at DEBUG
    ok = client(publish_code(releases["0.1.0"], "test-org/token-check"), hub, tmp_path / "a", debug_logs=True)
    assert result_of(ok)["tag"] == "v0.1.0"
    assert "uploading" in ok.stdout and TOKEN not in ok.stdout + ok.stderr
    # error path: the server rejects this token; the error is reported, the token is not
    wrong = TOKEN[::-1]
    bad = client(publish_code(releases["0.1.0"], "test-org/token-denied"), hub, tmp_path / "b", token=wrong,
                 check=False, debug_logs=True)
    assert bad.returncode == 3
    assert "REFUSED:" in bad.stdout and "401" in bad.stdout
    assert wrong not in bad.stdout + bad.stderr


def _git_repo(path: Path) -> Path:
    path.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.org"], ["config", "user.name", "T"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "params.yaml").write_text("release:\n  version: 0.1.0\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "first"], check=True)
    return path


def test_publish_makes_the_git_tag_and_refuses_a_dirty_tree(hub, releases, tmp_path):
    src = _git_repo(tmp_path / "src")
    (src / "params.yaml").write_text("release:\n  version: 0.1.1\n")
    before = len(hub.requests)
    with pytest.raises(PublishError, match="uncommitted changes \\(params.yaml\\)"):
        publish(releases["0.1.0"], "test-org/git", endpoint=hub.url, token=TOKEN, git_root=src)
    assert len(hub.requests) == before  # refused before any request
    subprocess.run(["git", "-C", str(src), "checkout", "-q", "params.yaml"], check=True)
    code = f"""
        from cnn_filter_db.publish import publish
        r = publish(Path({str(releases["0.1.0"])!r}), "test-org/git", git_root=Path({str(src)!r}))
        print("RESULT", json.dumps({{"commit": r.commit}}))
    """
    client(code, hub, tmp_path / "home")
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    tagged = subprocess.run(["git", "-C", str(src), "rev-list", "-n", "1", "v0.1.0"], capture_output=True, text=True)
    assert tagged.stdout.strip() == head
    assert "v0.1.0" in hub.state.get("dataset", "test-org/git").state["tags"]


# --------------------------------------------------------------------------- pinning

LOAD_MODELS = """
    import datasets
    out = []
    for rev in {revs!r}:
        ds = datasets.load_dataset({repo!r}, "models", revision=rev, split="train")
        out.append([rev, sorted(ds["model_id"])])
    print("RESULT", json.dumps(out))
"""


def test_pinning_by_tag(hub, published, releases, tmp_path):
    ids = {v: sorted(pq.read_table(releases[v] / "models")["model_id"].to_pylist()) for v in releases}
    assert "nudenet-320n" in ids["0.1.0"] and "nudenet-320n" not in ids["0.2.0"]
    home = tmp_path / "home"
    # newer first, then older, then newer again, in one process and one cache: a cache keyed
    # without the resolved commit would serve the first answer every time
    order = ["v0.2.0", "v0.1.0", "v0.2.0", "main", published["0.1.0"]["commit"]]
    got = result_of(client(LOAD_MODELS.format(revs=order, repo=REPO), hub, home))
    want = [ids["0.2.0"], ids["0.1.0"], ids["0.2.0"], ids["0.2.0"], ids["0.1.0"]]
    assert [g[1] for g in got] == want
    # a new process on the same (now warm) cache, older version first
    got = result_of(client(LOAD_MODELS.format(revs=["v0.1.0", "v0.2.0"], repo=REPO), hub, home))
    assert [g[1] for g in got] == [ids["0.1.0"], ids["0.2.0"]]


def test_hub_streaming_and_pushdown(hub, published, releases, tmp_path):
    code = f"""
        import datasets
        s = datasets.load_dataset({REPO!r}, revision="v0.1.0", split="train", streaming=True,
                                  filters=[("model_id", "==", "facenet-mtcnn-onet")], columns=["layer_id", "weights"])
        rows = list(s)
        print("RESULT", json.dumps({{"n": len(rows), "keys": sorted(rows[0]), "feature": repr(s.features["weights"]),
                                    "w": rows[0]["weights"]}}))
    """
    got = result_of(client(code, hub, tmp_path / "home"))
    onet = pq.read_table(releases["0.1.0"] / "filters" / "facenet-mtcnn-onet")
    assert got["n"] == onet.num_rows and got["keys"] == ["layer_id", "weights"]
    assert got["feature"] == "List(Value('float32'), length=9)"
    assert got["w"] == pytest.approx(onet["weights"][0].as_py(), abs=0)


def test_load_layer_from_hub_at_revision(hub, published, releases, tmp_path):
    import numpy as np

    from cnn_filter_db import load_layer

    local = load_layer("nudenet-320n", 5, source=releases["0.1.0"])
    code = f"""
        import numpy as np
        from cnn_filter_db import load_layer
        w = load_layer("nudenet-320n", 5, source="hf://{REPO}", revision="v0.1.0")
        np.save({str(tmp_path / "w.npy")!r}, w)
        try:
            load_layer("nudenet-320n", 5, source="hf://datasets/{REPO}", revision="v0.2.0")
            gone = "loaded"
        except Exception as exc:
            gone = str(exc)
        print("RESULT", json.dumps({{"gone": gone}}))
    """
    start = len(hub.requests)
    got = result_of(client(code, hub, tmp_path / "home"))
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), local)
    assert local.shape[2:] == (3, 3)
    assert "no model 'nudenet-320n'" in got["gone"]
    # only that model's shards (and the layers table and manifest) were downloaded
    fetched = [p for m, p in hub.requests[start:] if m == "GET" and "/resolve/" in p]
    assert any("/filters/nudenet-320n/" in p for p in fetched)
    assert all("/filters/nudenet-320n/" in p or "/layers/" in p or p.endswith("/manifest.json") for p in fetched), fetched
