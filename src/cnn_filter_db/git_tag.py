"""The git tag ``v<version>`` of a release, made only on a clean, committed tree."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import CnnFilterDbError


class GitTagError(CnnFilterDbError):
    """The tag was not made; the message says why."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def tag_target(root: Path, tag: str) -> str | None:
    """The commit ``tag`` points to, or None when there is no such tag."""
    proc = _git(root, "rev-list", "-n", "1", f"refs/tags/{tag}")
    return proc.stdout.strip() if proc.returncode == 0 else None


def tag_exists(root: Path, tag: str) -> bool:
    return tag_target(root, tag) is not None


def dirty_paths(root: Path) -> list[str]:
    """Changed or untracked files (``git status --porcelain``); ignored files do not count."""
    proc = _git(root, "status", "--porcelain", "--untracked-files=normal")
    if proc.returncode != 0:
        raise GitTagError(f"{root}: not a git repository ({proc.stderr.strip()})")
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def check_taggable(root: Path, version: str, exist_ok: bool = False) -> tuple[str, bool]:
    """(HEAD, whether the tag must still be made), or GitTagError when ``v<version>`` cannot
    name HEAD: a dirty tree (the tag must name exactly what was built), no commit, or the
    tag already on a commit (with ``exist_ok``: on another commit than HEAD)."""
    root = Path(root)
    tag = f"v{version}"
    dirty = dirty_paths(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GitTagError(f"{root}: uncommitted changes ({shown}); commit them before tagging {tag} (untracked "
                          "files count: the build may have read them; commit, delete or .gitignore each)")
    head = _git(root, "rev-parse", "HEAD").stdout.strip()
    if not head:
        raise GitTagError(f"{root}: no commit to tag")
    target = tag_target(root, tag)
    if target is None:
        return head, True
    if exist_ok and target == head:
        return head, False
    raise GitTagError(f"{root}: tag {tag} already exists (commit {target}); versions are immutable")


def tag_release(root: Path, version: str, message: str | None = None, exist_ok: bool = False) -> str:
    """Create the annotated tag ``v<version>`` at HEAD; returns the commit it points to.

    Refuses as :func:`check_taggable` says; with ``exist_ok`` an existing tag on HEAD is
    accepted (what ``publish`` does when ``release`` already tagged).
    """
    head, missing = check_taggable(root, version, exist_ok)
    if missing:
        tag = f"v{version}"
        proc = _git(Path(root), "tag", "-a", tag, "-m", message or f"cnn-filter-db release {tag}")
        if proc.returncode != 0:
            raise GitTagError(f"{root}: git tag {tag} failed: {proc.stderr.strip()}")
    return head
