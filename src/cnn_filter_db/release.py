"""Finish a release folder: apply the licence policy, write ``manifest.json``, the card
(``README.md``) and ``CITATION.cff``. (Checking a folder against its manifest is
``dataset.manifest.check_manifest``.)

The tables themselves are written by the extract, gather and analysis stages; this module
only removes the rows and shards of models the licence policy leaves out.
"""
from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from . import __version__, card, citation, config, croissant
from .atomic import atomic_write_text
from .catalog import catalog_sha256
from .dataset import layout, reader, shard, writer
from .dataset.layout import CARD_FILES, MANIFEST
from .dataset.manifest import build_manifest, read_manifest, write_manifest
from .errors import ReleaseError
from .hashing import sha256_file
from .hub_layout import HUB_LIMITS, HubLimits, require_within
from .license_policy import LicensePolicy, excluded_models
from .params import ReleaseParams

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
#: Packages whose versions a manifest records (the code's own version comes first).
MAIN_DEPENDENCIES = ("numpy", "pyarrow", "pandas", "torch", "timm", "onnx", "safetensors",
                     "datasets", "huggingface_hub")


def code_versions() -> dict[str, str]:
    out = {"cnn-filter-db": __version__}
    for name in MAIN_DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def table_schemas(release_dir: Path) -> dict[str, pa.Schema]:
    """config -> schema of each table present; the tables this package defines must
    have exactly the columns and types of :mod:`dataset.schema` (the card declares them)."""
    out = {}
    for name in config.RELEASE_CONFIGS:
        files = layout.list_shards(release_dir, name)
        if not files:
            continue
        expected = card.SCHEMAS.get(name)
        for f in files:
            got = shard.shard_schema(f)
            if expected is not None and not got.equals(expected, check_metadata=False):
                raise ReleaseError(f"{f}: columns {got.names} / types {[str(t) for t in got.types]} differ from "
                                   f"the {name} schema of dataset/schema.py {expected.names} / "
                                   f"{[str(t) for t in expected.types]}")
        out[name] = expected if expected is not None else shard.shard_schema(files[0]).remove_metadata()
    for required in ("filters", "layers", "models"):
        if required not in out:
            raise ReleaseError(f"{release_dir}: no {required} table ({config.RELEASE_CONFIGS[required]}); "
                               "run the extract and gather stages first")
    return out


def leave_out(release_dir: Path, model_ids: Iterable[str]) -> list[str]:
    """Remove the shards and table rows of ``model_ids`` from a release folder; returns the
    ids that were present. Each table is rewritten atomically."""
    release_dir = Path(release_dir)
    ids = sorted(set(model_ids))
    present = set()
    for mid in ids:
        if writer.remove_model(release_dir, mid):
            present.add(mid)
    for name in config.RELEASE_CONFIGS:
        if name == "filters":
            continue
        table = reader.read_table(release_dir, name, missing_ok=True, verify=False)
        if table is None or "model_id" not in table.column_names:
            continue
        drop = pc.is_in(table["model_id"], pa.array(ids, pa.string()))
        if pc.any(drop).as_py():
            present.update(table.filter(drop)["model_id"].to_pylist())
            kept = table.filter(pc.invert(drop))
            writer.write_table(kept, release_dir, name)
    return sorted(present)


def load_manifest(source: Path | str | Mapping | None) -> dict | None:
    """The previous release's manifest, for the changelog: a dict, a ``manifest.json`` path
    or a release folder (parsed and checked like any manifest)."""
    if source is None or isinstance(source, Mapping):
        return dict(source) if source is not None else None
    return read_manifest(source).model_dump()


