"""Strict field types shared by the catalog's models (the entry and each source kind).

Catalog values are untrusted input: some reach pip, git or a URL opener, all are published.
So every field that names something has a pattern that admits nothing else (no whitespace,
no leading ``-`` that a tool would read as an option, no ``..`` path segment), and models
are strict: a boolean is not a number, a number is not a string.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Unknown fields refused, no type coercion, no NaN or infinity, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file, 64 lower-case hex digits")]

#: One line of printable text (published in the card): no control characters.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"

#: A relative path inside a wheel or a repository: segments of letters, digits and ``_.+=@-``,
#: none starting with ``.`` (so no ``..``, no absolute path, no hidden file).
_SEGMENT = r"[A-Za-z0-9_+=@-][A-Za-z0-9_.+=@-]*"
RELATIVE_PATH = rf"^{_SEGMENT}(/{_SEGMENT})*$"

#: PEP 508 distribution name (letters, digits, ``._-``, starting and ending alphanumeric).
PACKAGE_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$"

#: An exact PEP 440 version in its canonical spelling: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local].
PACKAGE_VERSION = (r"^([0-9]+!)?[0-9]+(\.[0-9]+){0,9}((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
                   r"(\+[a-z0-9]+(\.[a-z0-9]+){0,9})?$")

#: Seeds fit 32 bits (numpy's and torch's common range).
SEED_MAX = 2**32 - 1


def _scalar_types(annotation: Any) -> set:
    """The scalar types an annotation admits (through Optional, Union, Annotated, Literal)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return {type(v) for v in get_args(annotation)}
    if origin is Annotated:
        return _scalar_types(get_args(annotation)[0])
    if origin is Union or type(annotation).__name__ == "UnionType":
        return set().union(*(_scalar_types(a) for a in get_args(annotation)))
    return {annotation}


def exact_scalar(value: Any, annotation: Any) -> Any:
    """``value`` unchanged, unless a field of numbers would silently convert it: a boolean
    (``true`` is not 1) or a string (``"0.01"`` is not 0.01). For models that cannot be
    strict as a whole (a tuple field must still take a YAML list)."""
    admitted = _scalar_types(annotation)
    numeric = bool(admitted & {int, float})
    if isinstance(value, bool) and bool not in admitted and numeric:
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, str) and str not in admitted and numeric:
        raise ValueError("expected a number, not a string")
    return value
