"""How to cite a release: BibTeX, ``CITATION.cff`` of a release, and the Zenodo metadata
(``.zenodo.json``) derived from the repository's ``CITATION.cff``, so that the DOI minted
for each GitHub release says what the citation file says. Regenerate it after editing
``CITATION.cff`` with ``python -m cnn_filter_db.citation`` (a test compares the two).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import yaml

PRETTY_NAME = "CNN Filter DB"
TAGS = ["convolutional-neural-networks", "model-weights", "cnn-filters", "3x3-convolution", "interpretability"]
PAPER = {
    "key": "gavrikov2022cnnfilterdb",
    "title": "{CNN Filter DB}: An Empirical Investigation of Trained Convolutional Filters",
    "authors": "Gavrikov, Paul and Keuper, Janis",
    "booktitle": "Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)",
    "year": "2022",
    "arxiv": "2203.15331",
}
ORIGINAL_DOI = "10.5281/zenodo.6371680"
#: What an SPDX licence id looks like: MIT, Apache-2.0, CC-BY-SA-4.0 (the catalog's lower-case
#: words, ``unknown`` or ``imagenet-terms``, are not SPDX ids).
SPDX_LIKE = re.compile(r"^[A-Z][A-Za-z0-9.+-]*$")


def spdx_licenses(models) -> list[str]:
    """The weights licences of ``models`` (rows with ``license``) that are SPDX ids."""
    return sorted({r["license"] for r in models if r.get("license") and SPDX_LIKE.match(r["license"])})


def bibtex(version: str, fingerprint: str, repo_id: str, year: str | None = None) -> str:
    key = "cnn_filter_db_v" + version.replace(".", "_").replace("-", "_")
    release = [f"@misc{{{key},",
               f"  title = {{{{CNN Filter DB}}: a versioned dataset of trained 3x3 convolution filters, release v{version}}},",
               "  author = {{cnn-filter-db contributors}},",
               *( [f"  year = {{{year}}},"] if year else []),
               f"  howpublished = {{\\url{{https://huggingface.co/datasets/{repo_id}}}}},",
               f"  note = {{Version v{version}, fingerprint sha256:{fingerprint}}}",
               "}"]
    p = PAPER
    paper = [f"@inproceedings{{{p['key']},",
             f"  title = {{{p['title']}}},",
             f"  author = {{{p['authors']}}},",
             f"  booktitle = {{{p['booktitle']}}},",
             f"  year = {{{p['year']}}},",
             f"  eprint = {{{p['arxiv']}}},",
             "  archivePrefix = {arXiv}",
             "}"]
    return "\n".join(release) + "\n\n" + "\n".join(paper)


def citation_cff(version: str, fingerprint: str, repo_id: str, licenses: list[str] = (),
                 licenses_url: str | None = None) -> str:
    """CITATION.cff of a release: this release as the work, the original paper as a reference.

    ``licenses``: the SPDX ids of the weights licences in the release (each model keeps its
    own; a release has no single licence); ``licenses_url``: where the per-model table is.
    """
    data = {
        "cff-version": "1.2.0",
        "message": "If you use this dataset, please cite this release (version and fingerprint) and the original paper.",
        "type": "dataset",
        "title": f"{PRETTY_NAME}: a versioned dataset of trained 3x3 convolution filters",
        "version": f"v{version}",
        "authors": [{"name": "cnn-filter-db contributors"}],
        **({"license": sorted(set(licenses))} if licenses else {}),
        **({"license-url": licenses_url} if licenses_url else {}),
        "url": f"https://huggingface.co/datasets/{repo_id}",
        "identifiers": [{"type": "other", "value": f"sha256:{fingerprint}",
                         "description": "fingerprint of the release (sha256 over the sorted shard sha256s)"}],
        "keywords": TAGS,
        "references": [_paper_cff()],
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _paper_cff() -> dict:
    return {
        "type": "conference-paper",
        "title": "CNN Filter DB: An Empirical Investigation of Trained Convolutional Filters",
        "authors": [{"family-names": "Gavrikov", "given-names": "Paul"},
                    {"family-names": "Keuper", "given-names": "Janis"}],
        "collection-title": PAPER["booktitle"],
        "year": 2022,
        "identifiers": [{"type": "url", "value": f"https://arxiv.org/abs/{PAPER['arxiv']}"},
                        {"type": "doi", "value": ORIGINAL_DOI,
                         "description": "the original v1.0.0 dataset on Zenodo"}],
    }



def _person(author: Mapping) -> str:
    if "family-names" in author:
        return f"{author['family-names']}, {author.get('given-names', '')}".strip(", ")
    return author["name"]


def zenodo_metadata(cff: Mapping) -> dict:
    """``.zenodo.json`` from a ``CITATION.cff`` mapping: the same title, authors, licence,
    keywords and references, in Zenodo's deposit vocabulary."""
    related = []
    for ref in [*cff.get("references", []), *([cff["preferred-citation"]] if "preferred-citation" in cff else [])]:
        for ident in ref.get("identifiers", []):
            if ident["type"] == "doi":
                related.append({"identifier": ident["value"], "relation": "isDerivedFrom", "scheme": "doi"})
            elif ident["type"] == "url" and "arxiv.org/abs/" in ident["value"]:
                related.append({"identifier": "arXiv:" + ident["value"].rsplit("/", 1)[-1],
                                "relation": "cites", "scheme": "arxiv"})
    out = {
        "title": cff["title"],
        "upload_type": cff.get("type", "dataset") if cff.get("type") in ("dataset", "software") else "dataset",
        "description": " ".join(str(cff.get("abstract") or cff["message"]).split()),
        "creators": [{"name": _person(a)} for a in cff["authors"]],
        "license": str(cff["license"]),  # an SPDX id, as Zenodo's deposit metadata takes it
        "keywords": list(cff.get("keywords", [])),
        "related_identifiers": related,
        "access_right": "open",
    }
    if "version" in cff:
        out["version"] = str(cff["version"])
    return out


def write_zenodo_json(root: Path) -> Path:
    """``<root>/.zenodo.json`` from ``<root>/CITATION.cff``."""
    from .atomic import atomic_write_text

    root = Path(root)
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    path = root / ".zenodo.json"
    atomic_write_text(path, json.dumps(zenodo_metadata(cff), indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(write_zenodo_json(Path(".")))
