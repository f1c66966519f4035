"""Keras reader: files written by Keras 3 itself (.keras, .weights.h5, legacy .h5) and a
Keras 2 layout written with h5py, checked element for element and by running the convs."""
from __future__ import annotations

import os
import zipfile

import h5py
import numpy as np
import pytest
import torch

from cnn_filter_db import formats
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import layers_of
from keras_expected import dense, depthwise
from keras2_writer import write_keras2_h5


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    """A Functional model with every supported conv kind plus layers that must be skipped,
    saved by Keras 3 in its three layouts (the .h5 one after a fit, so it holds optimizer state)."""
    os.environ["KERAS_BACKEND"] = "torch"  # before the first import of keras
    import keras

    assert keras.backend.backend() == "torch"
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.SeparableConv2D(6, 3, depth_multiplier=2, padding="same", name="sep")(x)
    x = keras.layers.Conv2D(6, 3, groups=3, padding="same", name="grouped")(x)
    x = keras.layers.Conv2DTranspose(2, 3, name="up")(x)  # not a filter of the database: skipped
    x = keras.layers.Conv2D(5, 1, name="head")(x)
    model = keras.Model(inp, x, name="toy")
    # randomise biases too, so that a mix-up of kernel and bias would show
    for w in model.weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape).astype("float32"))
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.rand(2, 12, 12, 4).astype("float32"), np.random.rand(2, 14, 14, 5).astype("float32"),
              epochs=1, verbose=0)
    out = tmp_path_factory.mktemp("keras")
    paths = {"keras": out / "toy.keras", "weights": out / "toy.weights.h5", "legacy": out / "toy.h5"}
    model.save(paths["keras"])
    model.save_weights(paths["weights"])
    model.save(paths["legacy"])
    kernels = {layer.name: [np.asarray(keras.ops.convert_to_numpy(v)) for v in layer.weights] for layer in model.layers}
    return model, paths, kernels


@pytest.mark.parametrize("layout", ["keras", "weights", "legacy"])
def test_values_element_for_element(keras_model, layout):
    model, paths, kernels = keras_model
    convs = {c.name: c for c in formats.read(paths[layout], "keras").convs}
    assert set(convs) == {"stem", "dw", "sep/depthwise", "sep/pointwise", "grouped", "head"}  # 'up' skipped
    np.testing.assert_array_equal(convs["stem"].weight, dense(kernels["stem"][0]))
    np.testing.assert_array_equal(convs["dw"].weight, depthwise(kernels["dw"][0]))
    np.testing.assert_array_equal(convs["sep/depthwise"].weight, depthwise(kernels["sep"][0]))
    np.testing.assert_array_equal(convs["sep/pointwise"].weight, dense(kernels["sep"][1]))
    np.testing.assert_array_equal(convs["grouped"].weight, dense(kernels["grouped"][0]))
    np.testing.assert_array_equal(convs["head"].weight, dense(kernels["head"][0]))
    assert convs["dw"].kind == "depthwise" and convs["dw"].groups == 8
    assert convs["sep/depthwise"].kind == "depthwise" and convs["sep/pointwise"].kind == "dense"
    assert convs["grouped"].weight.shape == (6, 2, 3, 3)  # 6 inputs in 3 groups
    for c in convs.values():
        assert c.weight.dtype == np.float32


@pytest.mark.parametrize("layout", ["keras", "legacy"])
def test_config_gives_groups_and_order(keras_model, layout):
    _, paths, _ = keras_model
    convs = formats.read(paths[layout], "keras").convs
    assert [c.name for c in sorted(convs, key=lambda c: c.level)] == [
        "stem", "dw", "sep/depthwise", "sep/pointwise", "grouped", "head"]
    assert {c.name: c.groups for c in convs}["grouped"] == 3
    rows = [layer.row for layer in layers_of("toy", convs)]
    assert [(r["layer_name"], r["conv_kind"]) for r in rows] == [
        ("stem", "dense"), ("dw", "depthwise"), ("sep/depthwise", "depthwise"), ("grouped", "grouped")]
    assert [r["conv_depth"] for r in rows] == [0, 1, 2, 4]  # the 1x1 pointwise and head hold levels too


def test_weights_h5_without_config_reads_kinds_from_group_names(keras_model):
    _, paths, _ = keras_model
    convs = {c.name: c for c in formats.read(paths["weights"], "keras").convs}
    assert convs["grouped"].groups is None  # no config: groups unknown
    assert convs["dw"].kind == "depthwise"


def test_convs_compute_what_keras_computes(keras_model):
    """Running our (out, in, kh, kw) weights through torch reproduces each Keras layer, so the
    layout (not only the set of values) is right, depthwise channel order included."""
    import keras

    model, paths, _ = keras_model
    convs = {c.name: c for c in formats.read(paths["keras"], "keras").convs}
    rng = np.random.default_rng(1)
    for name in ("stem", "dw", "grouped"):
        layer = model.get_layer(name)
        xin = rng.normal(size=(1, 12, 12, layer.input.shape[-1])).astype("float32")
        want = keras.ops.convert_to_numpy(layer(xin)) - keras.ops.convert_to_numpy(layer.bias)
        c = convs[name]
        got = torch.nn.functional.conv2d(torch.from_numpy(xin).permute(0, 3, 1, 2), torch.from_numpy(c.weight),
                                         padding=1, groups=c.groups).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)


