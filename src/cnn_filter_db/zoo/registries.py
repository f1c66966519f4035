"""Catalog entries from the timm and torchvision registries, built offline.

Each architecture is instantiated on PyTorch's ``meta`` device (shapes, no memory, no
weights) and its 3x3 convolutions are counted the way the state-dict readers will see
them: every 4-D ``*.weight`` tensor with a 3x3 kernel is a layer of out x in/groups
filters. Weights without any 3x3 layer are skipped (plain vision transformers, 3-D video
models).
"""
from __future__ import annotations

import math
import re
import warnings
from typing import Callable, Iterator

from .. import config
from . import labels

SETS = ("timm", "torchvision")


#: Architectures whose construction computes with tensors (torchvision's RegNet widths) cannot
#: be built on the meta device; those up to this many parameters are built on the CPU instead.
CPU_FALLBACK_MAX_PARAMS = 200_000_000


def count_3x3(build: Callable[[], object], num_params: int | None = None) -> tuple[int, int]:
    """(layers, filters) of the module ``build()`` returns, built on the meta device (or on
    the CPU when the meta device cannot build it and ``num_params`` is known to be small)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                model = build()
        except NotImplementedError:
            if num_params is None or num_params > CPU_FALLBACK_MAX_PARAMS:
                raise
            model = build()
    layers = filters = 0
    for key, tensor in model.state_dict().items():
        if key.endswith("weight") and tensor.ndim == 4 and tuple(tensor.shape[-2:]) == (3, 3):
            layers += 1
            filters += int(tensor.shape[0]) * int(tensor.shape[1])
    return layers, filters


def model_id(prefix: str, name: str) -> str:
    mid = f"{prefix}-{name}".lower()
    if not re.match(config.MODEL_ID_PATTERN, mid):
        raise ValueError(f"cannot make a model_id of {name!r}: {mid!r} does not match {config.MODEL_ID_PATTERN}")
    return mid


def timm_entries(pattern: str = "*", progress=None) -> Iterator[tuple[str, dict | None, str]]:
    """(model_id, entry, why) for every pretrained timm tag matching ``pattern``; the entry
    is None (and ``why`` says why) when the weights cannot be an entry."""
    import timm
    from timm.models import get_pretrained_cfg

    counts: dict[tuple[str, int], tuple[int, int]] = {}
    for name in timm.list_pretrained(pattern):
        if progress:
            progress(name)
        arch, tag = name.split(".", 1)
        cfg = get_pretrained_cfg(name)
        mid = model_id("timm", name)
        if not cfg.hf_hub_id:
            yield mid, None, "no Hub copy of the weights (hf_hub_id empty): no pinnable source"
            continue
        if cfg.custom_load:
            yield mid, None, "custom_load weights (npz) are not a state dict the readers take"
            continue
        key = (arch, int(cfg.num_classes or 0))
        if key not in counts:
            try:
                counts[key] = count_3x3(lambda: timm.create_model(name, pretrained=False))
            except Exception as exc:  # an architecture that cannot be built without weights
                counts[key] = (0, 0)
                yield mid, None, f"could not build on the meta device: {type(exc).__name__}: {exc}"
                continue
        n_layers, n_filters = counts[key]
        if n_layers == 0:
            yield mid, None, "no 3x3 convolution"
            continue
        training, pretraining = labels.timm_tag_datasets(tag)
        lic = labels.license_id(cfg.license)
        notes = [f"Generated from timm {timm.__version__} pretrained_cfg of {name}."]
        if lic in ("unknown", "other"):
            notes.append(f"pretrained_cfg license: {cfg.license!r}.")
        if getattr(cfg, "notes", None):
            notes.append(" ".join(str(n) for n in cfg.notes))
        yield mid, {
            "model_id": mid,
            "set": "timm",
            "name": f"timm {name}",
            "source": {"kind": "timm", "architecture": arch, "pretrained_tag": tag},
            "format": "safetensors",  # timm's Hub repositories hold model.safetensors
            "architecture": arch,
            "family": labels.family(arch),
            "task": "classification" if cfg.num_classes else "other",
            "visual_category": "natural",
            "training_dataset": training,
            "pretraining_dataset": pretraining,
            "trained": True,
            "license": lic,
            "training_data_license": labels.DATA_LICENSES.get(training, "unknown"),
            "paper": labels.arxiv_url(cfg.paper_ids),
            "accuracy": None,
            "homepage": f"https://huggingface.co/{cfg.hf_hub_id}",
            "notes": " ".join(notes),
            "expected_3x3": {"layers": n_layers, "filters": n_filters},
        }, ""


#: torchvision sub-packages -> task; quantized and video weights are skipped (int8 state
#: dicts need their scales; 3-D kernels are not 3x3 filters)
TV_TASKS = (("detection", "detection"), ("segmentation", "segmentation"), ("optical_flow", "other"),
            ("quantization", None), ("video", None), ("", "classification"))


def torchvision_entries(pattern: str = "*", progress=None) -> Iterator[tuple[str, dict | None, str]]:
    """As :func:`timm_entries`, for torchvision's weights enums (``pattern`` matches builder names)."""
    import fnmatch

    import torchvision
    from torchvision import models

    task_of = {}
    for sub, task in TV_TASKS:
        module = getattr(models, sub) if sub else models
        for builder in models.list_models(module=module):
            task_of.setdefault(builder, task)
    for builder in models.list_models():
        if not fnmatch.fnmatch(builder, pattern):
            continue
        for weights in models.get_model_weights(builder):
            enum_name = f"{type(weights).__name__}.{weights.name}"
            if progress:
                progress(enum_name)
            mid = model_id("tv", f"{builder}.{weights.name}")
            task = task_of.get(builder, "classification")
            if task is None:
                yield mid, None, "quantized or video weights (not float 2-D filters)"
                continue
            meta = weights.meta
            try:
                n_layers, n_filters = count_3x3(lambda: models.get_model(builder, weights=None, **_tv_kwargs(builder, meta)),
                                                meta.get("num_params"))
            except Exception as exc:
                yield mid, None, f"could not build on the meta device: {type(exc).__name__}: {exc}"
                continue
            if n_layers == 0:
                yield mid, None, "no 3x3 convolution"
                continue
            training, pretraining, accuracy, metric = _tv_data(weights.name, meta, task)
            lic = labels.license_id(meta.get("license"))
            metrics = "; ".join(f"{ds}: " + ", ".join(f"{k} {v}" for k, v in m.items())
                                for ds, m in meta.get("_metrics", {}).items())
            yield mid, {
                "model_id": mid,
                "set": "torchvision",
                "name": f"torchvision {builder} {weights.name}",
                "source": {"kind": "torchvision", "builder": builder, "weights": enum_name},
                "format": "pytorch",
                "architecture": builder,
                "family": labels.family(builder),
                "task": task,
                "visual_category": "natural",
                "training_dataset": training,
                "pretraining_dataset": pretraining,
                "trained": True,
                "license": lic,
                "training_data_license": labels.DATA_LICENSES.get(training, "unknown"),
                "paper": None,
                "accuracy": accuracy,
                "accuracy_metric": metric,
                "accuracy_split": "validation" if accuracy is not None else None,
                "homepage": meta.get("recipe"),
                "notes": (f"Generated from torchvision {torchvision.__version__} {enum_name}: {meta['num_params']:,} "
                          f"parameters; reported {metrics or 'no metrics'}; weights URL {weights.url}."),
                "expected_3x3": {"layers": n_layers, "filters": n_filters},
            }, ""


