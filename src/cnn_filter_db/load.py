"""Read one layer's filters back as a kernel array, from a local release folder or from a
Hub dataset repository at a revision (only that model's shards are downloaded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from . import config
from .dataset import layout, reader
from .errors import CnnFilterDbError


def _repo_id(source) -> str | None:
    """The Hub repo id ``source`` names, or None for a local folder."""
    if isinstance(source, Path) or Path(source).is_dir() or str(source) == str(config.RELEASE_DIR):
        return None
    text = str(source)
    if text.startswith("hf://datasets/"):
        return text[len("hf://datasets/"):].strip("/")
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text
    return None


def _hub_snapshot(repo_id: str, model_id: str, revision: str | None, token, cache_dir) -> Path:
    from huggingface_hub import snapshot_download

    # the layers table gives the layer's shape; the filters only of this model
    folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir,
                               allow_patterns=[f"filters/{model_id}/*.parquet", config.RELEASE_CONFIGS["layers"]])
    return Path(folder)


def load_layer(model_id: str, layer_id: int, source: str | Path = config.RELEASE_DIR, revision: str | None = None,
               *, token: str | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """One layer's 3x3 kernels as a float32 array of shape (out, in_per_group, 3, 3).

    Parameters
    ----------
    source : a release folder (``dist/cnn-filter-db`` by default), or a Hub dataset repo
        as ``hf://datasets/ORG/NAME`` or ``ORG/NAME`` (when no such folder exists).
    revision : for a Hub repo, a tag (``v1.2.0``), branch or commit; must be None for a folder.

    Examples
    --------
    >>> w = load_layer("efficientnet-lite0", 0)  # doctest: +SKIP
    >>> w.shape                                   # doctest: +SKIP
    (32, 3, 3, 3)
    """
    repo_id = _repo_id(source)
    if repo_id is not None:
        path = _hub_snapshot(repo_id, model_id, revision, token, cache_dir)
    else:
        path = Path(source)
        if not path.is_dir():
            raise FileNotFoundError(f"{source}: no such release folder (a Hub repo is ORG/NAME or hf://datasets/ORG/NAME)")
        if revision is not None:
            raise ValueError(f"{source}: a local release folder has no revisions (got revision={revision!r})")

    layout.check_model_id(model_id)
    model_layers = reader.read_table(path, "layers", columns=["layer_id", "out_channels", "in_channels_per_group"],
                                     filter=pc.field("model_id") == model_id)
    info = model_layers.filter(pc.field("layer_id") == int(layer_id))
    if info.num_rows != 1:
        n = model_layers.num_rows
        where = f"{source}" + (f"@{revision}" if revision else "")
        if n == 0:
            raise CnnFilterDbError(f"{where}: no model {model_id!r} in the layers table")
        raise CnnFilterDbError(f"{where}: model {model_id!r} has layers 0..{n - 1}, not {layer_id}")
    out_c = info["out_channels"][0].as_py()
    in_c = info["in_channels_per_group"][0].as_py()

    rows = reader.read_filters(path, model_id, ["out_channel", "in_channel", "weights"], layer_id)
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
        raise CnnFilterDbError(f"{model_id} layer {layer_id}: duplicate (out_channel, in_channel) rows in "
                               f"{layout.model_dir(path, model_id)}")
    return out