# --------------------------------------------------------------------------- Keras 2 layout

@pytest.fixture
def keras2_kernels():
    rng = np.random.default_rng(3)
    return {"conv1": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
            "dwise": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
            "sep_d": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
            "sep_p": rng.normal(size=(1, 1, 4, 6)).astype(np.float32),
            "conv2": rng.normal(size=(3, 3, 3, 6)).astype(np.float32)}


def test_keras2_h5_reads_model_weights_never_optimizer_weights(tmp_path, keras2_kernels):
    path = tmp_path / "model.h5"
    write_keras2_h5(path, keras2_kernels)
    m = formats.read(path, "keras")
    convs = {c.name: c for c in m.convs}
    assert [c.name for c in sorted(m.convs, key=lambda c: c.level)] == [
        "conv1", "dwise", "sep/depthwise", "sep/pointwise", "conv2"]
    np.testing.assert_array_equal(convs["conv1"].weight, dense(keras2_kernels["conv1"]))
    np.testing.assert_array_equal(convs["dwise"].weight, depthwise(keras2_kernels["dwise"]))
    np.testing.assert_array_equal(convs["sep/depthwise"].weight, depthwise(keras2_kernels["sep_d"]))
    np.testing.assert_array_equal(convs["sep/pointwise"].weight, dense(keras2_kernels["sep_p"]))
    np.testing.assert_array_equal(convs["conv2"].weight, dense(keras2_kernels["conv2"]))
    assert convs["conv2"].groups == 2 and convs["conv1"].groups == 1
    assert not any((c.weight == 7.0).any() for c in m.convs)  # the optimizer's copies
    assert m.framework_versions["keras (writer)"] == "2.10.0"
    n = sum(layer.row["n_filters"] for layer in layers_of("k2", m.convs))
    assert n == 4 * 3 + 4 + 4 + 6 * 3


def test_keras3_legacy_h5_ignores_its_optimizer_weights(keras_model):
    _, paths, kernels = keras_model
    with h5py.File(paths["legacy"], "r") as f:
        assert "optimizer_weights" in f  # the real writer saved the Adam slots
    convs = {c.name: c for c in formats.read(paths["legacy"], "keras").convs}
    np.testing.assert_array_equal(convs["stem"].weight, dense(kernels["stem"][0]))


# --------------------------------------------------------------------------- bad input

def test_truncated_files_are_refused(keras_model, tmp_path):
    _, paths, _ = keras_model
    for key in ("keras", "weights", "legacy"):
        data = paths[key].read_bytes()
        bad = tmp_path / paths[key].name
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(FormatError, match=str(bad.name)):
            formats.read(bad, "keras")


def test_extension_that_lies_names_the_real_format(tmp_path):
    from safetensors.numpy import save_file

    bad = tmp_path / "model.keras"
    save_file({"conv.weight": np.zeros((2, 2, 3, 3), np.float32)}, str(bad))
    with pytest.raises(FormatError, match=r"model\.keras: not a Keras file.*safetensors"):
        formats.read(bad, "keras")
    onnx_like = tmp_path / "weights.h5"
    onnx_like.write_bytes(b"\x08\x07\x12\x07pytorch" + b"\0" * 64)
    with pytest.raises(FormatError, match=r"weights\.h5: not a Keras file"):
        formats.read(onnx_like, "keras")


def test_nan_kernel_is_refused_by_extraction(tmp_path, keras2_kernels):
    keras2_kernels["conv2"][1, 1, 0, 0] = np.nan
    keras2_kernels["conv1"][0, 0, 0, 0] = np.inf
    path = tmp_path / "nan.h5"
    write_keras2_h5(path, keras2_kernels)
    convs = formats.read(path, "keras").convs
    with pytest.raises(FormatError, match=r"my-entry: layer 'conv1' holds 1 NaN or infinite"):
        layers_of("my-entry", convs)


def test_unsupported_layer_type_is_refused(keras_model, tmp_path):
    """A layer class that is not a known 2-D conv but holds a 4-D kernel (here: the config
    of a .keras archive renamed to a custom class)."""
    _, paths, _ = keras_model
    bad = tmp_path / "custom.keras"
    with zipfile.ZipFile(paths["keras"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                data = data.replace(b'"class_name": "Conv2D", "config": {"name": "grouped"',
                                    b'"class_name": "MyConv", "config": {"name": "grouped"')
                assert b"MyConv" in data
            dst.writestr(item, data)
    with pytest.raises(FormatError, match=r"custom\.keras: unsupported layer type: .*MyConv"):
        formats.read(bad, "keras")


def test_integer_kernel_is_refused(tmp_path, keras2_kernels):
    path = tmp_path / "q.h5"
    write_keras2_h5(path, keras2_kernels)
    with h5py.File(path, "a") as f:
        del f["model_weights/conv1/conv1/kernel:0"]
        f["model_weights/conv1"].create_dataset("conv1/kernel:0", data=np.ones((3, 3, 3, 4), np.int8))
    with pytest.raises(FormatError, match=r"q\.h5: layer 'conv1' \(Conv2D\): kernel of dtype int8"):
        formats.read(path, "keras")


def test_keras_archive_without_weights_is_refused(tmp_path):
    bad = tmp_path / "empty.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(FormatError, match=r"empty\.keras: not a \.keras archive"):
        formats.read(bad, "keras")
