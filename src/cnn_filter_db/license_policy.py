"""Which models a release may redistribute, by the licence of their weights.

The policy is two params (``release.redistributable_licenses`` and
``release.allow_unknown_license``); a model whose weights licence is outside the list is
left out of the published release, and the card says which and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .params import ReleaseParams

UNKNOWN = "unknown"


@dataclass(frozen=True)
class LicensePolicy:
    """Licences (vocabulary names, e.g. ``MIT``) whose weights may be redistributed.

    ``allow_unknown``: whether weights of unknown licence are published anyway.
    """

    redistributable: frozenset[str]
    allow_unknown: bool = ReleaseParams.allow_unknown_license

    @classmethod
    def from_params(cls, params: "ReleaseParams | Mapping") -> "LicensePolicy":
        """From the ``release`` params group (the list is required: no silent default)."""
        p = ReleaseParams.of(params)
        if p.redistributable_licenses is None:
            raise ValueError("params: release.redistributable_licenses is required "
                             "(the list of weights licences that may be redistributed)")
        return cls(frozenset(str(x) for x in p.redistributable_licenses), bool(p.allow_unknown_license))

    def reason(self, license: str | None) -> str | None:
        """Why weights under ``license`` must be left out, or None when they may be published."""
        lic = license or UNKNOWN
        if lic == UNKNOWN:
            return None if self.allow_unknown else "weights licence unknown (release.allow_unknown_license is false)"
        if lic in self.redistributable:
            return None
        return f"weights licence {lic} is not in release.redistributable_licenses"


def excluded_models(models: Iterable[Mapping], policy: LicensePolicy) -> dict[str, str]:
    """model_id -> reason, for every row of the ``models`` table (or catalog entry as a
    mapping) that the policy leaves out; models it keeps are absent."""
    out = {}
    for row in models:
        why = policy.reason(row.get("license"))
        if why is not None:
            out[row["model_id"]] = why
    return dict(sorted(out.items()))
