"""Are trained checkpoints the same on every CPU, and what does it cost?

Trains one recipe (a catalog entry's, or the tests' tiny one) several times, each in a
fresh process that starts torch on other ATen kernels (``ATEN_CPU_CAPABILITY`` default,
avx2, avx512: what CPUs of those generations run), under two settings:

- ``free``: how training ran before ``cnn_filter_db.train.determinism`` (one thread,
  deterministic algorithms, but oneDNN, NNPACK, ATen's and MKL's CPU dispatch left free);
- ``fixed``: ``determinism.ENV`` in the environment and its ``deterministic`` context.

Prints each run's checkpoint sha256 and CPU seconds (one thread: the wall time of a quiet
machine), then whether each setting gave one sha256 and the fixed/free time ratio.

    python benchmarks/bench_train.py                       # the tiny recipe, about a minute
    python benchmarks/bench_train.py train-resnet9-mnist5k-s0 --profile quick
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cnn_filter_db.params import TrainParams

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = {"architecture": "resnet9", "dataset": "sklearn-digits", "seed": 0, "optimizer": {"lr": 0.02},
        "split": {"validation": 0.15, "test": 0.25, "limit": 900},
        "profiles": {"quick": {"epochs": 1, "batch_size": 16, "input_size": 8}}}


def child(recipe: dict, profile: str, setting: str) -> dict:
    """One training run in this process; the checkpoint's sha256 and the CPU time."""
    import hashlib

    import torch
    from safetensors.torch import save

    from cnn_filter_db.train import determinism, loop, parse_recipe
    from cnn_filter_db.train.architectures import build
    from cnn_filter_db.train.data import load_splits

    r = parse_recipe(recipe).resolve(profile)
    splits = load_splits(r)
    if setting == "fixed":
        determinism.check_process()
        context = determinism.deterministic(r.seed, 1)
    else:
        context = _free(r.seed)
    start = time.process_time()
    with context:
        model = build(r.architecture, splits.in_channels, splits.num_classes)
        fitted = loop.fit(model, splits.train, splits.val, r, splits.augmentation, torch.device("cpu"), False)
    return {"capability": torch.backends.cpu.get_cpu_capability(), "cpu_seconds": time.process_time() - start,
            "sha256": hashlib.sha256(save(fitted.state, metadata={"format": "pt"})).hexdigest(),
            "first_loss": fitted.history[0]["train_loss"]}


def _free(seed: int):
    """The settings training had before: one thread, deterministic algorithms, nothing else fixed."""
    from contextlib import contextmanager

    import torch

    @contextmanager
    def ctx():
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        yield

    return ctx()


def capabilities() -> list[str]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ["default"] + [c for c, flag in (("avx2", " avx2"), ("avx512", " avx512bw")) if flag in flags]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_id", nargs="?", help="a train entry of catalog/models (default: the tiny recipe)")
    ap.add_argument("--profile", default=TrainParams.profile)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.model_id:
        import yaml

        path = Path(__file__).resolve().parents[1] / "catalog" / "models" / f"{args.model_id}.yaml"
        recipe = yaml.safe_load(path.read_text())["source"]["recipe"]
    else:
        recipe = TINY
    if args.child:
        print(json.dumps(child(recipe, args.profile, args.child)))
        return 0
    from cnn_filter_db.train import determinism

    results = {"free": [], "fixed": []}
    for setting in results:
        for cap in capabilities():
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
            for key in determinism.ENV:
                env.pop(key, None)
            if setting == "fixed":
                env = determinism.environment(env)  # whatever the machine's kernels, the default ones run
            else:
                env["ATEN_CPU_CAPABILITY"] = cap  # what a CPU with only this much would run
            out = subprocess.run([sys.executable, __file__, *([args.model_id] if args.model_id else []),
                                  "--profile", args.profile, "--child", setting], env=env, text=True,
                                 capture_output=True, check=True)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            results[setting].append(run)
            print(f"{setting:5s} machine={cap:7s} ran={run['capability']:7s} sha256={run['sha256'][:16]} "
                  f"first loss={run['first_loss']:.7f} cpu={run['cpu_seconds']:.1f} s", flush=True)
    for setting, runs in results.items():
        print(f"{setting}: {len({r['sha256'] for r in runs})} distinct sha256 over {len(runs)} capabilities")
    free = sum(r["cpu_seconds"] for r in results["free"]) / len(results["free"])
    fixed = sum(r["cpu_seconds"] for r in results["fixed"]) / len(results["fixed"])
    print(f"mean CPU seconds: free {free:.1f}, fixed {fixed:.1f}, ratio {fixed / free:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
