"""sha256 of files, read in blocks (memory stays flat for any file size)."""
from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 22


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()
