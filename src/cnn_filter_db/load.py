"""Read one layer's filters back as a kernel array, from a local release folder or from a
Hub dataset repository at a revision (only that model's shards are downloaded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from . import config
from .errors import CnnFilterDbError


HUB_PREFIXES = ("hf://datasets/", "hf://")
HUB_FORM = "hf://ORG/NAME (or hf://datasets/ORG/NAME)"


def _repo_id(source) -> str | None:
    """The Hub repo id ``source`` names (``hf://ORG/NAME``, ``hf://datasets/ORG/NAME``), or None
    for a local folder. Only the ``hf://`` form goes to the Hub: any other string or path is
    local, so a mistyped folder is an error saying so, never a network request."""
    if isinstance(source, Path):
        return None
    if not isinstance(source, str):
        raise TypeError(f"source: expected a release folder (str or Path) or {HUB_FORM}, got {type(source).__name__}")
    for prefix in HUB_PREFIXES:
        if source.startswith(prefix):
            repo_id = source[len(prefix):].strip("/")
            if repo_id.count("/") != 1 or not all(repo_id.split("/")):
                raise ValueError(f"source {source!r}: expected {HUB_FORM}")
            return repo_id
    return None


def _hub_snapshot(repo_id: str, model_id: str, revision: str | None, token, cache_dir) -> Path:
    from huggingface_hub import snapshot_download

    # the layers table gives the layer's shape; the filters only of this model
    folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir,
                               allow_patterns=[f"filters/{model_id}/*.parquet", config.RELEASE_CONFIGS["layers"]])
    return Path(folder)


def load_layer(model_id: str, layer_id: int, source: str | Path, revision: str | None = None,
               *, token: str | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """One layer's 3x3 kernels as a float32 array of shape (out, in_per_group, 3, 3).

    Parameters
    ----------
    source : a release folder (``dist/cnn-filter-db`` in a built checkout), or a Hub dataset
        repo as ``hf://ORG/NAME`` (also ``hf://datasets/ORG/NAME``); only that form goes to the Hub.
    revision : for a Hub repo, a tag (``v1.2.0``), branch or commit; must be None for a folder.

    Examples
    --------
    >>> w = load_layer("efficientnet-lite0", 0, "dist/cnn-filter-db")  # doctest: +SKIP
    >>> w.shape                                   # doctest: +SKIP
    (32, 3, 3, 3)
    """
    repo_id = _repo_id(source)
    if repo_id is not None:
        path = _hub_snapshot(repo_id, model_id, revision, token, cache_dir)
    else:
        path = Path(source)
        if not path.is_dir():
            raise FileNotFoundError(f"{source}: no such release folder (a Hub dataset is {HUB_FORM})")
        if revision is not None:
            raise ValueError(f"{source}: a local release folder has no revisions (got revision={revision!r}; "
                             f"a Hub dataset is {HUB_FORM})")

    layers = ds.dataset(sorted(path.glob(config.RELEASE_CONFIGS["layers"])), format="parquet")
    info = layers.to_table(columns=["out_channels", "in_channels_per_group"],
                           filter=(pc.field("model_id") == model_id) & (pc.field("layer_id") == int(layer_id)))
    if info.num_rows != 1:
        n = layers.count_rows(filter=pc.field("model_id") == model_id)
        where = f"{source}" + (f"@{revision}" if revision else "")
        if n == 0:
            raise CnnFilterDbError(f"{where}: no model {model_id!r} in the layers table")
        raise CnnFilterDbError(f"{where}: model {model_id!r} has layers 0..{n - 1}, not {layer_id}")
    out_c = info["out_channels"][0].as_py()
    in_c = info["in_channels_per_group"][0].as_py()

    files = sorted((path / "filters" / model_id).glob("*.parquet"))
    if not files:
        raise CnnFilterDbError(f"{path / 'filters' / model_id}: no filter shards for {model_id!r}")
    rows = ds.dataset(files, format="parquet").to_table(
        columns=["out_channel", "in_channel", "weights"], filter=pc.field("layer_id") == int(layer_id))
    if rows.num_rows != out_c * in_c:
        raise CnnFilterDbError(f"{model_id} layer {layer_id}: {rows.num_rows} filter rows, expected "
                               f"{out_c} x {in_c} = {out_c * in_c}")
    oc = rows["out_channel"].to_numpy()
    ic = rows["in_channel"].to_numpy()
    weights = rows["weights"].combine_chunks().flatten().to_numpy().reshape(-1, 3, 3)
    out = np.zeros((out_c, in_c, 3, 3), dtype=np.float32)
    seen = np.zeros((out_c, in_c), dtype=bool)
    out[oc, ic] = weights
    seen[oc, ic] = True
    if not seen.all():  # the right count but a duplicate index: the shard is corrupt
        raise CnnFilterDbError(f"{model_id} layer {layer_id}: duplicate (out_channel, in_channel) rows in {files[0].parent}")
    return out
