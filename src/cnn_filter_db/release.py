"""The release stage: the manifest (and the dataset card) of a release folder."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from . import __version__, shards
from .catalog import catalog_sha256

#: The packages whose versions a manifest records (the code's own first).
MAIN_DEPENDENCIES = ("pyarrow", "numpy", "torch", "timm", "onnx", "safetensors", "datasets",
                     "huggingface_hub", "great_expectations", "dvc")


def dependency_versions() -> dict[str, str]:
    versions = {"cnn-filter-db": __version__}
    for name in MAIN_DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def build_release(release_dir: Path, version: str, root: Path = Path(".")) -> dict:
    manifest = shards.build_manifest(release_dir, version, catalog_sha256(root), dependency_versions())
    shards.write_manifest(release_dir, manifest)
    return manifest
