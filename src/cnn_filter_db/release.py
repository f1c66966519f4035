"""Finish a release folder: apply the licence policy, write ``manifest.json``, the card
(``README.md``) and ``CITATION.cff``; and check a folder against its manifest.

The tables themselves are written by the extract, gather and analysis stages; this module
only removes the rows and shards of models the licence policy leaves out.
"""
from __future__ import annotations

import json
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__, card, config, shards
from .atomic import atomic_write_text
from .catalog import catalog_sha256
from .errors import CnnFilterDbError
from .license_policy import LicensePolicy, excluded_models

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
#: Packages whose versions a manifest records (the code's own version comes first).
MAIN_DEPENDENCIES = ("numpy", "pyarrow", "pandas", "torch", "timm", "onnx", "safetensors",
                     "datasets", "huggingface_hub")
#: Files of a release besides the Parquet shards, recorded in the manifest by sha256.
CARD_FILES = ("README.md", "CITATION.cff")
MANIFEST = "manifest.json"


class ReleaseError(CnnFilterDbError):
    """A release folder is incomplete or does not match its manifest."""


def code_versions() -> dict[str, str]:
    out = {"cnn-filter-db": __version__}
    for name in MAIN_DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _table_files(release_dir: Path, name: str) -> list[Path]:
    return sorted(Path(release_dir).glob(config.RELEASE_CONFIGS[name]))


def read_table(release_dir: Path, name: str) -> pa.Table | None:
    files = _table_files(release_dir, name)
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files])


def table_schemas(release_dir: Path) -> dict[str, pa.Schema]:
    """config -> schema of each table present; the tables this package defines must
    have exactly the columns and types of :mod:`shards` (the card declares them)."""
    out = {}
    for name in config.RELEASE_CONFIGS:
        files = _table_files(release_dir, name)
        if not files:
            continue
        expected = card.SCHEMAS.get(name)
        for f in files:
            got = pq.read_schema(f)
            if expected is not None and not got.equals(expected, check_metadata=False):
                raise ReleaseError(f"{f}: columns {got.names} / types {[str(t) for t in got.types]} differ from "
                                   f"the {name} schema of shards.py {expected.names} / {[str(t) for t in expected.types]}")
        out[name] = expected if expected is not None else pq.read_schema(files[0]).remove_metadata()
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
        folder = release_dir / "filters" / mid
        if folder.exists():
            present.add(mid)
            # rename first: a crash never leaves a half-deleted shard folder behind
            trash = folder.with_name(f".{mid}.removed")
            shutil.rmtree(trash, ignore_errors=True)
            folder.rename(trash)
            shutil.rmtree(trash)
    for name in config.RELEASE_CONFIGS:
        if name == "filters":
            continue
        table = read_table(release_dir, name)
        if table is None or "model_id" not in table.column_names:
            continue
        drop = pc.is_in(table["model_id"], pa.array(ids, pa.string()))
        if pc.any(drop).as_py():
            present.update(table.filter(drop)["model_id"].to_pylist())
            kept = table.filter(pc.invert(drop))
            shards.write_table_dir(kept, release_dir / Path(config.RELEASE_CONFIGS[name]).parent)
    return sorted(present)


def load_manifest(source: Path | str | Mapping | None) -> dict | None:
    """A manifest from a dict, a ``manifest.json`` path or a release folder."""
    if source is None or isinstance(source, Mapping):
        return dict(source) if source is not None else None
    path = Path(source)
    if path.is_dir():
        path = path / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReleaseError(f"{path}: previous manifest not found") from None
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path}: not valid JSON ({exc})") from None


