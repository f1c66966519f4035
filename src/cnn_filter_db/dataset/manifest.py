"""``manifest.json``: what a release holds (every shard's sha256 and rows, the card files'
sha256, the fingerprint), how it is built and written, parsed, and checked against the folder.

The manifest is parsed by a typed model: a malformed one is one error naming the file and
the field; a path that would lead outside the release folder (absolute, ``..``, a hidden
entry) is refused by the parser, so it is never opened.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..atomic import atomic_write_text
from ..errors import ReleaseError
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


def check_manifest(release_dir: Path) -> list[str]:
    """Problems between a release folder and its manifest (empty when they match): every
    shard and card file listed with the right sha256, no file unlisted (stray files), and
    the fingerprint recomputed from the shards."""
    release_dir = Path(release_dir)
    path = release_dir / layout.MANIFEST
    if not path.exists():
        return [f"{path}: missing (run the release stage)"]
    try:
        manifest = read_manifest(path)
    except ReleaseError as exc:
        return [str(exc)]
    problems = []
    listed = manifest.recorded()
    on_disk = set(layout.release_files(release_dir)) - {layout.MANIFEST}
    for rel in sorted(on_disk - set(listed)):
        problems.append(f"{release_dir / rel}: not listed in {layout.MANIFEST}")
    actual: dict[str, str] = {}
    for rel, sha in sorted(listed.items()):
        f = layout.inside(release_dir, rel)
        if not f.is_file():
            problems.append(f"{f}: listed in {layout.MANIFEST} but missing")
            continue
        actual[rel] = sha256_file(f)
        if actual[rel] != sha:
            problems.append(f"{f}: sha256 differs from {layout.MANIFEST}")
    shard_sha = [actual.get(p.relative_to(release_dir).as_posix()) or sha256_file(p)
                 for p in layout.list_shards(release_dir)]
    recomputed = fingerprint(shard_sha)
    if recomputed != manifest.fingerprint:
        problems.append(f"{path}: fingerprint {manifest.fingerprint} does not match the shards ({recomputed})")
    return problems
