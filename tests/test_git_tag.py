"""The release's git tag: only on a clean, committed tree; never moved."""
from __future__ import annotations

import subprocess

import pytest

from cnn_filter_db.git_tag import GitTagError, tag_exists, tag_release


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.email", "test@example.org")
    git(r, "config", "user.name", "Test")
    (r / ".gitignore").write_text("/dist/\n")
    (r / "params.yaml").write_text("release:\n  version: 0.1.0\n")
    git(r, "add", ".")
    git(r, "commit", "-qm", "first")
    return r


def test_tag_on_clean_tree(repo):
    head = git(repo, "rev-parse", "HEAD")
    (repo / "dist").mkdir()
    (repo / "dist" / "x.parquet").write_bytes(b"ignored build output does not make the tree dirty")
    assert tag_release(repo, "0.1.0") == head
    assert tag_exists(repo, "v0.1.0")
    assert git(repo, "rev-list", "-n", "1", "v0.1.0") == head
    assert git(repo, "cat-file", "-t", "v0.1.0") == "tag"  # annotated
    assert tag_release(repo, "0.1.0", exist_ok=True) == head  # publish after release: same commit, accepted


def test_refuses_dirty_tree_and_existing_tag(repo):
    (repo / "params.yaml").write_text("release:\n  version: 0.2.0\n")
    with pytest.raises(GitTagError, match=r"uncommitted changes \(params.yaml\); commit them before tagging v0.2.0"):
        tag_release(repo, "0.2.0")
    assert not tag_exists(repo, "v0.2.0")
    git(repo, "commit", "-qam", "bump")
    tag_release(repo, "0.2.0")
    (repo / "new.txt").write_text("x")
    git(repo, "add", "new.txt")
    git(repo, "commit", "-qm", "later")
    with pytest.raises(GitTagError, match="tag v0.2.0 already exists .*versions are immutable"):
        tag_release(repo, "0.2.0", exist_ok=True)  # exists on another commit: never moved
