"""The ``train`` source: models the pipeline trains itself from a catalog recipe.

:func:`load` trains an entry's recipe under a profile (or reuses the checkpoint of an
identical earlier run from the cache), saves the best epoch as safetensors, and returns
its convolutions with the test and validation accuracies. Modules: ``recipe`` (what a run
is), ``architectures`` (the networks), ``data`` (the splits), ``loop`` (the training).

Training runs in a process of its own (``worker``) started with the fixed CPU settings of
``determinism``, so a CPU run gives the same checkpoint bytes on any x86-64 CPU for the
same package versions. An entry may pin them: ``source.checkpoint.<profile>`` holds the
expected sha256 and the versions it was made with; every build checks it (:func:`check_pin`).

Training is expensive, so runs are cached: ``<cache>/train/<run key>.json`` records the
outcome of a run and names its checkpoint, which lives in the content-addressed store
like every downloaded file. The run key hashes everything that changes the bytes: the
resolved recipe, the profile, the torch and numpy versions, the data's source and package
versions, the device type, the thread count and :data:`CODE_REVISION`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import config
from ..cache import Cache
from ..errors import SourceError
from ..formats.torch_module import module_convs
from ..loaded import Loaded
from ..params import TrainParams
from .recipe import PROFILES, Recipe, parse_recipe

__all__ = ["CODE_REVISION", "PROFILES", "Recipe", "check_pin", "load", "load_recipe", "parse_recipe", "run_key"]

#: Bump when a change to this package changes what a recipe trains to.
CODE_REVISION = 2  # 2: the fixed CPU code paths of ``determinism``; history without clock times
#: The keys of a run's record published as its DVC metrics (``reports/training/<id>.json``):
#: nothing that changes from run to run (no clock times).
METRIC_KEYS = ("profile", "test_accuracy", "val_accuracy", "best_epoch", "training_steps", "total_steps",
               "layers_3x3", "random_like_layers", "median_relative_change", "sizes", "device",
               "platform", "weights_sha256", "versions", "history")


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


def load(entry, cache_dir: Path | None = None, profile: str = TrainParams.profile,
         reports_dir: Path | None = None, *, hub_ids: dict[str, str] | None = None,
         num_threads: int = TrainParams.num_threads, device: str = TrainParams.device, progress: bool = True):
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
        CPU threads (fixed for reproducibility), ``auto``/``cpu``/``cuda`` (defaults: the
        ``train`` params, :class:`~cnn_filter_db.params.TrainParams`), progress bars.

    Returns
    -------
    Loaded
        With ``accuracy`` on the held-out test split and ``validation_accuracy`` of the
        best epoch; ``weights_sha256`` is the sha256 of the safetensors checkpoint;
        ``training_steps`` the optimizer steps behind it.

    Raises
    ------
    SourceError
        When the run fails, or its checkpoint differs from the entry's pin (:func:`check_pin`).
    """
    if entry.source.kind != "train":
        raise SourceError(f"{entry.model_id}: source kind {entry.source.kind!r} is not 'train'")
    return load_recipe(entry.model_id, entry.source.recipe, cache_dir, profile, reports_dir, hub_ids=hub_ids,
                       num_threads=num_threads, device=device, progress=progress, pins=entry.source.checkpoint)


def load_recipe(model_id: str, recipe, cache_dir: Path | None = None, profile: str = TrainParams.profile,
                reports_dir: Path | None = None, *, hub_ids: dict[str, str] | None = None,
                num_threads: int = TrainParams.num_threads, device: str = TrainParams.device, progress: bool = True,
                pins: dict | None = None) -> Loaded:
    """:func:`load` for a model id and its recipe (a mapping or a :class:`Recipe`); ``pins``:
    profile -> :class:`~.recipe.CheckpointPin` (the entry's ``source.checkpoint``)."""
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
        record = _train(model_id, recipe, profile, cache, record_path, dev, num_threads, hub_ids, progress)
        weights = cache.get(record["weights_sha256"])
        if progress:
            print(f"{model_id}: trained {record['total_steps']} steps in {record['train_seconds']:.0f} s "
                  f"(CPU {record['train_cpu_seconds']:.0f} s)", file=sys.stderr)
    check_pin(model_id, profile, record, (pins or {}).get(profile))
    num_classes, in_channels = record["num_classes"], record["in_channels"]
    model = architectures.build(recipe.architecture, in_channels, num_classes)
    model.load_state_dict(load_safetensors(weights.read_bytes()), strict=True)
    convs = module_convs(model)
    convs.framework_versions = dict(record["versions"])
    if reports_dir is not None:
        write_reports(Path(reports_dir), model_id, record)
    return Loaded(convs, record["weights_sha256"], f"train://{model_id}?profile={profile}"
                  f"&optimizer={recipe.optimizer.name}", weights, accuracy=record["test_accuracy"],
                  validation_accuracy=record["val_accuracy"], training_steps=record["training_steps"],
                  training_dataset=recipe.dataset)


