"""Reading catalog YAML as untrusted input: a safe loader that refuses what a contributor
could use to hide or blow up a value.

Refused, each with the file and line: duplicate keys (YAML keeps the last one silently),
anchors and aliases (``&a`` / ``*a``: alias bombs, and values that silently change in two
places), merge keys (``<<``), nesting deeper than :data:`MAX_DEPTH`, integers longer than
:data:`MAX_INT_DIGITS` digits, bytes that are not UTF-8, NUL and other control characters,
and files larger than :data:`MAX_BYTES`. Dates stay strings (``2020-01-01`` is not turned
into a ``datetime.date``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import CatalogError

#: A catalog entry is a few kilobytes; the largest training recipe a few more.
MAX_BYTES = 256 * 1024
#: Mappings and lists nested deeper than this are refused (entries need 4 levels).
MAX_DEPTH = 20
#: Longest integer literal accepted (a 64-bit integer has 20 digits).
MAX_INT_DIGITS = 40

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


class StrictYAMLError(yaml.MarkedYAMLError):
    """A construct the catalog refuses, with the position where it starts."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without duplicate keys, anchors, aliases, merge keys, timestamps,
    deep nesting or huge integers."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if event.anchor is not None:  # an anchor (&a) or an alias (*a)
            raise StrictYAMLError(None, None, "YAML anchors and aliases (&name, *name) are not allowed in the "
                                  "catalog; write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise StrictYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                raise StrictYAMLError(None, None, "merge keys (<<) are not allowed in the catalog",
                                      key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise StrictYAMLError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
            if duplicate:
                raise StrictYAMLError(None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})",
                                      key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise StrictYAMLError(None, None, f"an integer of {digits} digits (at most {MAX_INT_DIGITS})",
                                  node.start_mark)
        return super().construct_yaml_int(node)


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
# dates and times stay strings: no field of an entry is a date
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_text(text: str, shown: str) -> Any:
    """Parse ``text`` (from the file ``shown``); a :class:`CatalogError` names file and line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (StrictLoader is a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "-"
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise CatalogError([(shown, where, f"not valid catalog YAML: {what}")]) from None
    except yaml.YAMLError as exc:  # a ReaderError: a character YAML does not allow
        position = getattr(exc, "position", None)
        where = f"line {text.count(chr(10), 0, position) + 1}" if isinstance(position, int) else "-"
        reason = getattr(exc, "reason", None) or "not valid YAML"
        char = getattr(exc, "character", None)
        code = ord(char) if isinstance(char, str) else char
        detail = f"{reason} (character {code:#06x})" if isinstance(code, int) else reason
        raise CatalogError([(shown, where, f"not valid catalog YAML: {detail}")]) from None


def load_file(path: Path, shown: str | None = None) -> Any:
    """Read and parse one catalog file: a regular file (not a symlink) of UTF-8 text."""
    path = Path(path)
    shown = shown or str(path)
    if path.is_symlink():
        raise CatalogError([(shown, "-", "is a symbolic link; catalog files must be regular files")])
    if not path.exists():
        raise CatalogError([(shown, "-", "file not found")])
    if not path.is_file():
        raise CatalogError([(shown, "-", "is not a regular file")])
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CatalogError([(shown, "-", f"is {size:,} bytes; a catalog file holds at most {MAX_BYTES:,}")])
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CatalogError([(shown, f"line {line}", f"is not UTF-8 text (byte {data[exc.start]:#04x} at "
                                                    f"offset {exc.start})")]) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise CatalogError([(shown, f"line {line}", "holds a NUL byte; catalog files are text")])
    return load_text(text.removeprefix("\ufeff"), shown)
