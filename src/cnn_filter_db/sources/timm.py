"""``timm``: an architecture of timm, as an initialisation baseline built offline with a fixed
seed, or with pretrained weights pinned by the sha256 of their file.

Pretrained weights are not loaded by timm's own download (which checks no pin and, in
older timm versions, unpickles): the file timm's pretrained config names (on the Hub, or
at a URL) goes through the hf or url source into the content-addressed cache, checked
against ``source.sha256`` on every build, is read as safetensors or with
``torch.load(weights_only=True)``, and is handed to timm as a state dict (so timm's
key remapping for the architecture still applies).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from .. import config
from ..cache import Cache
from ..errors import CnnFilterDbError, SourceError
from ..fields import SEED_MAX, SHA256, StrictModel
from ..formats.torch_module import module_convs
from ..loaded import Loaded
from . import SourceKind, register
from . import hf, url

NAME = r"^[a-z0-9][a-z0-9_]{0,99}$"
#: The files timm tries on the Hub when its config names none (safetensors first).
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


class TimmSource(StrictModel):
    """A timm architecture: pretrained weights pinned by ``sha256`` (``pretrained_tag`` set),
    or an initialisation baseline built offline after ``torch.manual_seed(seed)``."""

    kind: Literal["timm"]
    architecture: str = Field(pattern=NAME, description="timm model name, e.g. resnet50")
    pretrained_tag: str | None = Field(None, pattern=NAME, description="timm pretrained tag, e.g. a1_in1k; "
                                                                       "null for an initialisation baseline")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    sha256: SHA256 | None = Field(None, description="sha256 of the pretrained weights file; without it the "
                                                    "first build pins it in catalog/lock.yaml")

    @model_validator(mode="after")
    def _pinned(self):
        # pretrained without sha256: pinned in catalog/lock.yaml on first build (sources.pinned)
        if self.pretrained_tag is None and self.sha256 is not None:
            raise ValueError("sha256 pins pretrained weights; an initialisation baseline (no pretrained_tag) has none")
        return self

    @property
    def name(self) -> str:
        return self.architecture + (f".{self.pretrained_tag}" if self.pretrained_tag else "")


def uri(source, model_id: str) -> str:
    return f"timm://{source.name}" if source.pretrained_tag else f"timm://{source.architecture}?init_seed={source.seed}"


def _weights_cfg(name: str):
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise SourceError(f"timm has no pretrained weights {name!r}")
    if cfg.custom_load:
        raise SourceError(f"timm loads the weights of {name!r} with custom code (not a state dict); not supported")
    return cfg


def _download(name: str, sha256: str | None, cache: Cache) -> Path:
    """The weights file of timm's pretrained config ``name`` into the cache, checked against ``sha256``."""
    cfg = _weights_cfg(name)
    if cfg.hf_hub_id:
        errors = []
        for filename in ([cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else HUB_FILES):
            try:
                return hf.download({"repo_id": cfg.hf_hub_id, "revision": None, "filename": filename,
                                    "sha256": sha256}, cache)
            except SourceError as exc:
                if "sha256 mismatch" in str(exc):
                    raise
                errors.append(str(exc))
        raise SourceError(f"timm weights {name!r}: " + "; ".join(errors))
    if cfg.url:
        return url.download_url(cfg.url, sha256, cache)
    raise SourceError(f"timm's config of {name!r} names no file (neither a Hub repository nor a URL)")


def fetch_weights(source, cache: Cache) -> Path:
    return cache.get(source.sha256) or _download(source.name, source.sha256, cache)


def download(source: dict, cache: Cache) -> Path | None:
    """The pretrained file of a new entry (``catalog add``), stored under its own sha256."""
    if not source.get("pretrained_tag"):
        return None
    return _download(f"{source['architecture']}.{source['pretrained_tag']}", None, cache)


def _state_dict(path: Path, what: str) -> dict:
    """A checkpoint read without unpickling objects, unwrapped as timm unwraps it."""
    import torch
    from safetensors.torch import load_file
    from timm.models import clean_state_dict

    from ..formats.sniff import sniff_format

    try:
        if sniff_format(path) == "safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a checkpoint, or one that needs arbitrary objects unpickled
        raise SourceError(f"{what}: not a weights-only checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise SourceError(f"{what}: the checkpoint is not a state dict")
    return clean_state_dict(state)


def build(source, model_id: str, cache_dir: Path | None = None) -> Loaded:
    import timm
    import torch
    from safetensors.torch import save

    try:
        if source.pretrained_tag is None:
            torch.manual_seed(source.seed)
            model = timm.create_model(source.name, pretrained=False)
        else:
            weights = fetch_weights(source, Cache(cache_dir or config.default_cache_dir()))
            state = _state_dict(weights, uri(source, model_id))
            model = timm.create_model(source.name, pretrained=True, pretrained_cfg_overlay={"state_dict": state})
    except CnnFilterDbError as exc:
        raise type(exc)(f"{model_id}: {exc}") from None
    except Exception as exc:  # an unknown architecture, or weights that do not fit it
        raise SourceError(f"{model_id}: timm could not build {source.name!r}: {type(exc).__name__}: {exc}") from None
    model.eval()
    if source.pretrained_tag is None:
        # generated weights: the sha256 of their state dict written as safetensors (SPEC section 3)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        sha = hashlib.sha256(save(state)).hexdigest()
    else:
        sha = source.sha256  # the pinned file, checked above
    convs = module_convs(model, {"torch": torch.__version__, "timm": timm.__version__})
    return Loaded(convs, sha, uri(source, model_id))


def parse_spec(rest: str) -> dict:
    arch, _, tag = rest.partition(".")
    source = {"kind": "timm", "architecture": arch}
    if tag:
        source["pretrained_tag"] = tag
    else:
        source["seed"] = 0
    return source


register(SourceKind("timm", TimmSource, uri, download=download, build=build, spec_prefix="timm:",
                    parse_spec=parse_spec, spec_help="timm:ARCH (a baseline) or timm:ARCH.TAG (pretrained)"))
