"""The content-addressed download cache: a file is stored under its own sha256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import SourceError


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        """The cached file, if present and still matching its hash (else it is dropped)."""
        p = self.path(sha256)
        if not p.exists():
            return None
        if sha256_file(p) != sha256:
            p.unlink()
            return None
        return p

    def put_stream(self, stream: BinaryIO, sha256: str | None, what: str) -> Path:
        """Copy ``stream`` into the cache, checking its sha256 before it becomes visible.

        ``sha256=None`` accepts whatever arrives (the scaffold uses it to learn the pin).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
            got = h.hexdigest()
            if sha256 is not None and got != sha256:
                raise SourceError(f"sha256 mismatch for {what}: expected {sha256}, got {got}")
            target = self.path(got)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
