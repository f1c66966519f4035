"""The ``train`` source: models the pipeline trains itself from a catalog recipe.

:func:`load` trains an entry's recipe under a profile (or reuses the checkpoint of an
identical earlier run from the cache), saves the best epoch as safetensors, and returns
its convolutions with the test and validation accuracies. Modules: ``recipe`` (what a run
is), ``architectures`` (the networks), ``data`` (the splits), ``loop`` (the training).

Training is expensive, so runs are cached: ``<cache>/train/<run key>.json`` records the
outcome of a run and names its checkpoint, which lives in the content-addressed store
like every downloaded file. The run key hashes everything that changes the bytes: the
resolved recipe, the profile, the torch and numpy versions, the data's source and package
versions, the device type, the thread count and :data:`CODE_REVISION`.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from .. import config
from ..cache import Cache
from ..errors import SourceError
from ..formats.torch_module import module_convs
from ..loaded import Loaded
from .recipe import PROFILES, Recipe, parse_recipe

__all__ = ["CODE_REVISION", "PROFILES", "Recipe", "load", "load_recipe", "parse_recipe", "run_key"]

#: Bump when a change to this package changes what a recipe trains to.
CODE_REVISION = 1


def run_key(recipe: Recipe, profile: str, device: str, num_threads: int, hub_ids: dict | None = None) -> str:
    """sha256 naming one training run (see the module docstring)."""
    import numpy as np
    import torch

    from .data import provenance

    source, versions = provenance(recipe, hub_ids)
    facts = {"recipe_sha256": recipe.key(), "profile": profile, "torch": torch.__version__,
             "numpy": np.__version__, "data": source, "data_versions": versions, "device": device,
             "num_threads": num_threads, "code_revision": CODE_REVISION}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def load(entry, cache_dir: Path | None = None, profile: str = config.TRAIN_PROFILE,
         reports_dir: Path | None = None, *, hub_ids: dict[str, str] | None = None,
         num_threads: int = config.TRAIN_NUM_THREADS, device: str = "auto", progress: bool = True):
    """Train (or reuse) the model of a ``train`` entry and read its convolutions.

    Parameters
    ----------
    entry : catalog.Entry
        An entry whose ``source.kind`` is ``train``.
    cache_dir : Path, optional
        The content-addressed cache (default: ``config.default_cache_dir()``).
    profile : {"quick", "paper"}
        Which profile of the recipe to run.
    reports_dir : Path, optional
        Where to write ``<model_id>.png`` (training curve) and ``<model_id>.json`` (metrics).
    hub_ids : dict, optional
        Dataset name -> Hub id, for the datasets that come from the Hub.
    num_threads, device, progress
        CPU threads (fixed for reproducibility), ``auto``/``cpu``/``cuda``, progress bars.

    Returns
    -------
    Loaded
        With ``accuracy`` on the held-out test split and ``validation_accuracy`` of the
        best epoch; ``weights_sha256`` is the sha256 of the safetensors checkpoint.
    """
    if entry.source.kind != "train":
        raise SourceError(f"{entry.model_id}: source kind {entry.source.kind!r} is not 'train'")
    return load_recipe(entry.model_id, entry.source.recipe, cache_dir, profile, reports_dir, hub_ids=hub_ids,
                       num_threads=num_threads, device=device, progress=progress)


def load_recipe(model_id: str, recipe: Recipe | dict, cache_dir: Path | None = None,
                profile: str = config.TRAIN_PROFILE, reports_dir: Path | None = None, *,
                hub_ids: dict[str, str] | None = None, num_threads: int = config.TRAIN_NUM_THREADS,
                device: str = "auto", progress: bool = True) -> Loaded:
    """:func:`load` for a model id and its recipe (the ``train`` source kind calls this)."""
    from safetensors.torch import load as load_safetensors

    from . import architectures, loop

    if not isinstance(recipe, Recipe):
        recipe = parse_recipe(recipe, where=f"{model_id}: source.recipe")
    recipe = recipe.resolve(profile)
    dev = loop.pick_device(device)
    cache = Cache(Path(cache_dir) if cache_dir else config.default_cache_dir())
    key = run_key(recipe, profile, dev.type, num_threads, hub_ids)
    record_path = cache.root / "train" / f"{key}.json"
    record = _read_record(record_path)
    weights = cache.get(record["weights_sha256"]) if record else None
    if weights is None:
        record, weights = _train(model_id, recipe, profile, cache, record_path, dev, num_threads,
                                 hub_ids, progress)
    num_classes, in_channels = record["num_classes"], record["in_channels"]
    model = architectures.build(recipe.architecture, in_channels, num_classes)
    model.load_state_dict(load_safetensors(weights.read_bytes()), strict=True)
    convs = module_convs(model)
    convs.framework_versions = dict(record["versions"])
    if reports_dir is not None:
        write_reports(Path(reports_dir), model_id, record)
    return Loaded(convs, record["weights_sha256"], f"train://{model_id}?profile={profile}", weights,
                  accuracy=record["test_accuracy"], validation_accuracy=record["val_accuracy"],
                  training_steps=record.get("training_steps"))


def _read_record(path: Path) -> dict | None:
    """A cached run's record, or None when absent or unreadable (then the run is redone)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "weights_sha256" in record else None


