"""``publish()`` and its upload (``publish._Upload``) against the local Hub server of
``hub_server.py``, on releases of a few tiny files made by hand: small enough for mutation
testing (each test a few hub requests).

The client side is the real ``huggingface_hub`` in ONE worker subprocess for the module
(this test session imported it offline, see conftest; the worker has no offline switch and
the server as endpoint). Each test sends the worker one ``publish(...)`` call as a JSON line
and gets back what it returned or raised and every line it echoed. Expectations come from
the files themselves (sizes, hashlib), the server's own record of what it received, real
git, or literals explained where they appear.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cnn_filter_db.hub_layout import HubLimits
from cnn_filter_db.publish import PublishError, publish

from hub_server import HubServer

SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "hf_UploadTestTokenDoNotLeak0123456789"
READER = "hf_ReadOnlyUploadToken0123456789abcd"

WORKER = r"""
import json, sys, traceback
from pathlib import Path
from cnn_filter_db.publish import publish, PublishError

for line in sys.stdin:
    req = json.loads(line)
    echoed = []
    req_repo = req["repo"]
    raise_on = req.pop("raise_on", None)  # [line prefix, exception name, message]: a callback that fails there

    other = req.pop("other_commit_on", None)  # [line prefix, path]: another client commits that file then

    def echo(text):
        echoed.append(text)
        if other and text.startswith(other[0]):
            from huggingface_hub import CommitOperationAdd, HfApi
            HfApi(endpoint=req["endpoint"], token=req["token"]).create_commit(
                req_repo, [CommitOperationAdd(path_in_repo=other[1], path_or_fileobj=b"other")],
                commit_message="other client", repo_type="dataset")
        if raise_on and text.startswith(raise_on[0]):
            raise {"KeyboardInterrupt": KeyboardInterrupt, "RuntimeError": RuntimeError}[raise_on[1]](raise_on[2])

    out = {"echo": echoed}
    try:
        r = publish(Path(req.pop("release")), req.pop("repo"), echo=echo, **req)
        out["result"] = {"commit": r.commit, "tag": r.tag, "version": r.version, "deleted": r.deleted,
                         "sent": r.sent, "unchanged": r.unchanged, "commits": r.commits, "dry_run": r.dry_run}
    except PublishError as exc:
        out["refused"] = str(exc)
    except BaseException as exc:
        out["crashed"] = traceback.format_exc()
    print(json.dumps(out), flush=True)
"""


# --------------------------------------------------------------------------- releases by hand

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_release(root: Path, version: str, files: dict[str, bytes]) -> Path:
    """A release folder: ``files`` (``*.parquet`` are the shards) and a manifest listing them
    (SPEC section 4: the fingerprint is the sha256 of the sorted shard sha256s, one a line)."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    shards = sorted(p for p in files if p.endswith(".parquet"))
    doc = {"name": "cnn-filter-db", "version": version,
           "fingerprint": _sha("\n".join(sorted(_sha(files[p]) for p in shards)).encode()),
           "catalog_sha256": "c" * 64, "versions": {},
           "files": {p: _sha(d) for p, d in files.items() if p not in shards},
           "shards": [{"path": p, "sha256": _sha(files[p]), "rows": 1, "bytes": len(files[p])} for p in shards]}
    (root / "manifest.json").write_text(json.dumps(doc, indent=2))
    return root


SHARD_A = "filters/a/a-00000-of-00001.parquet"
SHARD_B = "layers/train-00000-of-00001.parquet"
SHARD_C = "filters/c/c-00000-of-00001.parquet"
SHARD_D = "filters/d/d-00000-of-00001.parquet"
V1 = {SHARD_A: b"A" * 10, SHARD_B: b"B" * 5, "README.md": b"card\n"}
# v1.3.0: A as it was, B gone, C and D new, the card the same, a citation file new
V2 = {SHARD_A: b"A" * 10, SHARD_C: b"C" * 10, SHARD_D: b"D" * 10, "README.md": b"card\n",
      "CITATION.cff": b"cff-version: 1\n"}


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    base = tmp_path_factory.mktemp("releases")
    return {"1.2.3": make_release(base / "v1", "1.2.3", V1), "1.3.0": make_release(base / "v2", "1.3.0", V2)}


