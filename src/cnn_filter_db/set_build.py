"""One DVC stage a catalog set (``extract-set@<set>``): extract every member that is new or
changed, writing the same per-model outputs as the per-model stages.

DVC cannot select ``foreach`` items by a parameter (no nested interpolation, no lists in
``outs``), and at 1,000+ models one stage a model costs seconds of DVC bookkeeping each.
So the sets that params.yaml ``catalog.sets`` selects get one stage each; inside it a
model is rebuilt only when its stamp (entry file sha256, extract params, weight pin)
changed. The stage's own output is the set summary ``build/sets/<set>.json``; the filter
shards and metadata rows of its members are written where the per-model stages write them
(``dist/cnn-filter-db/filters/<id>/``, ``build/meta/<id>/``). The ``default`` set is built
by the per-model stages; its set stage records its members only.

A member that fails does not stop the others; the stage fails at the end naming each.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import config
from .atomic import atomic_write_text
from .catalog import entry_path, index_models, load_entry, set_members
from .catalog_lock import load_lock
from .errors import CnnFilterDbError
from .extract import extract_model
from .dataset import layout, writer
from .hashing import sha256_file
from .params import ExtractParams

SETS_DIR = config.BUILD_DIR / "sets"


def stamp(model_id: str, root: Path, params: ExtractParams, pin: dict | None) -> str:
    """What a member's outputs depend on: its entry file, the shard layout, its weight pin
    (``pin``: its block of catalog/lock.yaml, None when unpinned)."""
    parts = [sha256_file(entry_path(model_id, root)),
             json.dumps({k: getattr(params, k) for k in ("max_rows_per_shard", "row_group_rows")}, sort_keys=True),
             json.dumps(pin, sort_keys=True)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_set(name: str, root: Path = Path("."), release_dir: Path | None = None, meta_dir: Path | None = None,
              params: ExtractParams | None = None, progress=None, sets_dir: Path | None = None) -> dict:
    """Extract the set's new or changed members; write and return the set summary
    (``<sets_dir>/<name>.json``, by default ``ROOT/build/sets``).

    Raises one CnnFilterDbError naming every member that failed (after trying them all).
    """
    root = Path(root)
    release_dir = Path(release_dir or root / config.RELEASE_DIR)
    meta_dir = Path(meta_dir or root / config.META_DIR)
    opts = ExtractParams.of(params)
    out = Path(sets_dir or root / SETS_DIR) / f"{name}.json"
    if name == config.DEFAULT_SET:
        ids = [m for m in index_models(root) if load_entry(m, root).set == config.DEFAULT_SET]
        summary = {"set": name, "built_by": "the per-model extract stages", "models": {m: {} for m in ids}}
        atomic_write_text(out, json.dumps(summary, indent=1, sort_keys=True) + "\n")
        return summary
    previous = json.loads(out.read_text()).get("models", {}) if out.exists() else {}
    models, failed = {}, {}
    lock = load_lock(root)  # read once; a first build adds its own pin below
    for model_id in set_members(name, root):
        want = stamp(model_id, root, opts, lock.get(model_id))
        old = previous.get(model_id, {})
        built = (meta_dir / model_id / writer.META_MODEL).exists() and layout.model_dir(release_dir, model_id).is_dir()
        if old.get("stamp") == want and built:
            models[model_id] = old
            continue
        try:
            entry = load_entry(model_id, root)
            row = extract_model(entry, release_dir, meta_dir, root=root, progress=False, params=opts)
        except CnnFilterDbError as exc:
            failed[model_id] = str(exc).splitlines()[0]
            if progress:
                progress(model_id, "failed")
            continue
        # the first build may just have pinned the weights: stamp with the pin as now recorded
        if model_id not in lock:
            pin = load_lock(root).get(model_id)
            if pin is not None:
                lock[model_id] = pin
        models[model_id] = {"stamp": stamp(model_id, root, opts, lock.get(model_id)), "n_layers": row["n_layers"],
                            "n_filters": row["n_filters"], "weights_sha256": row["weights_sha256"]}
        if progress:
            progress(model_id, "built")
    summary = {"set": name, "models": models, "failed": failed,
               "n_filters": sum(m.get("n_filters", 0) for m in models.values())}  # no clock time: a DVC output
    atomic_write_text(out, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if failed:
        raise CnnFilterDbError(f"set {name}: {len(failed)} of {len(failed) + len(models)} models failed:\n"
                               + "\n".join(f"{m}: {why}" for m, why in sorted(failed.items())))
    return summary
