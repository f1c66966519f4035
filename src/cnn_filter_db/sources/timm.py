"""timm architectures: initialisation baselines built offline with a fixed seed, or
pretrained weights through timm's own loading (needs the network)."""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import SourceError
from .hf import is_offline
from ..formats.base import Conv, ModelConvs


def build(source) -> tuple[ModelConvs, str]:
    import timm
    import torch
    from safetensors.torch import save

    name = source.architecture + (f".{source.pretrained_tag}" if source.pretrained_tag else "")
    torch.manual_seed(source.seed)
    if source.pretrained_tag is not None and is_offline():
        raise SourceError(f"timm pretrained weights {name!r} need the Hugging Face Hub, and HF_HUB_OFFLINE is set")
    try:
        model = timm.create_model(name, pretrained=source.pretrained_tag is not None)
    except Exception as exc:  # unknown architecture, or the download of pretrained weights failed
        raise SourceError(f"timm could not build {name!r}: {type(exc).__name__}: {exc}") from None
    model.eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    sha = hashlib.sha256(save(state)).hexdigest()
    return module_convs(model), sha


def module_convs(model) -> ModelConvs:
    """The 2-D convolutions of a torch module in registration order, with their groups."""
    import timm
    import torch

    convs = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d):  # ConvTranspose2d is not a subclass
            w = mod.weight.detach().cpu().float().numpy()
            convs.append(Conv(name=name, weight=np.ascontiguousarray(w), groups=int(mod.groups), level=len(convs)))
    return ModelConvs(convs=convs, format="pytorch",
                      framework_versions={"torch": torch.__version__, "timm": timm.__version__})
