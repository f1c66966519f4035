"""``manifest.json``: what a release holds (every shard's sha256 and rows, the card files'
sha256, the fingerprint), how it is built and written, parsed, and checked against the folder.

The manifest is parsed by a typed model: a malformed one is one error naming the file and
the field; a path that would lead outside the release folder (absolute, ``..``, a hidden
entry) is refused by the parser, so it is never opened.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..atomic import atomic_write_text
from ..errors import CnnFilterDbError, ReleaseError
from ..hashing import sha256_file
from . import layout
from .shard import open_shard

SHA256 = r"^[0-9a-f]{64}$"


def _relative(rel: str) -> str:
    try:
        return layout.check_relative(rel)
    except ReleaseError as exc:
        raise ValueError(str(exc)) from None


class ShardRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str = Field(pattern=SHA256)
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _relative(v)


class Manifest(BaseModel):
    """The typed content of ``manifest.json`` (SPEC.md section 4)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    fingerprint: str = Field(pattern=SHA256)
    catalog_sha256: str = Field(pattern=SHA256)
    versions: dict[str, str]
    shards: list[ShardRecord]
    files: dict[str, str] = Field(default_factory=dict)  # card files -> sha256
    license_policy: dict[str, Any] | None = None
    excluded_models: dict[str, str] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("files")
    @classmethod
    def _files(cls, v: dict[str, str]) -> dict[str, str]:
        for rel, sha in v.items():
            _relative(rel)
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ValueError(f"{rel}: sha256 {sha!r} is not 64 hex digits")
        return v

    def recorded(self) -> dict[str, str]:
        """Every file the manifest records (shards and card files) -> sha256."""
        return {s.path: s.sha256 for s in self.shards} | dict(self.files)


def fingerprint(shard_sha256s: Iterable[str]) -> str:
    """sha256 over the sorted list of every shard's sha256 (SPEC.md section 4)."""
    return hashlib.sha256("\n".join(sorted(shard_sha256s)).encode()).hexdigest()


def build_manifest(release_dir: Path, version: str, catalog_sha256: str, versions: dict[str, str]) -> dict:
    """The manifest of the shards in ``release_dir`` (sha256, rows, bytes, fingerprint)."""
    release_dir = Path(release_dir)
    shards = []
    for p in layout.list_shards(release_dir):
        shards.append({
            "path": p.relative_to(release_dir).as_posix(),
            "sha256": sha256_file(p),
            "rows": open_shard(p).metadata.num_rows,
            "bytes": p.stat().st_size,
        })
    return {
        "name": "cnn-filter-db",
        "version": version,
        "fingerprint": fingerprint(s["sha256"] for s in shards),
        "catalog_sha256": catalog_sha256,
        "versions": versions,
        "shards": shards,
    }


def parse_manifest(data: Mapping, where: str) -> Manifest:
    """A manifest from its JSON value; a malformed one is one :class:`ReleaseError`."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ReleaseError(f"{where}: malformed manifest: {problems}") from None


def write_manifest(release_dir: Path, manifest: Mapping) -> Path:
    """Write ``manifest.json`` (checked against the model first: never a malformed one)."""
    path = Path(release_dir) / layout.MANIFEST
    parse_manifest(manifest, str(path))
    atomic_write_text(path, json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(source: Path | str) -> Manifest:
    """The manifest of a release folder, or of a ``manifest.json`` path."""
    path = Path(source)
    if path.is_dir():
        path = path / layout.MANIFEST
    if path.exists() and not path.is_file():  # a link to a file is read (a Hub snapshot's are)
        raise ReleaseError(f"{path}: not a regular file (a fifo or device); left unopened")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ReleaseError(f"{path}: no manifest (the release stage writes it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{path}: cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path}: not valid JSON ({exc})") from None
    return parse_manifest(data, str(path))


@dataclass(frozen=True)
class FileCheck:
    """One file of a release compared with its manifest: recorded there (shards and card
    files) or found on disk (every visible entry but manifest.json). Only a regular file
    inside the folder is ever opened: anything else (a link, fifo, device) is ``regular``
    False and has no sha256 or rows."""

    path: str
    listed: bool
    exists: bool
    regular: bool | None            # None: not on disk
    sha256_recorded: str | None
    sha256_actual: str | None       # listed regular files and shards only
    rows_recorded: int | None
    rows_actual: int | None         # shards only, from the Parquet footer


def compare(release_dir: Path, manifest: Manifest) -> tuple[list[FileCheck], str]:
    """Each file of ``release_dir`` against ``manifest`` (sorted by path), and the
    fingerprint recomputed from the shards on disk. Each regular file is hashed once."""
    release_dir = Path(release_dir)
    files, other = layout.release_entries(release_dir)
    regular = set(files) - {layout.MANIFEST}
    odd = set(other) - {layout.MANIFEST}
    shards = {p.relative_to(release_dir).as_posix() for p in layout.list_shards(release_dir)} & regular
    recorded = manifest.recorded()
    rows_recorded = {s.path: s.rows for s in manifest.shards}
    checks, shard_sha = [], []
    for rel in sorted(set(recorded) | regular | odd):
        is_regular = rel in regular
        sha = sha256_file(release_dir / rel) if is_regular and (rel in recorded or rel in shards) else None
        rows = None
        if rel in shards:
            shard_sha.append(sha)
            try:
                rows = open_shard(release_dir / rel).metadata.num_rows
            except CnnFilterDbError:
                pass  # an unreadable shard: its sha256 differs, and the content suites say more
        checks.append(FileCheck(rel, rel in recorded, is_regular or rel in odd,
                                is_regular if (is_regular or rel in odd) else None,
                                recorded.get(rel), sha, rows_recorded.get(rel), rows))
    return checks, fingerprint(shard_sha)


def check_manifest(release_dir: Path) -> list[str]:
    """Problems between a release folder and its manifest (empty when they match): no entry
    that is not a regular file (reported unopened), no file unlisted (stray files), every
    shard and card file listed with the right sha256, and the fingerprint recomputed from
    the shards (:func:`compare`)."""
    release_dir = Path(release_dir)
    path = release_dir / layout.MANIFEST
    if not path.exists() and not path.is_symlink():
        return [f"{path}: missing (run the release stage)"]
    try:
        manifest = read_manifest(path)
    except ReleaseError as exc:
        return [str(exc)]
    checks, recomputed = compare(release_dir, manifest)
    problems = [f"{release_dir / c.path}: not a regular file (a link, fifo or device); left unopened"
                for c in checks if c.regular is False]
    problems += [f"{release_dir / c.path}: not listed in {layout.MANIFEST}"
                 for c in checks if c.regular and not c.listed]
    for c in checks:
        if c.listed and not c.exists:
            problems.append(f"{release_dir / c.path}: listed in {layout.MANIFEST} but missing")
        elif c.listed and c.regular and c.sha256_actual != c.sha256_recorded:
            problems.append(f"{release_dir / c.path}: sha256 differs from {layout.MANIFEST}")
    if recomputed != manifest.fingerprint:
        problems.append(f"{path}: fingerprint {manifest.fingerprint} does not match the shards ({recomputed})")
    return problems
