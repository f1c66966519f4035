"""The content-addressed download cache: a file is stored under its own sha256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from .errors import SourceError
from .hashing import sha256_file


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        """The cached file, if present and still matching its hash (else it is dropped).

        A file is re-hashed only when its size or modification time changed since it was
        last verified (recorded in a ``.verified`` sidecar): a 100 GB file is not read again
        on every use.
        """
        p = self.path(sha256)
        if not p.exists():
            return None
        if self._stamp_path(p).exists() and self._stamp_path(p).read_text() == self._stamp(p):
            return p
        if sha256_file(p) != sha256:
            p.unlink()
            self._stamp_path(p).unlink(missing_ok=True)
            return None
        self._mark_verified(p)
        return p

    @staticmethod
    def _stamp_path(p: Path) -> Path:
        return p.with_name(p.name + ".verified")

    @staticmethod
    def _stamp(p: Path) -> str:
        st = p.stat()
        return f"{st.st_size} {st.st_mtime_ns}"

    def _mark_verified(self, p: Path) -> None:
        self._stamp_path(p).write_text(self._stamp(p))

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
            self._mark_verified(target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target