def check_pin(model_id: str, profile: str, record: dict, pin) -> None:
    """A run's checkpoint against its pin (the entry's ``source.checkpoint.<profile>``), if any.

    A CPU run on the pin's platform (machine architecture) must match it; a GPU run, or one
    on another platform (other BLAS and kernels), is not checked. A mismatch is one error
    naming the entry, both sha256s and the package versions of the pin and of this build.
    """
    if pin is None or record["device"] != "cpu" or record.get("platform", platform.machine()) != pin.platform \
            or record["weights_sha256"] == pin.sha256:
        return
    built = dict(record["versions"], timm=_version("timm"))
    differ = {k: (v, built.get(k)) for k, v in pin.versions.items() if built.get(k) != v}
    why = ("package versions differ: " + ", ".join(f"{k} {a} pinned, {b} here" for k, (a, b) in differ.items())
           if differ else "same package versions, so a CPU code path is not fixed (a bug: please report it)")
    threads = "" if record["num_threads"] == 1 else f"; trained on {record['num_threads']} threads (pins are for 1)"
    raise SourceError(
        f"{model_id}: the {profile!r} checkpoint differs from its pin (source.checkpoint.{profile} in "
        f"{config.MODELS_DIR / (model_id + '.yaml')}): expected sha256 {pin.sha256}, got "
        f"{record['weights_sha256']}; {why}{threads}; this build: "
        + ", ".join(f"{k} {v}" for k, v in sorted(built.items())))


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _read_record(path: Path) -> dict | None:
    """A cached run's record, or None when absent or unreadable (then the run is redone)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "weights_sha256" in record else None


def _train(model_id, recipe, profile, cache, record_path, device, num_threads, hub_ids, progress) -> dict:
    """Run the recipe in a fresh process (``worker``) with the fixed CPU settings; cache its record."""
    from ..atomic import atomic_write_text
    from . import determinism

    package_root = Path(__file__).resolve().parents[2]  # the child imports this very copy of the package
    env = determinism.environment()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_root), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="cnn-filter-db-train-") as tmp:
        request = {"model_id": model_id, "profile": profile, "recipe": recipe.model_dump(mode="json"),
                   "cache_root": str(cache.root), "device": device.type, "num_threads": num_threads,
                   "hub_ids": hub_ids, "progress": progress, "result_path": str(Path(tmp) / "result.json")}
        (Path(tmp) / "request.json").write_text(json.dumps(request))
        proc = subprocess.run([sys.executable, "-m", "cnn_filter_db.train.worker", str(Path(tmp) / "request.json")],
                              env=env, check=False)
        result = _read_json(Path(tmp) / "result.json")
    if result is None or "error" in result or proc.returncode != 0:
        detail = result["error"] if result and "error" in result else \
            f"the training process was killed by signal {-proc.returncode}" if proc.returncode < 0 else \
            f"the training process exited with code {proc.returncode} (its traceback is above)"
        raise SourceError(f"{model_id}: {detail}")
    atomic_write_text(record_path, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_reports(reports_dir: Path, model_id: str, record: dict) -> None:
    """``<model_id>.json`` (the run's metrics and curve, a DVC metric and plot: nothing that
    changes from run to run) and ``<model_id>.png`` (the curve)."""
    from ..atomic import atomic_write_text
    from .loop import plot_curve

    metrics = {k: record.get(k) for k in METRIC_KEYS}
    # no clock times: the file is a DVC metric, and a rebuild must not change it (the cache
    # record keeps them)
    metrics["history"] = [{k: v for k, v in epoch.items() if not k.endswith("seconds")}
                          for epoch in metrics.get("history") or []]
    atomic_write_text(reports_dir / f"{model_id}.json", json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    plot_curve(record["history"], reports_dir / f"{model_id}.png",
               f"{model_id}: {record['recipe']['architecture']} on {record['recipe']['dataset']} [{record['profile']}]",
               record["best_epoch"], record["test_accuracy"])
