"""Exceptions that carry the entry, field and expectation a user needs to fix bad input."""
from __future__ import annotations


class CnnFilterDbError(Exception):
    """Base class: the message is meant for the user, complete and without a traceback."""


class CatalogError(CnnFilterDbError):
    """A catalog entry is invalid. ``problems`` lists (file, field, expected) triples."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {field}: {msg}" for f, field, msg in problems))


class SourceError(CnnFilterDbError):
    """The weights of an entry could not be fetched or did not match their pin."""


class FormatError(CnnFilterDbError):
    """A weights file could not be read as its declared format."""


class AnalysisError(CnnFilterDbError):
    """A release cannot be analysed: tables disagree, rows are missing, or a param is wrong."""


class ReleaseError(CnnFilterDbError):
    """A release folder is incomplete, or does not match its manifest."""


class IntegrityError(ReleaseError):
    """A shard's bytes are not the bytes written: a page checksum or the manifest's sha256 differs."""
