"""The convolutions of a live ``torch.nn.Module`` (timm builds, trained models).

Not a file format: it reads a module in memory, so it does not register a reader. It lives
here, below both ``sources`` and ``train``, which both use it.
"""
from __future__ import annotations

import numpy as np

from .base import Conv, ModelConvs


def module_convs(model, framework_versions: dict[str, str] | None = None) -> ModelConvs:
    """The 2-D convolutions of a torch module in registration order, with their groups.

    ``level`` is the registration order (the rule of state dicts); ConvTranspose2d is not
    a subclass of Conv2d and is left out, as the original left it out.
    """
    import torch

    convs = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            w = mod.weight.detach().cpu().float().numpy()
            convs.append(Conv(name=name, weight=np.ascontiguousarray(w), groups=int(mod.groups), level=len(convs)))
    return ModelConvs(convs=convs, format="pytorch",
                      framework_versions=dict(framework_versions or {"torch": torch.__version__}))
