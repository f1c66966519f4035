"""A shard's sha256 checked against ``manifest.json`` before it is read.

The public readers call :func:`verify` with the shards they are about to open. When the
release folder has a manifest, every shard must be listed in it with the sha256 of its
bytes; a shard that differs is an :class:`IntegrityError` naming it. Hashing a shard costs
about a second a 500 MB, so a verified file is remembered by (path, size, mtime): a second
read of an unchanged file costs a ``stat``. Without a manifest (a folder being built),
only the Parquet page checksums guard the bytes.

Every public reader calls it by default (``verify=True``; ``--no-verify`` on the command
line). The DVC pipeline's validate and analyze stages opt out, visibly in dvc.yaml: they read
a folder whose manifest is the previous build's until the release stage rewrites it, and
the release stage then compares every file (``manifest.check_manifest`` / the manifest suite).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

from ..errors import IntegrityError
from ..hashing import sha256_file
from . import layout
from .manifest import Manifest, read_manifest

_lock = threading.Lock()
#: manifest path -> ((size, mtime_ns), parsed manifest's sha256 by relative path)
_manifests: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}
#: shard path -> ((size, mtime_ns), sha256 found equal to the manifest's)
_verified: dict[str, tuple[tuple[int, int], str]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _recorded(release_dir: Path) -> dict[str, str] | None:
    """The manifest's sha256 of each shard, or None when the folder has no manifest."""
    path = Path(release_dir) / layout.MANIFEST
    try:
        stamp = _stamp(path)
    except FileNotFoundError:
        return None
    key = str(path.resolve())
    with _lock:
        cached = _manifests.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    manifest: Manifest = read_manifest(path)
    shas = {s.path: s.sha256 for s in manifest.shards}
    with _lock:
        _manifests[key] = (stamp, shas)
    return shas


def verify(release_dir: Path, paths: Iterable[Path]) -> None:
    """Check ``paths`` (shards of ``release_dir``) against its manifest, when it has one."""
    release_dir = Path(release_dir)
    recorded = _recorded(release_dir)
    if recorded is None:
        return
    for path in paths:
        rel = Path(path).relative_to(release_dir).as_posix()
        expected = recorded.get(rel)
        if expected is None:
            raise IntegrityError(f"{path}: not listed in {release_dir / layout.MANIFEST}; the folder is not "
                                 "the release the manifest describes")
        key, stamp = str(Path(path).resolve()), _stamp(Path(path))
        with _lock:
            if _verified.get(key) == (stamp, expected):
                continue
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(f"{path}: sha256 {actual} differs from {expected} in {layout.MANIFEST}; "
                                 "the shard is corrupt or was changed after the release was built")
        with _lock:
            _verified[key] = (stamp, expected)
