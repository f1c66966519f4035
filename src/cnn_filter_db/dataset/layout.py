"""Where everything of a release folder lives, and the one rule for what belongs to it.

A release folder holds one folder of Parquet shards a config (``config.RELEASE_CONFIGS``:
``filters/<model_id>/``, ``layers/``, ``models/``, ``layer_stats/``), and beside them
``manifest.json``, ``README.md`` and ``CITATION.cff``.

The rule: an entry whose name starts with ``.`` or ends with ``.tmp`` is never part of a
release, at any depth. That covers the temporary folders of :func:`atomic.atomic_dir`
(``.<name>.<random>.tmp``) that a crash leaves behind, the ``.<name>.<id>.old`` it renames
away, its ``.<name>.<id>.journal`` and ``.<name>.removed``, and editor or OS litter. Only
regular files belong to a release: a symlink, fifo or device is listed apart
(:func:`release_entries`) and never opened by the manifest check. A *shard* is a visible
file that matches its config's pattern (readers follow links to files: a Hub snapshot's
files are links into its blob cache).
Nothing else in the package lists a release folder.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .. import config
from ..errors import ReleaseError

MANIFEST = "manifest.json"
#: Files of a release besides the Parquet shards, recorded in the manifest by sha256.
CARD_FILES = ("README.md", "CITATION.cff", "croissant.json")


def is_hidden(name: str) -> bool:
    """Whether one path component is hidden or temporary (never part of a release)."""
    return name.startswith(".") or name.endswith(".tmp")


def is_visible(rel: str | PurePosixPath) -> bool:
    """Whether a path relative to the release folder has no hidden or temporary component."""
    return not any(is_hidden(part) for part in PurePosixPath(rel).parts)


def shard_name(prefix: str, i: int, n: int) -> str:
    """``<prefix>-0000i-of-0000n.parquet`` (the Hub's shard naming)."""
    return f"{prefix}-{i:05d}-of-{n:05d}.parquet"


def table_dir(release_dir: Path, name: str) -> Path:
    """The folder of a config's shards (``filters/`` holds one folder a model)."""
    if name not in config.RELEASE_CONFIGS:
        raise ReleaseError(f"unknown table {name!r}; known: {sorted(config.RELEASE_CONFIGS)}")
    return Path(release_dir) / config.RELEASE_CONFIGS[name].split("/", 1)[0]


def check_model_id(model_id: str) -> str:
    """``model_id`` when it names one visible folder inside ``filters/`` (no separator, not
    ``..``, not hidden, no glob character that would widen a download pattern); the
    catalog's stricter pattern is the catalog's business."""
    if (not isinstance(model_id, str) or not model_id or any(c in model_id for c in "/\\\0*?[]")
            or model_id in (".", "..") or is_hidden(model_id)):
        raise ReleaseError(f"model_id {model_id!r}: not a model id (one visible folder name under filters/)")
    return model_id


def model_dir(release_dir: Path, model_id: str) -> Path:
    """``filters/<model_id>/``: the folder of one model's filter shards."""
    return table_dir(release_dir, "filters") / check_model_id(model_id)


def release_of_filter_shard(path: Path) -> Path | None:
    """The release folder a filter shard ``<release>/filters/<model_id>/x.parquet`` lies in,
    or None for a file outside that layout."""
    path = Path(path)
    if len(path.parents) < 3 or path.parents[1].name != table_dir(Path(), "filters").name:
        return None
    return path.parents[2]


def download_patterns(model_ids: list[str] | None) -> list[str]:
    """Glob patterns of what reading some models needs (for a partial download of a Hub
    snapshot): their filter shards (every model's when None), the layers table (the shapes)
    and the manifest (the shards' sha256). Each id is checked first, so a bad one never
    widens the download."""
    shards = ([config.RELEASE_CONFIGS["filters"]] if model_ids is None
              else [f"filters/{check_model_id(m)}/*.parquet" for m in model_ids])
    return [*shards, config.RELEASE_CONFIGS["layers"], MANIFEST]


def release_entries(release_dir: Path) -> tuple[list[str], list[str]]:
    """Every visible entry of a release folder, as posix paths relative to it, sorted: the
    regular files, and everything else (symlinks of any kind, fifos, devices, sockets),
    which is never part of a release and must never be opened. Found by ``lstat``: no link
    is followed, hidden and temporary folders are not entered."""
    release_dir = Path(release_dir)
    files: list[str] = []
    other: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                if is_hidden(entry.name):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path), rel + "/")
                elif entry.is_file(follow_symlinks=False):
                    files.append(rel)
                else:
                    other.append(rel)

    if release_dir.is_dir():
        walk(release_dir, "")
    return sorted(files), sorted(other)


def release_files(release_dir: Path) -> list[str]:
    """Every visible regular file of a release folder (see :func:`release_entries`)."""
    return release_entries(release_dir)[0]


def list_shards(release_dir: Path, name: str | None = None) -> list[Path]:
    """The shards of one config, or of every config, sorted by relative path (so a
    model's shards come in shard order, model after model)."""
    release_dir = Path(release_dir)
    names = [name] if name is not None else list(config.RELEASE_CONFIGS)
    found = []
    for n in names:
        table_dir(release_dir, n)  # an unknown name is an error
        found += [p for p in release_dir.glob(config.RELEASE_CONFIGS[n])
                  if is_visible(p.relative_to(release_dir)) and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(release_dir).as_posix())


def model_shards(release_dir: Path, model_id: str) -> list[Path]:
    """One model's filter shards, in shard order."""
    folder = model_dir(release_dir, model_id)
    return sorted(p for p in folder.glob("*.parquet") if not is_hidden(p.name) and p.is_file())


def filter_models(release_dir: Path) -> list[str]:
    """The model folders under ``filters/`` (visible ones), sorted."""
    folder = table_dir(release_dir, "filters")
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))


def check_relative(rel: str) -> str:
    """``rel`` when it is a relative posix path that stays inside a folder and names no
    hidden entry (not absolute, no ``..``, no backslash); a :class:`ReleaseError` otherwise."""
    p = PurePosixPath(rel) if isinstance(rel, str) else None
    if (p is None or not rel or "\\" in rel or p.is_absolute()
            or any(part in ("", ".", "..") for part in rel.split("/")) or not is_visible(p)):
        raise ReleaseError(f"{rel!r}: not a path inside the release folder")
    return rel
