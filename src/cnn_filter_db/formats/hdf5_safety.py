"""HDF5 containment: a weights file may only hand out bytes it holds itself.

HDF5 can make a dataset read another file: *external raw storage* (the dataset's bytes live
in a named local file), *virtual datasets* (the data is mapped from datasets of other files),
and *external links* (a name that resolves into another file). A contributed ``.h5`` using any
of them would copy local files (keys, configs) into published shards. Filter pipelines are a
further door: a plugin filter is code loaded from the HDF5 plugin path.

:func:`open_contained` opens a file read-only and refuses, before any value is read:
external and soft links (no writer of Keras or pandas files makes them; a soft link can alias a
kernel or lead through a link out of the file), datasets with external storage, virtual
datasets, and datasets whose filters are not in :data:`ALLOWED_FILTERS` (the ones HDF5 and h5py
ship: gzip, shuffle, fletcher32, szip, n-bit, scale-offset, lzf). The error names the file
and the object's path. Every HDF5 reader of this package opens files through it.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import FormatError

#: HDF5 filter id -> name; anything else in a dataset's pipeline is refused.
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                   32000: "lzf"}


def problem_of(f, name: str, link) -> str | None:
    """What is wrong with one link of the file (``None`` when it is contained)."""
    import h5py

    if isinstance(link, h5py.ExternalLink):
        return f"is an external link to {link.filename!r}:{link.path}; a weights file must hold its own data"
    if isinstance(link, h5py.SoftLink):
        return f"is a soft link to {link.path!r}; soft links are refused (no weights writer makes them)"
    if not isinstance(link, h5py.HardLink):  # user-defined link classes
        return f"is a link of an unknown class ({type(link).__name__})"
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        return None
    if obj.external:
        return "stores its data in another file (HDF5 external storage); a weights file must hold its own data"
    if obj.is_virtual:
        return "is a virtual dataset (its data is mapped from other datasets or files)"
    plist = obj.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, fname = plist.get_filter(i)
        if code not in ALLOWED_FILTERS:
            shown = fname.decode(errors="replace") if isinstance(fname, bytes) else str(fname)
            return (f"uses HDF5 filter {code} ({shown or 'unnamed'}); only the filters HDF5 and h5py ship are "
                    f"read: {', '.join(ALLOWED_FILTERS.values())}")
    return None


def check_contained(f, shown: Path | str) -> None:
    """Raise :class:`FormatError` naming ``shown`` and the object path at the first escape."""
    found: list[tuple[str, str]] = []

    def visit(name, link):
        problem = problem_of(f, name, link)
        if problem:
            found.append((name, problem))
            return True  # stop: one clear error
        return None

    f.visititems_links(visit)
    if found:
        name, problem = found[0]
        raise FormatError(f"{shown}: refused: /{name} {problem}")


@contextmanager
def open_contained(path: Path, shown: Path | str | None = None) -> Iterator:
    """``h5py.File(path, "r")`` after :func:`check_contained`; unreadable files raise FormatError."""
    import h5py

    shown = shown if shown is not None else path
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{shown}: not a readable HDF5 file ({exc})") from None
    with f:
        try:
            check_contained(f, shown)
        except (OSError, KeyError, RuntimeError) as exc:  # a damaged object table
            raise FormatError(f"{shown}: not a readable HDF5 file ({exc})") from None
        yield f
