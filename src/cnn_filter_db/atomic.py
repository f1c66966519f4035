"""Write to a temporary name, then rename: nothing is ever left half-written.

Temporary names are hidden siblings, ``.<name>.<random>.tmp``. Folders are replaced as a
group (one path or several, e.g. a model's shards and its metadata) through a journal:

1. ``.<name>.<id>.journal`` is written beside every target (temp, fsync, rename), each
   listing the whole group as (target, new temporary folder, old backup) triples; the one
   beside the first target, written last, is the group's record, the others point to it;
2. each existing target is renamed aside to ``.<name>.<id>.old``, then each new folder in;
3. the group is finished: the old folders removed, then the record, then the pointers.

A run killed at any point leaves the journal. The next write or removal of any path of
the group, and :func:`clean_stale`, finish the group first: forward when every new folder
is in place, else back to every old folder. The paths of a group are therefore always all
old or all new, never mixed. Readers and ``.dvcignore`` skip these hidden names (see
``dataset.layout``).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path


def _replace(src: Path, dst: Path) -> None:
    """One rename (with :func:`_remove`, the places to inject a failure or a kill in tests)."""
    os.replace(src, dst)


def _remove(path: Path) -> None:
    """Remove one file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _journal(target: Path, group: str) -> Path:
    return target.parent / f".{target.name}.{group}.journal"


def _write_journal(path: Path, group: str, entries: list[tuple]) -> None:
    """The group's triples, relative to the journal's folder (so a moved tree still
    recovers), made durable before any rename it guards."""
    def rel(p):
        return None if p is None else os.path.relpath(p, path.parent)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"group": group, "entries": [[rel(p) for p in triple] for triple in entries]}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    _replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(journal: Path) -> None:
    """Complete the group that ``journal`` (its record or a pointer) belongs to."""
    try:
        data = json.loads(journal.read_text())
    except FileNotFoundError:  # finished meanwhile, through another path of the group
        return
    def at(rel):
        return None if rel is None else Path(os.path.normpath(journal.parent / rel))
    entries = [tuple(at(p) for p in triple) for triple in data["entries"]]
    copies = [_journal(target, data["group"]) for target, _, _ in entries]
    if copies[0].exists():  # no record: the swap never started, or the group is finished
        if any(new.exists() for _, new, _ in entries):  # not every new folder moved in
            _roll_back(entries)
        for _, _, old in entries:  # forward (after a roll back there are none left)
            if old is not None and old.exists():
                _remove(old)
        _remove(copies[0])
    for copy in copies[1:]:
        if copy.exists():
            _remove(copy)


def _roll_back(entries: list[tuple]) -> None:
    """Every target back to its old content (or absent when it had none). Each step can be
    repeated after a crash in the middle of it: ``old is None`` says the target did not exist."""
    for target, new, old in entries:  # the new folders already moved in go back out
        if not new.exists() and target.exists() and (old is None or old.exists()):
            _replace(target, new)
    for target, _, old in entries:
        if old is not None and old.exists():
            _replace(old, target)
    for _, new, _ in entries:
        if new.exists():
            _remove(new)


def clean_stale(path: Path) -> None:
    """Remove what crashed writes of ``path`` left: finish the groups whose journal lies
    beside it, then remove its temporary siblings and a half-removed ``.<name>.removed``
    (and restore a ``.<name>.old`` of a version without journals when ``path`` is missing)."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for journal in sorted(path.parent.glob(f".{path.name}.*.journal")):
        _finish(journal)
    for stale in sorted(path.parent.glob(f".{path.name}.*.tmp")):
        _remove(stale)
    trash = path.parent / f".{path.name}.removed"
    if trash.exists():
        _remove(trash)
    old = path.parent / f".{path.name}.old"
    if old.exists():
        if not path.exists():
            _replace(old, path)
        else:
            _remove(old)


def remove_dir(path: Path) -> bool:
    """Remove folder ``path`` whole; False when it is not there. It is renamed to a hidden
    name first, so a crash never leaves a half-removed folder visible."""
    path = Path(path)
    clean_stale(path)
    if not path.exists():
        return False
    trash = path.parent / f".{path.name}.removed"
    _replace(path, trash)
    _remove(trash)
    return True


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

    On failure, or a crash, before or during the swap, every path keeps its last good
    content (see the module's docstring).
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
    group = secrets.token_hex(4)
    entries = [(path, tmp, path.parent / f".{path.name}.{group}.old" if path.exists() else None)
               for path, tmp in zip(paths, tmps)]
    journals = [_journal(path, group) for path in paths]
    for journal in journals[1:] + journals[:1]:  # the record last
        _write_journal(journal, group, entries)
    try:
        for target, _, old in entries:
            if old is not None:
                _replace(target, old)
        for target, new, _ in entries:
            _replace(new, target)
    finally:  # forward when every rename went through, back otherwise
        _finish(journals[0])


def atomic_dir(path: Path):
    """Yield a temporary sibling folder; on success it replaces ``path`` whole.

    On failure the temporary folder is removed and ``path`` keeps its last good content.
    """
    return atomic_dirs(path)