def build_release(release_dir: Path, version: str, params: Mapping, previous=None, *,
                  root: Path = Path("."), entries: Iterable | None = None, prune: bool = True) -> dict:
    """Finish ``release_dir`` as release ``version``: leave out the models the licence
    policy excludes, then write ``manifest.json``, ``README.md`` and ``CITATION.cff``.

    Parameters
    ----------
    params : the ``release`` params group: ``redistributable_licenses`` (list),
        ``allow_unknown_license`` (bool), optional ``hub_repo_id`` and ``year``.
    previous : the previous release's manifest (dict, ``manifest.json`` or its folder), for
        the changelog; None for a first release.
    root : the repository root (catalog, ``dataset_card.md``).
    entries : catalog entries (or mappings with model_id and license) that were meant for
        the release; those the policy excluded before extraction are named in the card too.
    prune : remove the shards and rows of excluded models from the folder. The DVC stage
        passes False: there the policy acts in ``catalog/index.yaml`` (excluded models are
        never extracted), and finding one in the tables means the index is stale.

    Returns the manifest written.
    """
    release_dir = Path(release_dir)
    if not SEMVER.match(str(version)):
        raise ReleaseError(f"release.version: {version!r} is not a semantic version like 1.2.0")
    policy = LicensePolicy.from_params(params)
    models = read_table(release_dir, "models")
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

    schemas = table_schemas(release_dir)
    rows = read_table(release_dir, "models").to_pylist()
    manifest = shards.build_manifest(release_dir, str(version), catalog_sha256(root), code_versions())
    manifest["license_policy"] = {"redistributable_licenses": sorted(policy.redistributable),
                                  "allow_unknown_license": policy.allow_unknown}
    manifest["excluded_models"] = excluded
    # what the changelog of the next version compares
    manifest["models"] = {r["model_id"]: {"weights_sha256": r["weights_sha256"], "catalog_sha256": r["catalog_sha256"],
                                          "n_filters": int(r["n_filters"]), "license": r["license"]}
                          for r in sorted(rows, key=lambda r: r["model_id"])}
    prev = load_manifest(previous)
    repo_id = params.get("hub_repo_id")
    template = (Path(root) / config.CARD_TEMPLATE).read_text()
    readme = card.render(template, manifest=manifest, models=rows, schemas=schemas, excluded=excluded,
                         previous=prev, repo_id=repo_id, year=params.get("year"),
                         source_repository=params.get("source_repository"))
    atomic_write_text(release_dir / "README.md", readme)
    atomic_write_text(release_dir / "CITATION.cff",
                      card.citation_cff(str(version), manifest["fingerprint"], repo_id or card.DEFAULT_REPO_ID))
    manifest["files"] = {name: shards.sha256_file(release_dir / name) for name in CARD_FILES}
    shards.write_manifest(release_dir, manifest)
    return manifest


def release_files(release_dir: Path) -> list[str]:
    """Every file of a release folder (posix paths relative to it), hidden ones excluded."""
    release_dir = Path(release_dir)
    return sorted(p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(release_dir).parts))


def check_manifest(release_dir: Path) -> list[str]:
    """Problems between a release folder and its manifest (empty when they match):
    every shard and card file listed with the right sha256, nothing unlisted, and the
    fingerprint recomputed from the files."""
    release_dir = Path(release_dir)
    path = release_dir / MANIFEST
    if not path.exists():
        return [f"{path}: missing (run the release stage)"]
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{path}: not valid JSON ({exc})"]
    problems = []
    listed = {s["path"]: s["sha256"] for s in manifest.get("shards", [])}
    listed.update(manifest.get("files", {}))
    on_disk = set(release_files(release_dir)) - {MANIFEST}
    for rel in sorted(on_disk - set(listed)):
        problems.append(f"{release_dir / rel}: not listed in {MANIFEST}")
    for rel, sha in sorted(listed.items()):
        f = release_dir / rel
        if not f.exists():
            problems.append(f"{f}: listed in {MANIFEST} but missing")
        elif shards.sha256_file(f) != sha:
            problems.append(f"{f}: sha256 differs from {MANIFEST}")
    actual = shards.fingerprint(shards.sha256_file(p) for p in shards.list_shards(release_dir))
    if actual != manifest.get("fingerprint"):
        problems.append(f"{path}: fingerprint {manifest.get('fingerprint')} does not match the shards ({actual})")
    for key in ("version", "fingerprint", "shards"):
        if key not in manifest:
            problems.append(f"{path}: field {key!r} is missing")
    return problems