def build_release(release_dir: Path, version: str, params: ReleaseParams | Mapping, previous=None, *,
                  root: Path = Path("."), entries: Iterable | None = None, prune: bool = True,
                  hub_limits: HubLimits = HUB_LIMITS) -> dict:
    """Finish ``release_dir`` as release ``version``: leave out the models the licence
    policy excludes, then write ``manifest.json``, ``README.md`` and ``CITATION.cff``.

    Parameters
    ----------
    params : the ``release`` params group (:class:`~.params.ReleaseParams` or a mapping):
        ``redistributable_licenses`` (required), ``allow_unknown_license``, ``hub_repo_id``,
        ``year``, ``source_repository``.
    previous : the previous release's manifest (dict, ``manifest.json`` or its folder), for
        the changelog; None for a first release.
    root : the repository root (catalog, ``dataset_card.md``).
    entries : catalog entries (or mappings with model_id and license) that were meant for
        the release; those the policy excluded before extraction are named in the card too.
    prune : remove the shards and rows of excluded models from the folder. The DVC stage
        passes False: there the policy acts in ``catalog/index.yaml`` (excluded models are
        never extracted), and finding one in the tables means the index is stale.
    hub_limits : the layout limits the folder (with the files this writes) must keep; beyond
        them ReleaseError before anything is written (tests pass small limits).

    Returns the manifest written.
    """
    release_dir = Path(release_dir)
    if not SEMVER.match(str(version)):
        raise ReleaseError(f"release.version: {version!r} is not a semantic version like 1.2.0")
    params = ReleaseParams.of(params)
    policy = LicensePolicy.from_params(params)
    models = reader.read_table(release_dir, "models", missing_ok=True, verify=False)
    if models is None:
        raise ReleaseError(f"{release_dir}: no models table; run the gather stage first")
    candidates = models.to_pylist()
    if entries is not None:
        candidates += [e if isinstance(e, Mapping) else e.model_dump() for e in entries]
    excluded = excluded_models(candidates, policy)
    if not prune:
        present = sorted(set(excluded) & {r["model_id"] for r in models.to_pylist()})
        if present:
            raise ReleaseError(f"{release_dir}: the licence policy leaves out {present}, but they were built; "
                               "run `cnn-filter-db catalog index` (the index applies the policy), then `dvc repro`")
    else:
        leave_out(release_dir, excluded)

    require_within(release_dir, hub_limits, planned=(*CARD_FILES, MANIFEST))
    schemas = table_schemas(release_dir)
    rows = reader.read_table(release_dir, "models", verify=False).to_pylist()
    manifest = build_manifest(release_dir, str(version), catalog_sha256(root), code_versions())
    manifest["license_policy"] = {"redistributable_licenses": sorted(policy.redistributable),
                                  "allow_unknown_license": policy.allow_unknown}
    manifest["excluded_models"] = excluded
    # what the changelog of the next version compares
    manifest["models"] = {r["model_id"]: {"weights_sha256": r["weights_sha256"], "catalog_sha256": r["catalog_sha256"],
                                          "n_filters": int(r["n_filters"]), "license": r["license"]}
                          for r in sorted(rows, key=lambda r: r["model_id"])}
    prev = load_manifest(previous)
    repo_id = params.hub_repo_id
    template = (Path(root) / config.CARD_TEMPLATE).read_text()
    readme = card.render(template, manifest=manifest, models=rows, schemas=schemas, excluded=excluded,
                         previous=prev, repo_id=repo_id, year=params.year,
                         source_repository=params.source_repository)
    atomic_write_text(release_dir / "README.md", readme)
    repo_id = repo_id or card.DEFAULT_REPO_ID
    atomic_write_text(release_dir / "CITATION.cff", citation.citation_cff(
        str(version), manifest["fingerprint"], repo_id, citation.spdx_licenses(rows),
        f"https://huggingface.co/datasets/{repo_id}/blob/v{version}/README.md#{card.LICENCES_ANCHOR}"))
    atomic_write_text(release_dir / "croissant.json",
                      json.dumps(croissant.croissant(manifest, rows, schemas, repo_id), indent=2) + "\n")
    manifest["files"] = {name: sha256_file(release_dir / name) for name in CARD_FILES}
    write_manifest(release_dir, manifest)
    return manifest