def _tv_kwargs(builder: str, meta: dict) -> dict:
    """The builder arguments that the weights imply (torchvision sets them when it loads the
    weights): their number of classes, the auxiliary segmentation head, and no download of
    separate backbone weights."""
    import inspect

    from torchvision import models

    params = inspect.signature(models.get_model_builder(builder)).parameters
    kwargs = {"num_classes": len(meta["categories"])} if meta.get("categories") else {}
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None
    if builder.startswith(("fcn_", "deeplabv3_")):
        kwargs["aux_loss"] = True  # every COCO_WITH_VOC_LABELS weights file holds the aux head
    return kwargs


def _tv_data(name: str, meta: dict, task: str) -> tuple[str, str, float | None, str | None]:
    metrics = meta.get("_metrics", {})
    if "ImageNet-1K" in metrics:
        acc = metrics["ImageNet-1K"].get("acc@1")
        pre = "instagram-3.6b" if "SWAG" in name else "none"
        if acc is None or not math.isfinite(acc):  # the VGG16 "features" weights report nan
            return "imagenet-1k", pre, None, None
        return "imagenet-1k", pre, round(acc / 100, 5), "top-1"
    if any(k.startswith("COCO-val2017-VOC") for k in metrics):
        return "coco-voc-labels", "imagenet-1k", None, None
    if any(k.startswith("COCO") for k in metrics):
        return "coco-2017", "imagenet-1k", None, None
    if task == "other":  # optical flow (RAFT): the Sintel/Kitti fine-tunes name their data
        upper = name.upper()
        data = "kitti" if "KITTI" in upper else "sintel" if "SINTEL" in upper else "flyingthings3d"
        return data, ("flyingchairs+flyingthings3d" if data != "flyingthings3d" else "flyingchairs"), None, None
    return "unknown", "unknown", None, None
