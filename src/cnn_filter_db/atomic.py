"""Write to a temporary name, then rename: nothing is ever left half-written.

Temporary names are hidden siblings, ``.<name>.<random>.tmp``; the folder a rename
replaces waits as ``.<name>.old`` until the new one is in place. A run killed half-way
leaves such entries behind: the next write of the same target removes them first (and
puts a ``.old`` back when the target itself is missing), so a stage cleans up after its
own crashed runs. Readers and ``.dvcignore`` skip them (see ``dataset.layout``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path


def _replace(src: Path, dst: Path) -> None:
    """One rename (a single place to inject a failure in tests)."""
    os.replace(src, dst)


def _old(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def clean_stale(path: Path) -> None:
    """Remove what crashed writes of ``path`` left: its temporary siblings, and its
    ``.old`` copy (renamed back when ``path`` itself is missing)."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    old = _old(path)
    if old.exists():
        if not path.exists():
            _replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_dirs(*paths: Path):
    """Yield one temporary sibling folder a path; on success they replace the paths together.

    On failure, before or during the swap, every path keeps its last good content: the
    swap moves each old folder aside, moves each new one in, and puts the old ones back
    if any rename fails.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
    with ExitStack() as stack:
        tmps = []
        for path in paths:
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            tmps.append(tmp)
        yield tmps if len(tmps) > 1 else tmps[0]
        _swap(paths, tmps)


def _swap(paths: list[Path], tmps: list[Path]) -> None:
    moved_aside: list[Path] = []
    moved_in: list[Path] = []
    try:
        for path in paths:
            if path.exists():
                _replace(path, _old(path))
                moved_aside.append(path)
        for path, tmp in zip(paths, tmps):
            _replace(tmp, path)
            moved_in.append(path)
    except BaseException:
        for path, tmp in zip(paths, tmps):
            if path in moved_in:
                os.replace(path, tmp)  # removed with the other temporary folders
        for path in moved_aside:
            os.replace(_old(path), path)
        raise
    for path in moved_aside:
        shutil.rmtree(_old(path), ignore_errors=True)


def atomic_dir(path: Path):
    """Yield a temporary sibling folder; on success it replaces ``path`` whole.

    On failure the temporary folder is removed and ``path`` keeps its last good content.
    """
    return atomic_dirs(path)
