"""The git tag ``v<version>`` of a release, made only on a clean, committed tree."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import CnnFilterDbError


class GitTagError(CnnFilterDbError):
    """The tag was not made; the message says why."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def tag_exists(root: Path, tag: str) -> bool:
    return _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}").returncode == 0


def dirty_paths(root: Path) -> list[str]:
    """Changed or untracked files (``git status --porcelain``); ignored files do not count."""
    proc = _git(root, "status", "--porcelain", "--untracked-files=normal")
    if proc.returncode != 0:
        raise GitTagError(f"{root}: not a git repository ({proc.stderr.strip()})")
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def tag_release(root: Path, version: str, message: str | None = None, exist_ok: bool = False) -> str:
    """Create the annotated tag ``v<version>`` at HEAD; returns the commit it points to.

    Refuses on a dirty tree (the tag must name exactly what was built) and when the tag
    exists on another commit; with ``exist_ok`` an existing tag on HEAD is accepted (what
    ``publish`` does when ``release`` already tagged).
    """
    root = Path(root)
    tag = f"v{version}"
    dirty = dirty_paths(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GitTagError(f"{root}: uncommitted changes ({shown}); commit them before tagging {tag}")
    head = _git(root, "rev-parse", "HEAD").stdout.strip()
    if not head:
        raise GitTagError(f"{root}: no commit to tag")
    if tag_exists(root, tag):
        target = _git(root, "rev-list", "-n", "1", tag).stdout.strip()
        if exist_ok and target == head:
            return head
        raise GitTagError(f"{root}: tag {tag} already exists (commit {target}); versions are immutable")
    proc = _git(root, "tag", "-a", tag, "-m", message or f"cnn-filter-db release {tag}")
    if proc.returncode != 0:
        raise GitTagError(f"{root}: git tag {tag} failed: {proc.stderr.strip()}")
    return head