def files_of(release: Path) -> dict[str, bytes]:
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in release.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- server and client

@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = HubServer(tmp_path_factory.mktemp("hub"), token=TOKEN, read_token=READER).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT")}
    # HF_HUB_DISABLE_XET: the server speaks the LFS path, not Xet storage
    env.update(HF_HOME=str(tmp_path_factory.mktemp("hf-home")), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def call(worker, hub):
    """call(release, repo, **publish keywords) -> the worker's answer."""
    def run(release: Path, repo: str, **kwargs) -> dict:
        kwargs.setdefault("endpoint", hub.url)
        kwargs.setdefault("token", TOKEN)
        worker.stdin.write(json.dumps({"release": str(release), "repo": repo, **kwargs}) + "\n")
        worker.stdin.flush()
        answer = json.loads(worker.stdout.readline())
        assert "crashed" not in answer, answer["crashed"]
        return answer
    return run


def commits_of(hub: HubServer, repo_id: str, head: str) -> list[str]:
    """The commits from the first after the server's initial one to ``head``, oldest first."""
    repo = hub.state.get("dataset", repo_id)
    chain = []
    while repo.state["commits"][head]["parent"] is not None:
        chain.append(head)
        head = repo.state["commits"][head]["parent"]
    return chain[::-1]


def lfs_sha256(hub: HubServer, repo_id: str, commit: str) -> dict[str, str | None]:
    return {p: e[2] for p, e in hub.state.get("dataset", repo_id).files(commit).items()}


def _git_repo(path: Path) -> Path:
    path.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True, text=True)
    run("init", "-q")
    run("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "x")
    return path


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- a first release

@pytest.fixture(scope="module")
def first(call, hub, rel, tmp_path_factory):
    git_root = _git_repo(tmp_path_factory.mktemp("git") / "src")
    answer = call(rel["1.2.3"], "o/first", commit_files=1, private=True, git_root=str(git_root))
    return answer, git_root


def test_a_first_release_goes_up_one_file_a_commit_then_is_tagged(hub, rel, first):
    answer, git_root = first
    r = answer["result"]
    repo = hub.state.get("dataset", "o/first")
    # commit_files=1: the two shards one a commit (path order), then the card with the manifest
    assert r["sent"] == [SHARD_A, SHARD_B, "README.md", "manifest.json"]
    assert r["unchanged"] == [] and r["deleted"] == [] and r["tag"] == "v1.2.3" and r["version"] == "1.2.3"
    assert r["commits"] == commits_of(hub, "o/first", repo.state["branches"]["main"]) and len(r["commits"]) == 3
    assert r["commit"] == r["commits"][-1] == repo.state["tags"]["v1.2.3"]
    assert [repo.state["commits"][c]["title"] for c in r["commits"]] == [
        "Release v1.2.3 (part 1 of 3)", "Release v1.2.3 (part 2 of 3)", "Release v1.2.3 (part 3 of 3)"]
    # the fingerprint by hand: sha256 of the sorted shard sha256s joined by a newline
    fingerprint = _sha("\n".join(sorted([_sha(b"A" * 10), _sha(b"B" * 5)])).encode())
    said = f"cnn-filter-db v1.2.3, fingerprint {fingerprint}"
    assert {repo.state["commits"][c]["description"] for c in r["commits"]} == {said}
    assert repo.state["tag_messages"] == {"v1.2.3": said}
    assert repo.state["visibility"] == "private"
    # the tag holds exactly the release (plus the repo's own .gitattributes), byte for byte
    local = files_of(rel["1.2.3"])
    assert {p: repo.content(r["commit"], p) for p in local} == local
    assert set(repo.files(r["commit"])) == set(local) | {".gitattributes"}
    # each commit held what it said: the first only the first shard
    assert set(repo.files(r["commits"][0])) == {".gitattributes", SHARD_A}
    # the source repository got the git tag at its HEAD
    assert _git(git_root, "rev-parse", "v1.2.3^{commit}") == _git(git_root, "rev-parse", "HEAD")


def test_a_first_release_says_each_step_on_one_line(rel, first):
    answer, git_root = first
    r, echo = answer["result"], answer["echo"]
    sizes = {p: len(d) for p, d in files_of(rel["1.2.3"]).items()}
    total = sum(sizes.values())                 # under 1000 bytes: human_size prints "<n> B"
    assert total < 1000
    ok = [l for l in echo if l.startswith("ok: ")]
    assert ok[0] == f"ok: {git_root} is committed and clean, and git tag v1.2.3 is free or at HEAD"
    assert len(ok) == 3                         # git, the Hub's limits, the manifest (no validation hook)
    rest = [l for l in echo if not l.startswith("ok: ")]
    c = r["commits"]
    assert rest == [
        f"uploading 4 files ({total} B) to datasets/o/first in 3 commits; 0 files already there",
        f"commit 1 of 3: 1 files ({sizes[SHARD_A]} B) at {c[0]}",
        f"commit 2 of 3: 1 files ({sizes[SHARD_B]} B) at {c[1]}",
        f"commit 3 of 3: 2 files ({sizes['README.md'] + sizes['manifest.json']} B) at {c[2]}",
        f"published datasets/o/first v1.2.3 at commit {c[2]}",
        f"git tag v1.2.3 at {_git(git_root, 'rev-parse', 'HEAD')}",
    ]


def test_a_published_version_is_refused_and_nothing_is_sent(call, hub, rel, first):
    repo = hub.state.get("dataset", "o/first")
    before = (len(repo.state["commits"]), dict(repo.state["tags"]))
    answer = call(rel["1.2.3"], "o/first")
    assert answer["refused"] == (f"o/first: tag v1.2.3 already exists (commit {first[0]['result']['commit']}); "
                                 "versions are immutable: bump release.version to publish a change")
    assert (len(repo.state["commits"]), repo.state["tags"]) == before
    assert "uploading" not in " ".join(answer["echo"])


# --------------------------------------------------------------------------- a second version

def _add_files(hub: HubServer, repo_id: str, files: dict[str, bytes]) -> None:
    """Another client commits ``files`` to main (regular files, inline)."""
    repo = hub.state.get("dataset", repo_id)
    with hub.state.lock:
        repo.commit("main", [{"key": "header", "value": {"summary": "other client"}}] + [
            {"key": "file", "value": {"path": p, "encoding": "base64", "content": base64.b64encode(d).decode()}}
            for p, d in files.items()])


def test_a_new_version_sends_only_what_changed_and_removes_what_it_lacks(call, hub, rel, first):
    # files that are not the release's: a DVC remote object (kept) and a stray file (removed)
    kept = "dvc-cache/files/md5/ab/cdef0123"
    _add_files(hub, "o/first", {kept: b"dvc object", "stray.txt": b"x"})
    answer = call(rel["1.3.0"], "o/first", commit_bytes=25, commit_files=100, private=False)
    r = answer["result"]
    repo = hub.state.get("dataset", "o/first")
    # A (same sha256 on the Hub) and the card (same git id) are not sent again
    assert r["unchanged"] == ["README.md", SHARD_A]
    # data in path order within 25 bytes a commit: CITATION.cff (15) + C (10) = 25, then D (10);
    # the manifest last; B and the stray file removed in that last commit
    assert r["sent"] == ["CITATION.cff", SHARD_C, SHARD_D, "manifest.json"]
    assert r["deleted"] == [SHARD_B, "stray.txt"]
    c = r["commits"]
    assert len(c) == 3 and r["commit"] == c[-1] == repo.state["tags"]["v1.3.0"]
    assert [repo.state["commits"][x]["title"] for x in c] == [f"Release v1.3.0 (part {i} of 3)" for i in (1, 2, 3)]
    assert SHARD_B in repo.files(c[1]) and SHARD_B not in repo.files(c[2])
    local = files_of(rel["1.3.0"])
    assert set(repo.files(r["commit"])) == set(local) | {".gitattributes", kept}
    assert {p: repo.content(r["commit"], p) for p in local} == local
    assert repo.state["tags"]["v1.2.3"] == first[0]["result"]["commit"]   # the old tag did not move
    sizes = {p: len(d) for p, d in local.items()}
    sent = sizes["CITATION.cff"] + sizes[SHARD_C] + sizes[SHARD_D] + sizes["manifest.json"]
    assert 1000 <= sent < 1050                  # printed with one decimal of KB: 1.0 KB
    assert [l for l in answer["echo"] if l.startswith("uploading")] == [
        f"uploading 4 files (1.0 KB) to datasets/o/first in 3 commits; 2 files already there; removing 2"]


def test_a_changed_file_under_the_same_path_is_sent_again(call, hub, tmp_path, rel):
    """Same paths, other bytes: a shard (compared by sha256) and the card (by git id)."""
    call(rel["1.2.3"], "o/changed")
    other = make_release(tmp_path / "v", "1.2.4", {**V1, SHARD_A: b"a" * 10, "README.md": b"card 2\n"})
    r = call(other, "o/changed", commit_files=10)["result"]
    assert r["unchanged"] == [SHARD_B]
    assert r["sent"] == [SHARD_A, "README.md", "manifest.json"]
    assert r["deleted"] == [] and len(r["commits"]) == 2
    assert hub.state.get("dataset", "o/changed").state["commits"][r["commits"][-1]]["title"] == \
        "Release v1.2.4 (part 2 of 2)"


def test_removals_alone_go_up_in_one_commit(call, hub, rel):
    """A run that committed everything but was stopped before its tag, then a stray file
    appears: the rerun sends nothing, removes the file in one commit, and tags."""
    call(rel["1.2.3"], "o/resume", commit_files=10)
    repo = hub.state.get("dataset", "o/resume")
    with hub.state.lock:
        repo.delete_tag("v1.2.3")
    _add_files(hub, "o/resume", {"stray.txt": b"x"})
    answer = call(rel["1.2.3"], "o/resume")
    r = answer["result"]
    assert r["sent"] == [] and r["deleted"] == ["stray.txt"] and len(r["commits"]) == 1
    assert sorted(r["unchanged"]) == sorted(files_of(rel["1.2.3"]))
    assert repo.state["commits"][r["commit"]]["title"] == "Release v1.2.3"   # one commit: no "part"
    assert "stray.txt" not in repo.files(r["commit"]) and repo.state["tags"] == {"v1.2.3": r["commit"]}
    assert answer["echo"][-2:] == [f"commit 1 of 1: 0 files (0 B) at {r['commit']}",
                                   f"published datasets/o/resume v1.2.3 at commit {r['commit']}"]


def test_a_repository_that_exists_is_used_as_it_is(call, hub, rel):
    with hub.state.lock:
        hub.state.create("dataset", "o/existing", f"{hub.url}/datasets/o/existing")
    r = call(rel["1.2.3"], "o/existing", private=True)["result"]
    repo = hub.state.get("dataset", "o/existing")
    assert repo.state["tags"] == {"v1.2.3": r["commit"]} and "visibility" not in repo.state
    # the default limits: the data in one commit, then the card and the manifest
    assert [repo.state["commits"][c]["title"] for c in r["commits"]] == ["Release v1.2.3 (part 1 of 2)",
                                                                          "Release v1.2.3 (part 2 of 2)"]


# --------------------------------------------------------------------------- failures

def test_a_commit_refused_midway_fails_in_one_line_and_a_rerun_finishes(call, hub, rel):
    hub.fail_commits = [None, 500]           # the first commit passes, the second answers 500
    answer = call(rel["1.2.3"], "o/flaky", commit_files=1)
    refused = answer["refused"]
    assert refused.startswith("o/flaky: publishing v1.2.3 failed after 1 of 3 commits to main: HTTP 500: ")
    assert "Internal Error while committing" in refused and refused.endswith("; nothing was tagged")
    # the server echoed the Authorization header: scrubbed
    assert TOKEN not in refused and "Bearer <token>" in refused and "\n" not in refused
    repo = hub.state.get("dataset", "o/flaky")
    assert repo.state["tags"] == {}
    again = call(rel["1.2.3"], "o/flaky", commit_files=1)["result"]
    assert again["unchanged"] == [SHARD_A] and again["sent"] == [SHARD_B, "README.md", "manifest.json"]
    assert repo.state["tags"] == {"v1.2.3": again["commit"]}


@pytest.mark.parametrize("token,status,hint", [
    ("hf_NotKnownToTheServer0123456789abc", 401, "the token was not accepted"),
    (READER, 403, "the token has no write access to this repository"),
])
def test_a_token_refused_by_the_hub_is_named_and_not_shown(call, hub, rel, token, status, hint):
    answer = call(rel["1.2.3"], f"o/denied-{status}", token=token)
    refused = answer["refused"]
    assert refused.startswith(f"o/denied-{status}: publishing v1.2.3 failed before any commit: HTTP {status} ({hint}): ")
    assert refused.endswith("; nothing was tagged") and token not in refused and "Bearer <token>" in refused


def test_a_tag_made_meanwhile_by_another_client_is_not_moved(call, hub, rel):
    seen = []

    def other_client_tags(repo, commit):     # someone tags v1.2.3 at this run's first commit
        if repo.repo_id == "o/race":
            seen.append(commit)
            if len(seen) == 1:
                repo.tag(commit, "v1.2.3")

    with hub.after_each_commit(other_client_tags):
        answer = call(rel["1.2.3"], "o/race", commit_files=1)
    repo = hub.state.get("dataset", "o/race")
    assert answer["refused"] == ("o/race: tag v1.2.3 was made by someone else while this run uploaded; "
                                 f"it was not moved (main is at {repo.state['branches']['main']})")
    assert repo.state["tags"] == {"v1.2.3": seen[0]} and len(seen) == 3


def test_a_branch_that_does_not_hold_the_release_is_not_tagged(call, hub, tmp_path):
    """The server loses six shards of the last commit and shows six files nobody sent (and a
    DVC object, which is allowed): no tag, and the message names the first five of each."""
    files = {f"filters/m{i}/m{i}-00000-of-00001.parquet": bytes([65 + i]) * 4 for i in range(7)}
    release = make_release(tmp_path / "r", "2.0.0", files)
    lost = sorted(files)[:6]

    def lose(repo, commit):
        if repo.repo_id == "o/lost" and "manifest.json" in repo.files(commit):   # the last commit
            entry = repo.files(commit)
            for p in lost:
                entry.pop(p, None)
            for i in range(1, 7):
                entry[f"zz-extra-{i}.txt"] = entry["manifest.json"]
            entry["dvc-cache/x"] = entry["manifest.json"]

    with hub.after_each_commit(lose):
        answer = call(release, "o/lost")
    repo = hub.state.get("dataset", "o/lost")
    head = repo.state["branches"]["main"]
    assert answer["refused"] == (f"o/lost: after uploading, main at {head} does not hold the release "
                                 f"(differing: {lost[:5]}, extra: {[f'zz-extra-{i}.txt' for i in range(1, 6)]}); "
                                 "nothing was tagged")
    assert repo.state["tags"] == {}


def test_the_branch_is_checked_and_tagged_at_this_runs_last_commit(call, hub, rel):
    """Another client commits to main right after this run's last commit: what is checked and
    tagged is this run's commit, which holds exactly the release."""
    other = []

    def other_client_commits(repo, commit):
        if repo.repo_id == "o/moved" and "manifest.json" in repo.files(commit) and not other:
            other.append(commit)
            repo.commit("main", [{"key": "header", "value": {"summary": "other client"}},
                                 {"key": "file", "value": {"path": "other.txt", "encoding": "base64",
                                                           "content": base64.b64encode(b"o").decode()}}])

    with hub.after_each_commit(other_client_commits):
        answer = call(rel["1.2.3"], "o/moved")
    repo = hub.state.get("dataset", "o/moved")
    assert answer["result"]["commit"] == other[0] == repo.state["tags"]["v1.2.3"]
    assert repo.state["branches"]["main"] != other[0] and "other.txt" not in repo.files(other[0])


def test_a_commit_made_by_another_client_after_the_plan_stops_the_run(call, hub, rel):
    """The plan (what to send, what to remove) was made from main as it was: when another
    client commits before this run's first commit, the Hub refuses that commit (its parent is
    no longer main's head) and nothing is tagged."""
    with hub.state.lock:
        hub.state.create("dataset", "o/busy", f"{hub.url}/datasets/o/busy")
    answer = call(rel["1.2.3"], "o/busy", other_commit_on=["uploading ", "other.txt"])
    assert answer["refused"].startswith("o/busy: publishing v1.2.3 failed before any commit: HTTP 412: ")
    assert answer["refused"].endswith("; nothing was tagged")
    repo = hub.state.get("dataset", "o/busy")
    assert repo.state["tags"] == {}
    assert set(repo.files(repo.state["branches"]["main"])) == {".gitattributes", "other.txt"}


def test_one_file_too_many_on_the_branch_is_enough_to_refuse_the_tag(call, hub, rel):
    def add_one(repo, commit):
        if repo.repo_id == "o/extra" and "manifest.json" in repo.files(commit):
            repo.files(commit)["zz.txt"] = repo.files(commit)["manifest.json"]

    with hub.after_each_commit(add_one):
        answer = call(rel["1.2.3"], "o/extra")
    repo = hub.state.get("dataset", "o/extra")
    assert answer["refused"] == (f"o/extra: after uploading, main at {repo.state['branches']['main']} does not "
                                 "hold the release (differing: [], extra: ['zz.txt']); nothing was tagged")
    assert repo.state["tags"] == {}


def test_a_tag_request_refused_for_another_reason_is_a_failure_not_a_race(call, hub, rel):
    hub.fail_tags = [500]
    answer = call(rel["1.2.3"], "o/tagfail")
    assert answer["refused"].startswith("o/tagfail: publishing v1.2.3 failed after 2 of 2 commits to main: "
                                        "HTTP 500: Internal Error while tagging")
    assert answer["refused"].endswith("; nothing was tagged")
    assert hub.state.get("dataset", "o/tagfail").state["tags"] == {}


@pytest.mark.parametrize("where,made", [("uploading ", "before any commit"),
                                        ("commit 1 of", "after 1 of 3 commits to main")])
def test_an_interrupted_upload_says_how_far_it_got(call, hub, rel, where, made):
    repo_id = f"o/ctrl-c-{len(where)}"
    answer = call(rel["1.2.3"], repo_id, commit_files=1, raise_on=[where, "KeyboardInterrupt", ""])
    assert answer["refused"] == (f"{repo_id}: publishing v1.2.3 was interrupted {made}; nothing was tagged; "
                                 "run the same command again to finish (what arrived is not sent again)")
    assert hub.state.get("dataset", repo_id).state["tags"] == {}


def test_any_other_error_is_one_line_with_its_type(call, hub, rel):
    answer = call(rel["1.2.3"], "o/crash", commit_files=1, raise_on=["commit 2 of", "RuntimeError",
                                                                     f"disk gone\nwith {TOKEN}"])
    assert answer["refused"] == ("o/crash: publishing v1.2.3 failed after 2 of 3 commits to main: "
                                 "RuntimeError: disk gone with <token>; nothing was tagged")


def test_an_unknown_hub_error_without_a_server_message_keeps_its_first_line(call, hub, rel):
    """No endpoint at this port: the connection error's type and text, no HTTP status."""
    answer = call(rel["1.2.3"], "o/nowhere", endpoint="http://127.0.0.1:9")
    refused = answer["refused"]
    assert refused.startswith("o/nowhere: publishing v1.2.3 failed before any commit: ")
    assert "HTTP " not in refused and "Error: " in refused and refused.endswith("; nothing was tagged")


class _NotAHub(http.server.SimpleHTTPRequestHandler):
    """A plain web server (an empty folder): every API path is a bare 404 page."""

    def log_message(self, format, *args):
        pass


def test_an_http_error_without_a_hub_message_shows_the_first_line_of_the_error(call, tmp_path):
    (tmp_path / "site").mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_NotAHub, directory=str(tmp_path / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        answer = call(make_release(tmp_path / "r", "1.2.3", V1), "o/x", endpoint=url)
    finally:
        server.shutdown()
        server.server_close()
    # the first line of httpx's error (its next lines point to documentation of the status)
    assert answer["refused"] == (f"o/x: publishing v1.2.3 failed before any commit: HTTP 404: Client error "
                                 f"'404 File not found' for url '{url}/api/datasets/o/x/refs'; nothing was tagged")


def test_a_git_tag_already_at_head_is_kept(call, hub, rel, tmp_path):
    """A rerun after an upload whose git tag was made already: the tag stays where it is."""
    git_root = _git_repo(tmp_path / "src")
    _git(git_root, "tag", "v1.2.3")
    head = _git(git_root, "rev-parse", "HEAD")
    answer = call(rel["1.2.3"], "o/tagged", git_root=str(git_root))
    assert hub.state.get("dataset", "o/tagged").state["tags"] == {"v1.2.3": answer["result"]["commit"]}
    assert answer["echo"][-1] == f"git tag v1.2.3 at {head}"
    assert _git(git_root, "rev-parse", "v1.2.3^{commit}") == head


# --------------------------------------------------------------------------- before any request (in this process)

def test_a_dry_run_prints_the_plan_and_sends_nothing(hub, rel, tmp_path):
    lines = []
    received = len(hub.received)
    r = publish(rel["1.2.3"], "o/dry", dry_run=True, echo=lines.append, endpoint=hub.url, token=TOKEN)
    assert r.dry_run and r.commit is None and r.tag == "v1.2.3" and len(hub.received) == received
    sizes = {p: len(d) for p, d in files_of(rel["1.2.3"]).items()}
    plan = [l for l in lines if not l.startswith("ok: ")]
    fingerprint = _sha("\n".join(sorted([_sha(b"A" * 10), _sha(b"B" * 5)])).encode())
    assert plan == [f"{p}  ->  hf://datasets/o/dry/{p}  ({sizes[p]} B)" for p in sorted(sizes)] + [
        f"dry run: 4 files, {sum(sizes.values())} B, would be committed to hf://datasets/o/dry and tagged v1.2.3 "
        f"(fingerprint {fingerprint}); nothing was sent"]
    # the top folder holds README.md, manifest.json, filters/ and layers/: 4 entries
    assert lines[:2] == ["ok: 4 files, at most 4 entries in a folder (.): within the Hub's limits",
                         f"ok: the 4 files of {rel['1.2.3']} match manifest.json (sha256 of each, fingerprint)"]


def test_a_dry_run_with_git_says_the_tag_it_would_make(rel, tmp_path):
    git_root = _git_repo(tmp_path / "src")
    lines = []
    publish(rel["1.2.3"], "o/dry", dry_run=True, echo=lines.append, git_root=git_root, validate=lambda p: [])
    assert lines[-1] == f"dry run: git tag v1.2.3 would be made at HEAD of {git_root} if missing"
    assert "ok: the release passes validation" in lines
    assert _git(git_root, "tag") == ""                       # a dry run makes no tag


def test_a_version_other_than_the_manifests_is_refused(rel):
    with pytest.raises(PublishError) as err:
        publish(rel["1.2.3"], "o/x", dry_run=True, version="1.2.4", echo=lambda s: None)
    assert str(err.value) == f"{rel['1.2.3'] / 'manifest.json'}: version 1.2.3 differs from the requested 1.2.4"
    assert publish(rel["1.2.3"], "o/x", dry_run=True, version="1.2.3", echo=lambda s: None).version == "1.2.3"


def test_a_folder_without_a_manifest_is_refused_in_one_line(tmp_path):
    with pytest.raises(PublishError) as err:
        publish(tmp_path, "o/x", dry_run=True, echo=lambda s: None)
    assert str(err.value) == f"not publishing: {tmp_path / 'manifest.json'}: no manifest (the release stage writes it)"


def test_a_dirty_source_tree_is_refused_before_anything_is_sent(hub, rel, tmp_path):
    git_root = _git_repo(tmp_path / "src")
    (git_root / "new.txt").write_text("x")
    received = len(hub.received)
    with pytest.raises(PublishError) as err:
        publish(rel["1.2.3"], "o/x", endpoint=hub.url, token=TOKEN, git_root=git_root, echo=lambda s: None)
    assert str(err.value).startswith("not publishing: ") and len(hub.received) == received


def test_a_git_tag_of_this_version_on_another_commit_is_refused(rel, tmp_path):
    git_root = _git_repo(tmp_path / "src")
    _git(git_root, "tag", "v1.2.3")                             # on the first commit
    _git(git_root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "y")
    old = _git(git_root, "rev-parse", "v1.2.3^{commit}")
    with pytest.raises(PublishError) as err:
        publish(rel["1.2.3"], "o/x", dry_run=True, git_root=git_root, echo=lambda s: None)
    assert str(err.value) == (f"not publishing: {git_root}: tag v1.2.3 already exists (commit {old}); "
                              "versions are immutable")
    # the same tag at HEAD is fine (a rerun after the upload)
    _git(git_root, "tag", "-f", "v1.2.3")
    assert publish(rel["1.2.3"], "o/x", dry_run=True, git_root=git_root, echo=lambda s: None).tag == "v1.2.3"


def test_a_folder_beyond_the_hub_limits_is_refused_as_a_publish_error(rel):
    # the top folder holds 4 entries (README.md, manifest.json, filters/, layers/)
    with pytest.raises(PublishError) as err:
        publish(rel["1.2.3"], "o/x", dry_run=True, hub_limits=HubLimits(max_entries_per_folder=3),
                echo=lambda s: None)
    assert str(err.value).startswith(f"{rel['1.2.3']}: the layout is beyond the Hugging Face Hub's limits: ")
    lines = []
    publish(rel["1.2.3"], "o/x", dry_run=True, hub_limits=HubLimits(max_entries_per_folder=4), echo=lines.append)
    assert lines[0] == "ok: 4 files, at most 4 entries in a folder (.): within the Hub's limits"


def test_the_validation_hook_sees_the_release_and_its_problems_stop_the_publish(rel, hub):
    seen = []

    def hook(path):
        seen.append(path)
        return ["models: 1 row has a NaN"]

    received = len(hub.received)
    with pytest.raises(PublishError) as err:
        publish(rel["1.2.3"], "o/x", endpoint=hub.url, token=TOKEN, validate=hook, echo=lambda s: None)
    assert seen == [rel["1.2.3"]] and len(hub.received) == received
    assert str(err.value) == f"{rel['1.2.3']}: validation failed, not publishing:\nmodels: 1 row has a NaN"


def test_a_dry_run_result_names_the_repository_and_every_file(rel):
    r = publish(str(rel["1.2.3"]), "o/dry", dry_run=True, echo=lambda s: None)
    assert (r.repo_id, r.version, r.tag, r.commit, r.dry_run) == ("o/dry", "1.2.3", "v1.2.3", None, True)
    local = files_of(rel["1.2.3"])
    assert [f.path_in_repo for f in r.files] == sorted(local)
    assert r.bytes == sum(len(d) for d in local.values())
