"""The settings under which a CPU training run gives the same checkpoint bytes on any x86-64 CPU.

A float32 result depends on the order of its additions, and torch picks that order per CPU:

- ATen's own kernels (batch norm, reductions, the optimizers' element-wise steps, resizing)
  are compiled several times and dispatched on the CPU's vector width (AVX-512, AVX2, or the
  baseline). ``ATEN_CPU_CAPABILITY=default`` fixes the baseline build everywhere; it is read
  once, when torch is imported, so it is set in the environment of a fresh process.
- oneDNN (MKL-DNN) chooses its convolution kernels by CPU and is switched off, so
  convolutions run as im2col + GEMM; NNPACK (used for inference when the batch is large)
  has its own CPU dispatch and is switched off too.
- The GEMM is MKL's (``torch.__config__.show()``: ``BLAS_INFO=mkl`` in the x86-64 wheels).
  MKL dispatches per CPU as well; ``MKL_CBWR=COMPATIBLE`` (conditional numerical
  reproducibility) makes it take one code path on every Intel and AMD CPU. It is also read
  at start-up. Other BLAS builds are not covered (see :func:`blas`).
- One thread (a reduction split over threads is added in another order) and
  ``torch.use_deterministic_algorithms(True)``.

Measured on an AMD EPYC with AVX-512 (torch 2.14.1): without these settings the checkpoint
of one recipe differs between ``ATEN_CPU_CAPABILITY`` avx512, avx2 and default (and MKL's
default path differs from its COMPATIBLE one); with them it does not change. The cost is
in the README (training section). The settings cover the CPU only: a CUDA run is
deterministic on one GPU model at best, and is not pinned.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager

import torch

from ..errors import SourceError

#: Environment of the training process: read by torch and MKL when they start.
ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with :data:`ENV` set."""
    return {**(os.environ if base is None else base), **ENV}


def blas() -> str:
    """The BLAS torch was built with (``mkl``, ``open`` for OpenBLAS, ...), from its build config."""
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def settings(num_threads: int) -> dict:
    """What a run was trained under, for its record."""
    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability(), "blas": blas(),
            "mkl_cbwr": os.environ.get("MKL_CBWR"), "onednn": False, "nnpack": False,
            "deterministic_algorithms": True, "num_threads": num_threads}


def check_process() -> None:
    """Refuse to train in a process whose torch started without :data:`ENV`."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        raise SourceError(f"training needs ATEN_CPU_CAPABILITY=default set before torch is imported; this process "
                          f"runs ATen's {capability} kernels (train in a process started with "
                          "cnn_filter_db.train.determinism.environment())")
    if blas() == "mkl" and os.environ.get("MKL_CBWR") != ENV["MKL_CBWR"]:
        raise SourceError(f"training needs MKL_CBWR={ENV['MKL_CBWR']} set before torch starts; "
                          f"got {os.environ.get('MKL_CBWR')!r}")


@contextmanager
def deterministic(seed: int, num_threads: int):
    """Seed torch, fix the kernels (module docstring) and the thread count; restore after."""
    # cuBLAS needs this set before its first use to be deterministic
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    bench, onednn = torch.backends.cudnn.benchmark, torch.backends.mkldnn.enabled
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.mkldnn.enabled = False
    (nnpack,) = torch.backends.nnpack.set_flags(False)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.benchmark = bench
        torch.backends.mkldnn.enabled = onednn
        torch.backends.nnpack.set_flags(nnpack)
