"""Publishing to a Hub and pinning versions, end to end against the local Hub server of
``hub_server.py`` (the real ``huggingface_hub`` and ``datasets`` on the client side).

The client side runs in a subprocess: ``huggingface_hub`` and ``datasets`` read
``HF_ENDPOINT`` and the offline switches at import, and the test session imported them
offline (conftest). Each subprocess gets the server as endpoint, no offline switch, and
its own HF_HOME under the test's tmp folder.
"""
from __future__ import annotations

import hashlib
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


def _changed_model(release: Path, model_id: str) -> None:
    """Stand in for new weights of ``model_id``: its filters scaled by 1.5 (shard rewritten
    with the package's writer options) and its models row pointing at other weights."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from cnn_filter_db.dataset import schema, writer

    for shard in sorted((release / "filters" / model_id).glob("*.parquet")):
        t = pq.read_table(shard)
        w = t["weights"].combine_chunks()
        scaled = pa.FixedSizeListArray.from_arrays(pc.multiply(w.flatten(), pa.scalar(1.5, pa.float32())),
                                                   type=t.schema.field("weights").type)
        t = t.set_column(t.schema.get_field_index("weights"), t.schema.field("weights"), scaled)
        pq.write_table(t, shard, **schema.parquet_options(t.schema))
    m = pq.read_table(release / "models")
    rows = m.to_pylist()
    for r in rows:
        if r["model_id"] == model_id:
            r["weights_sha256"] = hashlib.sha256(b"other weights").hexdigest()
    writer.write_table(pa.Table.from_pylist(rows, schema=m.schema), release, "models")


CHANGED = "efficientnet-lite0"


@pytest.fixture(scope="module")
def releases(small_release, tmp_path_factory, root):
    """v0.1.0 (all five models) and v0.2.0 (one model's weights changed, nudenet-320n left
    out by the licence policy)."""
    base = tmp_path_factory.mktemp("releases")
    v1 = base / "v0.1.0" / "cnn-filter-db"
    shutil.copytree(small_release, v1)
    m1 = build_release(v1, "0.1.0", PERMISSIVE, root=root)
    v2 = base / "v0.2.0" / "cnn-filter-db"
    shutil.copytree(small_release, v2)
    _changed_model(v2, CHANGED)
    build_release(v2, "0.2.0", NO_AGPL, previous=m1, root=root)
    return {"0.1.0": v1, "0.2.0": v2}


def client(code: str, hub: HubServer, home: Path, token: str | None = TOKEN, check: bool = True,
           debug_logs: bool = False, popen: bool = False):
    """Run ``code`` in a fresh Python with the local Hub as endpoint; returns the process
    (started, not awaited, with ``popen``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    # HF_HUB_DISABLE_XET: with hf_xet installed the client would upload through Xet storage, which
    # this server does not speak; the LFS path is what these tests exercise
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    if token is not None:
        env["HF_TOKEN"] = token
    prelude = "import json, logging, sys\nfrom pathlib import Path\n"
    if debug_logs:  # everything huggingface_hub, datasets and this package log, at DEBUG
        prelude += "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        prelude += "import huggingface_hub.utils.logging as hl; hl.set_verbosity_debug()\n"
    args = [sys.executable, "-c", prelude + textwrap.dedent(code)]
    if popen:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"client failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc


def publish_code(release_dir: Path, repo: str = REPO, **kwargs) -> str:
    return f"""
        from cnn_filter_db.publish import publish, PublishError
        try:
            r = publish(Path({str(release_dir)!r}), {repo!r}, **{kwargs!r})
        except PublishError as exc:
            print("REFUSED:", exc)
            sys.exit(3)
        print("RESULT", json.dumps({{"commit": r.commit, "tag": r.tag, "deleted": r.deleted, "sent": r.sent,
                                    "unchanged": r.unchanged, "commits": r.commits}}))
    """


def result_of(proc) -> dict:
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def local_files(release: Path) -> dict[str, bytes]:
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in release.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def published(hub, releases, tmp_path_factory):
    """Both versions published in order, as a maintainer would; with what the server received."""
    home = tmp_path_factory.mktemp("hf-home-publisher")
    out = {}
    for version in ("0.1.0", "0.2.0"):
        start = len(hub.received)
        out[version] = result_of(client(publish_code(releases[version], commit_files=3), hub, home))
        out[version]["received"] = hub.received[start:]
    return out


# --------------------------------------------------------------------------- publish

def test_published_commits_and_tags(hub, releases, published):
    repo = hub.state.get("dataset", REPO)
    assert repo.state["tags"] == {"v0.1.0": published["0.1.0"]["commit"], "v0.2.0": published["0.2.0"]["commit"]}
    # v0.2.0's commits sit on top of v0.1.0's, the tag on the last one
    chain, c = [], published["0.2.0"]["commit"]
    while c != published["0.1.0"]["commit"]:
        chain.append(c)
        c = repo.state["commits"][c]["parent"]
    assert chain[::-1] == published["0.2.0"]["commits"]
    n = len(chain)
    assert [repo.state["commits"][c]["title"] for c in chain[::-1]] == [f"Release v0.2.0 (part {i} of {n})"
                                                                          for i in range(1, n + 1)]
    for version in ("0.1.0", "0.2.0"):
        commit = published[version]["commit"]
        files = repo.files(commit)
        local = local_files(releases[version])
        assert set(files) == set(local) | {".gitattributes"}
        for rel, data in local.items():  # byte-identical, large files through LFS with their real size
            assert repo.content(commit, rel) == data
            oid, size, sha256 = files[rel]
            assert size == len(data)
            if rel.endswith(".parquet"):
                assert sha256 == hashlib.sha256(data).hexdigest()
                assert repo.read(oid).startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")
            else:
                assert sha256 is None and repo.read(oid) == data
    assert published["0.2.0"]["deleted"] == ["filters/nudenet-320n/nudenet-320n-00000-of-00001.parquet"]


def test_tree_and_paths_info_report_lfs(hub, published, releases, tmp_path):
    shard = f"filters/{CHANGED}/{CHANGED}-00000-of-00001.parquet"
    code = f"""
        from huggingface_hub import HfApi
        api = HfApi()
        tree = {{e.path: e for e in api.list_repo_tree({REPO!r}, repo_type="dataset", revision="v0.1.0",
                                                       recursive=True) if hasattr(e, "blob_id")}}
        info = api.get_paths_info({REPO!r}, [{shard!r}, "README.md"], repo_type="dataset", revision="v0.2.0")
        sib = {{s.rfilename: s for s in api.dataset_info({REPO!r}, revision="v0.2.0", files_metadata=True).siblings}}
        print("RESULT", json.dumps({{
            "tree": [tree[{shard!r}].size, tree[{shard!r}].lfs.sha256, tree[{shard!r}].lfs.size, tree["README.md"].lfs],
            "info": [[i.path, i.size, i.lfs.sha256 if i.lfs else None] for i in info],
            "sibling": [sib[{shard!r}].size, sib[{shard!r}].lfs.sha256]}}))
    """
    got = result_of(client(code, hub, tmp_path / "home"))
    v1, v2 = (releases[v] / shard for v in ("0.1.0", "0.2.0"))
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert got["tree"] == [v1.stat().st_size, sha(v1), v1.stat().st_size, None]
    assert sorted(got["info"]) == sorted([[shard, v2.stat().st_size, sha(v2)],
                                          ["README.md", (releases["0.2.0"] / "README.md").stat().st_size, None]])
    assert got["sibling"] == [v2.stat().st_size, sha(v2)]


def test_resolve_redirects_large_files_to_storage(hub, published, releases):
    import http.client
    from urllib.parse import urlsplit

    shard = f"filters/{CHANGED}/{CHANGED}-00000-of-00001.parquet"
    data = (releases["0.1.0"] / shard).read_bytes()
    host = urlsplit(hub.url)
    conn = http.client.HTTPConnection(host.hostname, host.port)
    conn.request("HEAD", f"/datasets/{REPO}/resolve/v0.1.0/{shard}")
    r = conn.getresponse()
    r.read()
    assert r.status == 302
    assert r.getheader("X-Linked-Etag") == f'"{hashlib.sha256(data).hexdigest()}"'
    assert r.getheader("X-Linked-Size") == str(len(data))
    assert r.getheader("X-Repo-Commit") == published["0.1.0"]["commit"]
    location = urlsplit(r.getheader("Location"))
    assert f"{location.scheme}://{location.netloc}" == hub.storage_url  # another origin, like a CDN
    store = http.client.HTTPConnection(location.hostname, location.port)
    store.request("GET", f"{location.path}?{location.query}")
    assert store.getresponse().read() == data
    store.request("GET", f"{location.path}?sig=forged")  # the signature is checked
    assert store.getresponse().status == 403
    conn.request("GET", f"/datasets/{REPO}/resolve/v0.1.0/README.md")  # small files: served directly
    r = conn.getresponse()
    assert r.status == 200 and r.read() == (releases["0.1.0"] / "README.md").read_bytes()


def test_second_version_sends_only_what_changed(published, releases):
    old, new = local_files(releases["0.1.0"]), local_files(releases["0.2.0"])
    changed = {p for p in new if old.get(p) != new[p]}
    assert f"filters/{CHANGED}/{CHANGED}-00000-of-00001.parquet" in changed
    # no other model's filters changed: only the small tables and the card files besides
    assert {p for p in changed if p.startswith("filters/")} == {f"filters/{CHANGED}/{CHANGED}-00000-of-00001.parquet"}
    assert sorted(published["0.2.0"]["sent"]) == sorted(changed)
    assert sorted(published["0.2.0"]["unchanged"]) == sorted(set(new) - changed)
    received = published["0.2.0"]["received"]
    puts = {path.split("/")[-2]: n for role, method, path, n, _ in received if role == "storage" and method == "PUT"}
    want = {hashlib.sha256(new[p]).hexdigest(): len(new[p]) for p in changed if p.endswith(".parquet")}
    assert puts == want
    # what the storage and the commit bodies received: the changed files, plus the commit
    # bodies' own overhead (base64 of the small files, JSON), and nothing of the unchanged shards
    total = sum(n for *_, n, _ in received)
    small = sum(len(new[p]) for p in changed if not p.endswith(".parquet"))
    unchanged_shards = sum(len(new[p]) for p in set(new) - changed if p.endswith(".parquet"))
    assert sum(want.values()) <= total < sum(want.values()) + 2 * small + 200_000
    assert total < unchanged_shards
    first = sum(n for *_, n, _ in published["0.1.0"]["received"])
    print(f"\nbytes received by the server: v0.1.0 {first:,}, v0.2.0 {total:,} "
          f"(changed shards {sum(want.values()):,}, unchanged shards not sent {unchanged_shards:,})")


def test_no_credential_reaches_storage(published):
    for v in published.values():
        assert all(auth is None for role, *_, auth in v["received"] if role == "storage")


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
    assert "REFUSED:" in bad.stdout and "HTTP 401 (the token was not accepted)" in bad.stdout
    # the server echoed the Authorization header into its error: the message shows it scrubbed
    assert "received Authorization: Bearer <token>" in bad.stdout
    assert wrong not in bad.stdout + bad.stderr
    assert len([l for l in bad.stdout.splitlines() if l.startswith("REFUSED:")]) == 1


def test_read_only_token_is_refused_in_one_line(tmp_path, releases):
    reader = "hf_ReadOnlyToken0123456789abcdefXYZ"
    server = HubServer(tmp_path / "hub", token=TOKEN, read_token=reader).start()
    try:
        server.state.create("dataset", "test-org/ro", f"{server.url}/datasets/test-org/ro")
        proc = client(publish_code(releases["0.1.0"], "test-org/ro"), server, tmp_path / "home", token=reader,
                      check=False)
        assert proc.returncode == 3
        # the preconditions that passed ("ok: ..."), the plan, then the refusal
        lines = [l for l in proc.stdout.splitlines() if not l.startswith("ok: ")]
        assert len(lines) == 2 and lines[0].startswith("uploading ")
        assert lines[1].startswith("REFUSED: test-org/ro: publishing v0.1.0 failed before any commit: "
                                   "HTTP 403 (the token has no write access to this repository)")
        assert lines[1].endswith("nothing was tagged")
        assert reader not in proc.stdout + proc.stderr and "Bearer <token>" in proc.stdout
        repo = server.state.get("dataset", "test-org/ro")
        assert repo.state["tags"] == {} and len(repo.state["commits"]) == 1
    finally:
        server.stop()


def test_server_error_midway_then_rerun_finishes(tmp_path, releases):
    server = HubServer(tmp_path / "hub", token=TOKEN).start()
    try:
        server.fail_commits = [None, 500]  # the first commit passes, the second fails
        home = tmp_path / "home"
        proc = client(publish_code(releases["0.1.0"], "test-org/flaky", commit_files=2), server, home, check=False)
        assert proc.returncode == 3
        refused = [l for l in proc.stdout.splitlines() if l.startswith("REFUSED:")]
        assert len(refused) == 1
        assert "publishing v0.1.0 failed after 1 of" in refused[0] and "HTTP 500" in refused[0]
        assert refused[0].endswith("nothing was tagged") and TOKEN not in proc.stdout + proc.stderr
        repo = server.state.get("dataset", "test-org/flaky")
        assert repo.state["tags"] == {}
        first_commit = repo.state["branches"]["main"]
        done = {p for p, e in repo.files(first_commit).items() if p != ".gitattributes"}
        assert len(done) == 2
        start = len(server.received)
        again = result_of(client(publish_code(releases["0.1.0"], "test-org/flaky", commit_files=2), server, home))
        assert sorted(again["unchanged"]) == sorted(done)
        assert not set(again["sent"]) & done
        assert repo.state["tags"] == {"v0.1.0": again["commit"]}
        sent_objects = {sha for sha, _ in server.uploaded_objects(start)}
        assert not sent_objects & {repo.files(first_commit)[p][2] for p in done}
    finally:
        server.stop()


def test_killed_upload_resumes_without_resending(tmp_path, releases):
    """SIGKILL the publishing process while it uploads, then run it again: it finishes,
    tags once, and sends no object twice."""
    import signal

    server = HubServer(tmp_path / "hub", token=TOKEN).start()
    rel = releases["0.1.0"]
    shards_ = {p.relative_to(rel).as_posix(): p for p in rel.rglob("*.parquet")}
    try:
        home = tmp_path / "home"
        server.hold_uploads(after=3)
        proc = client(publish_code(rel, "test-org/killed", commit_files=1), server, home, popen=True)
        assert server.held.wait(timeout=300), proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        server.release.set()
        repo = server.state.get("dataset", "test-org/killed")
        assert repo.state["tags"] == {}  # nothing tagged
        stored_before = {p.name for p in repo.lfs.iterdir() if not p.name.startswith(".")}
        committed = {p for p in repo.files(repo.state["branches"]["main"]) if p != ".gitattributes"}
        assert 0 < len(stored_before) < len(shards_) and len(committed) < len(local_files(rel))
        start = len(server.received)
        again = result_of(client(publish_code(rel, "test-org/killed", commit_files=1), server, home))
        assert repo.state["tags"] == {"v0.1.0": again["commit"]}
        resent = [sha for sha, _ in server.uploaded_objects(start)]
        assert not set(resent) & stored_before  # what arrived is not sent again
        want = {hashlib.sha256(p.read_bytes()).hexdigest(): p.stat().st_size for p in shards_.values()}
        assert set(resent) == set(want) - stored_before and len(resent) == len(set(resent))
        assert sum(n for _, n in server.uploaded_objects(start)) == sum(want[s] for s in resent)
        for path, data in local_files(rel).items():
            assert repo.content(again["commit"], path) == data
        # a third run is refused: the tag exists and is never moved
        third = client(publish_code(rel, "test-org/killed"), server, home, check=False)
        assert third.returncode == 3 and "already exists" in third.stdout
        assert repo.state["tags"] == {"v0.1.0": again["commit"]}
    finally:
        server.stop()


def test_tag_made_meanwhile_by_another_client_is_not_moved(tmp_path, releases):
    server = HubServer(tmp_path / "hub", token=TOKEN).start()
    try:
        seen = []

        def other_client_tags(repo, commit):  # someone tags v0.1.0 at the first commit of this run
            seen.append(commit)
            if len(seen) == 1:
                repo.tag(commit, "v0.1.0")

        server.after_commit.append(other_client_tags)
        proc = client(publish_code(releases["0.1.0"], "test-org/race", commit_files=2), server, tmp_path / "h",
                      check=False)
        assert proc.returncode == 3
        refused = [l for l in proc.stdout.splitlines() if l.startswith("REFUSED:")]
        assert len(refused) == 1 and "tag v0.1.0 was made by someone else while this run uploaded; " \
                                     "it was not moved" in refused[0]
        repo = server.state.get("dataset", "test-org/race")
        assert repo.state["tags"] == {"v0.1.0": seen[0]} and len(seen) > 1
    finally:
        server.stop()


def test_interrupted_upload_says_so_in_one_line(tmp_path, releases):
    import signal

    server = HubServer(tmp_path / "hub", token=TOKEN).start()
    try:
        server.hold_uploads(after=0)  # the first large file (small ones travel inside commits)
        # A terminal delivers Ctrl-C to a process whose SIGINT is at its default. A parent that
        # ignores SIGINT (a non-interactive shell's background job, as CI may run the suite) passes
        # the ignore on through exec, and Python then installs no KeyboardInterrupt handler: the
        # signal would be absorbed. The child restores the handler a terminal would give it.
        ctrl_c = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        code = ctrl_c + textwrap.dedent(publish_code(releases["0.1.0"], "test-org/ctrl-c", commit_files=1))
        proc = client(code, server, tmp_path / "h", popen=True)
        assert server.held.wait(timeout=300), proc.communicate()
        proc.send_signal(signal.SIGINT)  # Ctrl-C while a file is being uploaded
        server.release.set()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 3, err[-3000:]
        refused = [l for l in out.splitlines() if l.startswith("REFUSED:")]
        made = len(server.state.get("dataset", "test-org/ctrl-c").state["commits"]) - 1  # the first is the Hub's
        planned = len(local_files(releases["0.1.0"])) - 1  # one file a commit, the card with the manifest
        assert made >= 1 and refused == [
            f"REFUSED: test-org/ctrl-c: publishing v0.1.0 was interrupted after {made} of {planned} commits to main; "
            "nothing was tagged; run the same command again to finish (what arrived is not sent again)"]
        assert "Traceback" not in err and TOKEN not in out + err
        assert server.state.get("dataset", "test-org/ctrl-c").state["tags"] == {}
    finally:
        server.stop()


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

    local = {v: load_layer(CHANGED, 0, source=releases[v]) for v in releases}
    assert not np.array_equal(local["0.1.0"], local["0.2.0"])  # the model changed between versions
    nudenet = load_layer("nudenet-320n", 5, source=releases["0.1.0"])
    code = f"""
        import numpy as np
        from cnn_filter_db import load_layer
        w = load_layer("nudenet-320n", 5, source="hf://{REPO}", revision="v0.1.0")
        np.save({str(tmp_path / "w.npy")!r}, w)
        for v in ("0.2.0", "0.1.0"):
            np.save({str(tmp_path)!r} + f"/changed-{{v}}.npy", load_layer({CHANGED!r}, 0, source="hf://{REPO}", revision="v" + v))
        try:
            load_layer("nudenet-320n", 5, source="hf://datasets/{REPO}", revision="v0.2.0")
            gone = "loaded"
        except Exception as exc:
            gone = str(exc)
        print("RESULT", json.dumps({{"gone": gone}}))
    """
    start = len(hub.requests)
    got = result_of(client(code, hub, tmp_path / "home"))
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), nudenet)
    for v in releases:
        np.testing.assert_array_equal(np.load(tmp_path / f"changed-{v}.npy"), local[v])
    assert nudenet.shape[2:] == (3, 3)
    assert "no model 'nudenet-320n'" in got["gone"]
    # large files come from storage through the Hub's redirect: only those models' shards
    # (and the layers table) were downloaded
    by_sha = {hashlib.sha256(data).hexdigest(): path for v in releases for path, data in local_files(releases[v]).items()}
    fetched = {by_sha[p.split("/")[-2]] for m, p in hub.requests[start:] if m == "GET" and p.startswith("/object/")}
    assert any(p.startswith("filters/nudenet-320n/") for p in fetched)
    assert all(p.startswith(("filters/nudenet-320n/", f"filters/{CHANGED}/", "layers/")) for p in fetched), fetched
    assert not [p for m, p in hub.requests[start:] if m == "GET" and "/resolve/" in p and p.endswith(".parquet")]
