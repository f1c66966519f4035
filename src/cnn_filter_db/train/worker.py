"""One training run in a process of its own: ``python -m cnn_filter_db.train.worker REQUEST.json``.

The process is started with :func:`.determinism.environment`, so torch and MKL start on
the fixed CPU code paths (they read those settings only when they load). The request
names the run; the worker stores the checkpoint in the content-addressed cache, writes the
run's record to the request's ``result_path``, or ``{"error": ...}`` when the run cannot be
done (the parent raises it as a one-line error).
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import save

from ..analysis.entropy import random_entropy, variance_entropy
from ..atomic import atomic_write_text
from ..errors import CnnFilterDbError
from ..cache import Cache
from . import architectures, determinism, loop
from .data import load_splits
from .recipe import Recipe


def filter_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict:
    """How far training moved the 3x3 convolutions from their initialisation.

    ``random_like_layers``: layers whose variance entropy H is at least TH(n) (margin 0,
    SPEC.md section 5), i.e. as diverse as random filters; ``median_relative_change``: the
    median over layers of ||W - W0|| / ||W0||.
    """
    flagged, changes, n_layers = 0, [], 0
    for name, w in after.items():
        if w.ndim == 4 and tuple(w.shape[2:]) == (3, 3):
            flat = w.reshape(-1, 9).double().numpy()
            flagged += variance_entropy(flat) >= random_entropy(len(flat))
            w0 = before[name]
            changes.append(float((w - w0).norm() / w0.norm()))
            n_layers += 1
    return {"layers_3x3": n_layers, "random_like_layers": int(flagged),
            "median_relative_change": float(np.median(changes)) if changes else None}


def run(request: dict) -> dict:
    """Train the request's recipe; store the checkpoint; return the run's record."""
    determinism.check_process()
    recipe = Recipe.model_validate(request["recipe"])
    device, num_threads = torch.device(request["device"]), request["num_threads"]
    splits = load_splits(recipe, request.get("hub_ids"))
    start, cpu_start = time.perf_counter(), time.process_time()
    with determinism.deterministic(recipe.seed, num_threads):
        model = architectures.build(recipe.architecture, splits.in_channels, splits.num_classes)
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        fitted = loop.fit(model, splits.train, splits.val, recipe, splits.augmentation, device,
                          request["progress"], desc=request["model_id"])
        model.load_state_dict(fitted.state)
        test_accuracy = loop.evaluate(model, splits.test, device)  # the test split's only use
        settings = determinism.settings(num_threads)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    # one metadata key only: safetensors writes several in a random (hash map) order, and
    # the checkpoint must be byte-identical from run to run; the record holds the rest
    data = save(fitted.state, metadata={"format": "pt"})
    sha = hashlib.sha256(data).hexdigest()
    Cache(Path(request["cache_root"])).put_stream(io.BytesIO(data), sha, f"{request['model_id']} checkpoint")
    versions = {"torch": torch.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
                **splits.versions}
    return {
        "model_id": request["model_id"], "profile": request["profile"], "recipe": recipe.model_dump(mode="json"),
        "weights_sha256": sha, "test_accuracy": test_accuracy, "val_accuracy": fitted.val_accuracy,
        "best_epoch": fitted.best_epoch, "training_steps": fitted.history[fitted.best_epoch - 1]["step"],
        "total_steps": fitted.steps, **filter_change(initial, fitted.state),
        "num_classes": splits.num_classes, "in_channels": splits.in_channels, "data": splits.source,
        "sizes": {"train": len(splits.train[1]), "validation": len(splits.val[1]), "test": len(splits.test[1])},
        "device": device.type, "platform": platform.machine(), "num_threads": num_threads,
        "cpu_settings": settings, "versions": versions,
        "history": fitted.history,
        # clock times: here only (the cache), never in a DVC-tracked file
        "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in fitted.epoch_seconds],
    }


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    out = Path(request["result_path"])
    try:
        record = run(request)
    except CnnFilterDbError as exc:
        atomic_write_text(out, json.dumps({"error": str(exc)}) + "\n")
        return 1
    atomic_write_text(out, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
