"""Registry metadata -> catalog vocabulary: datasets from timm's pretrained tags, licences,
families. Anything no rule covers maps to ``unknown`` (datasets, licences) or ``other``."""
from __future__ import annotations

import re

#: timm tag tokens naming a dataset (``in22k_ft_in1k``: pre-trained on in22k, fine-tuned on in1k).
TAG_DATASETS = {
    "in1k": "imagenet-1k",
    "in21k": "imagenet-21k",
    "in22k": "imagenet-21k",  # timm uses both names for the full ImageNet (fall 2011, ~21k classes)
    "in12k": "imagenet-12k",
    "laion2b": "laion-2b",
    "laion400m": "laion-400m",
    "laion": "laion-2b",
    "openai": "openai-wit-400m",
    "webli": "webli",
    "lvd142m": "lvd-142m",
    "lvd1689m": "lvd-1689m",
    "yfcc15m": "yfcc-15m",
    "cc12m": "cc-12m",
    "ig1b": "instagram-1b",
    "ig3b": "instagram-3.5b",
    "jft300m": "jft-300m",
    "dfn2b": "dfn-2b",
    "dfn5b": "dfn-5b",
    "datacompxl": "datacomp-xl",
    "merged2b": "merged-2b",
    "mim": "imagenet-1k",  # masked image modelling on in1k (mim_in22k names its data)
    "sw": None,  # "swsl"/"ssl" prefixes carry no dataset of their own
}
#: tokens meaning "pre-trained self-/semi-supervised on", kept for the notes
ORDER_WORDS = ("ft",)

LICENSES = {
    "apache-2.0": "Apache-2.0",
    "mit": "MIT",
    "bsd-3-clause": "BSD-3-Clause",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    # torchvision names a licence only by URL (the SWAG weights)
    "https://github.com/facebookresearch/SWAG/blob/main/LICENSE": "CC-BY-NC-4.0",
}

DATA_LICENSES = {"imagenet-1k": "imagenet-terms", "imagenet-21k": "imagenet-terms", "imagenet-12k": "imagenet-terms"}

#: architecture name prefixes -> family (first match wins; order matters)
FAMILIES = (
    ("efficientvit", "other"), ("efficientformer", "other"),
    ("tf_efficientnet", "efficientnet"), ("efficientnet", "efficientnet"), ("tinynet", "efficientnet"),
    ("mobilenet", "mobilenet"), ("tf_mobilenet", "mobilenet"), ("mnasnet", "mobilenet"), ("fbnet", "mobilenet"),
    ("lcnet", "mobilenet"), ("mobilevit", "mobilenet"), ("mobileone", "mobilenet"),
    ("regnet", "regnet"), ("convnext", "convnext"), ("vgg", "vgg"), ("repvgg", "vgg"),
    ("inception", "inception"), ("googlenet", "inception"), ("xception", "inception"),
    ("densenet", "densenet"), ("dla", "dla"), ("dpn", "dpn"), ("hrnet", "hrnet"),
    ("nf_", "nfnet"), ("dm_nfnet", "nfnet"), ("eca_nfnet", "nfnet"), ("nfnet", "nfnet"),
    ("cs", "cspnet"), ("darknet", "cspnet"), ("ghostnet", "ghostnet"), ("rexnet", "rexnet"),
    ("resnet", "resnet"), ("resnext", "resnet"), ("wide_resnet", "resnet"), ("seresne", "resnet"),
    ("skresne", "resnet"), ("ecaresnet", "resnet"), ("gcresnet", "resnet"), ("resnest", "resnet"),
    ("res2n", "resnet"), ("legacy_seresne", "resnet"), ("ig_resnext", "resnet"), ("swsl_", "resnet"),
    ("ssl_", "resnet"), ("gluon_res", "resnet"), ("tv_resnet", "resnet"), ("bat_resnext", "resnet"),
    ("lambda_resnet", "resnet"), ("halo", "resnet"), ("botnet", "resnet"), ("sebotnet", "resnet"),
    ("maxvit", "maxvit"), ("maxxvit", "maxvit"), ("coatnet", "maxvit"),
    ("squeezenet", "other"), ("shufflenet", "mobilenet"), ("alexnet", "other"),
    ("fcn_", "resnet"), ("deeplabv3_", "resnet"), ("lraspp", "mobilenet"), ("retinanet_resnet", "resnet"),
    ("fasterrcnn_mobilenet", "mobilenet"), ("fasterrcnn_resnet", "resnet"), ("maskrcnn", "resnet"),
    ("keypointrcnn", "resnet"), ("fcos", "resnet"), ("ssdlite", "mobilenet"), ("ssd300_vgg", "vgg"),
    ("raft", "other"), ("yolo", "yolo"),
)


def family(architecture: str) -> str:
    for prefix, fam in FAMILIES:
        if architecture.startswith(prefix):
            return fam
    return "other"


def license_id(value: str | None) -> str:
    """The vocabulary's name of a registry's licence string: ``unknown`` when none is named,
    ``other`` for a named licence outside the vocabulary (apple-ascl, dinov3-license, ...),
    which the release policy then leaves out rather than publishing as unknown."""
    key = (value or "").strip()
    key = key if key.startswith("http") else key.lower()
    if key in ("", "unknown"):
        return "unknown"
    return LICENSES.get(key, "other")


def timm_tag_datasets(tag: str) -> tuple[str, str]:
    """(training_dataset, pretraining_dataset) read from a timm pretrained tag.

    Tokens before ``ft`` name the pre-training data, the last dataset token after it the
    training data; without ``ft`` the last dataset token is the training data and there is
    no separate pre-training (``none``) unless two datasets are named. Nothing named:
    ``unknown`` for both.
    """
    tokens = re.split(r"[_.]", tag.lower())
    if "ft" in tokens:
        i = tokens.index("ft")
        before = [TAG_DATASETS.get(t) for t in tokens[:i] if TAG_DATASETS.get(t)]
        after = [TAG_DATASETS.get(t) for t in tokens[i + 1:] if TAG_DATASETS.get(t)]
        return (after[-1] if after else "unknown"), (before[-1] if before else "unknown")
    named = [TAG_DATASETS.get(t) for t in tokens if TAG_DATASETS.get(t)]
    if not named:
        return "unknown", "unknown"
    if len(named) == 1:
        return named[0], "none"
    return named[-1], named[-2]


def arxiv_url(paper_ids) -> str | None:
    """The first paper of timm's ``paper_ids`` as a URL (arXiv ids become arxiv.org links)."""
    if not paper_ids:
        return None
    first = (paper_ids if isinstance(paper_ids, str) else ",".join(paper_ids)).split(",")[0].strip()
    m = re.match(r"(?i)arxiv:\s*(\S+)", first)
    return f"https://arxiv.org/abs/{m[1]}" if m else first or None