def _train(model_id, recipe, profile, cache, record_path, device, num_threads, hub_ids, progress):
    """Run the recipe; store the checkpoint and the run's record in the cache."""
    import numpy as np
    import safetensors
    import torch
    from safetensors.torch import save

    from ..atomic import atomic_write_text
    from . import architectures, loop
    from .data import load_splits

    splits = load_splits(recipe, hub_ids)
    with loop.deterministic(recipe.seed, num_threads):
        model = architectures.build(recipe.architecture, splits.in_channels, splits.num_classes)
        fitted = loop.fit(model, splits.train, splits.val, recipe, splits.augmentation, device, progress,
                          desc=model_id)
        model.load_state_dict(fitted.state)
        test_accuracy = loop.evaluate(model, splits.test, device)  # the test split's only use
    # one metadata key only: safetensors writes several in a random (hash map) order, and
    # the checkpoint must be byte-identical from run to run; the cache record holds the rest
    data = save(fitted.state, metadata={"format": "pt"})
    sha = hashlib.sha256(data).hexdigest()
    weights = cache.put_stream(io.BytesIO(data), sha, f"{model_id} checkpoint")
    versions = {"torch": torch.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
                **splits.versions}
    record = {
        "model_id": model_id, "profile": profile, "recipe": recipe.model_dump(mode="json"),
        "weights_sha256": sha, "test_accuracy": test_accuracy, "val_accuracy": fitted.val_accuracy,
        "best_epoch": fitted.best_epoch, "train_seconds": round(fitted.seconds, 2),
        "train_cpu_seconds": round(fitted.cpu_seconds, 2),
        "num_classes": splits.num_classes, "in_channels": splits.in_channels, "data": splits.source,
        "sizes": {"train": len(splits.train[1]), "validation": len(splits.val[1]), "test": len(splits.test[1])},
        "device": device.type, "num_threads": num_threads, "versions": versions, "history": fitted.history,
    }
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record, weights


def write_reports(reports_dir: Path, model_id: str, record: dict) -> None:
    """``<model_id>.json`` (the run's metrics and curve) and ``<model_id>.png`` (the curve)."""
    from ..atomic import atomic_write_text
    from .loop import plot_curve

    metrics = {k: record[k] for k in ("profile", "test_accuracy", "val_accuracy", "best_epoch", "train_seconds", "train_cpu_seconds",
                                      "sizes", "device", "weights_sha256", "history")}
    atomic_write_text(reports_dir / f"{model_id}.json", json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    plot_curve(record["history"], reports_dir / f"{model_id}.png",
               f"{model_id}: {record['recipe']['architecture']} on {record['recipe']['dataset']} [{record['profile']}]",
               record["best_epoch"], record["test_accuracy"])
