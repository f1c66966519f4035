"""Keras files as real projects save them: a Keras 2.0-2.2 full model (weights mapped to
layers through ``model_weights/<layer>`` and ``weight_names``, whatever their own prefix), a
Keras 2 ``save_weights`` file (written by Keras's own legacy writer), and a Keras 3
``.weights.h5`` of a subclassed model (written by Keras 3), each checked element by element;
names that do not tell a layer's class need the entry's ``keras_layer_classes``."""
from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
import yaml

from cnn_filter_db import formats
from cnn_filter_db.catalog import Entry
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import extract_model
from cnn_filter_db.formats.sniff import sniff_format
from cnn_filter_db.scaffold import add_entry
from cnn_filter_db.sources.cache import sha256_file
from keras2_writer import write_keras21_h5
from keras_expected import dense, depthwise

os.environ["KERAS_BACKEND"] = "torch"  # before the first import of keras


def entry_for(path, model_id, **extra):
    return Entry.model_validate({
        "model_id": model_id, "name": "x", "format": "keras",
        "source": {"kind": "url", "url": path.as_uri(), "sha256": sha256_file(path)},
        "architecture": "x", "family": "other", "task": "other", "visual_category": "none",
        "training_dataset": "none", "pretraining_dataset": "none", "trained": False, "license": "MIT",
        "training_data_license": "not-applicable", "paper": None, "accuracy": None, **extra})


# --------------------------------------------------------------------------- (a) Keras 2.0-2.2

def test_keras21_full_model_maps_weights_through_the_layer_groups(tmp_path):
    rng = np.random.default_rng(5)
    k = {"conv1": rng.normal(size=(3, 3, 3, 4)), "dwise": rng.normal(size=(3, 3, 4, 1)),
         "sep_d": rng.normal(size=(3, 3, 4, 1)), "sep_p": rng.normal(size=(1, 1, 4, 6)),
         "conv2": rng.normal(size=(3, 3, 6, 6))}
    k = {n: v.astype(np.float32) for n, v in k.items()}
    path = tmp_path / "keras21.hdf5"
    write_keras21_h5(path, k)
    assert sniff_format(path) == "keras"
    m = formats.read(path, "keras")
    assert [c.name for c in sorted(m.convs, key=lambda c: c.level)] == [
        "conv1", "dwise", "sep/depthwise", "sep/pointwise", "conv2"]
    convs = {c.name: c for c in m.convs}
    np.testing.assert_array_equal(convs["conv1"].weight, dense(k["conv1"]))
    np.testing.assert_array_equal(convs["dwise"].weight, depthwise(k["dwise"]))
    np.testing.assert_array_equal(convs["sep/depthwise"].weight, depthwise(k["sep_d"]))
    np.testing.assert_array_equal(convs["sep/pointwise"].weight, dense(k["sep_p"]))
    np.testing.assert_array_equal(convs["conv2"].weight, dense(k["conv2"]))
    assert convs["conv1"].groups == 1 and convs["dwise"].kind == "depthwise"
    assert not any((c.weight == 7.0).any() for c in m.convs)  # optimizer_weights never read
    assert m.framework_versions["keras (writer)"] == "2.1.6"


def test_catalog_add_takes_a_keras21_file(tmp_path, root):
    rng = np.random.default_rng(6)
    k = {"conv1": rng.normal(size=(3, 3, 3, 4)), "dwise": rng.normal(size=(3, 3, 4, 1)),
         "sep_d": rng.normal(size=(3, 3, 4, 1)), "sep_p": rng.normal(size=(1, 1, 4, 6)),
         "conv2": rng.normal(size=(3, 3, 6, 6))}
    path = tmp_path / "keras21.hdf5"
    write_keras21_h5(path, {n: v.astype(np.float32) for n, v in k.items()})
    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", proj / "catalog")
    written, findings = add_entry(str(path), "keras21-model", root=proj, cache_dir=tmp_path / "cache")
    assert (findings.format, findings.n_layers, findings.n_filters, findings.n_depthwise) == (
        "keras", 4, 4 * 3 + 4 + 4 + 6 * 6, 4 + 4)  # conv1, dwise, sep/depthwise, conv2 (3x3 only)
    assert "format: keras" in written.read_text()


def test_keras1_files_are_refused(tmp_path):
    path = tmp_path / "keras1.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"convolution2d_1"])
        g = f.create_group("convolution2d_1")
        g.attrs["weight_names"] = np.array([b"convolution2d_1_W", b"convolution2d_1_b"])
        g["convolution2d_1_W"] = np.ones((4, 3, 3, 3), np.float32)  # Theano ordering: out, in, kh, kw
        g["convolution2d_1_b"] = np.zeros(4, np.float32)
    with pytest.raises(FormatError, match=r"keras1\.h5: a Keras 1 file .*re-save it with Keras 2"):
        formats.read(path, "keras")


# --------------------------------------------------------------------------- (b) save_weights

@pytest.fixture(scope="module")
def keras2_save_weights(tmp_path_factory):
    """Keras's own writer of the Keras 2 ``save_weights`` layout (top-level layer_names)."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)  # Keras names it conv2d / conv2d_N
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = keras.layers.SeparableConv2D(5, 3, padding="same", name="block1_sep")(x)  # var names tell
    x = keras.layers.Conv2DTranspose(2, 3)(x)  # conv2d_transpose: skipped by its name
    x = keras.layers.Conv2D(3, 3, name="block2_conv")(x)  # nothing tells: needs the mapping
    model = keras.Model(inp, x)
    for w in model.weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape).astype("float32"))
    path = tmp_path_factory.mktemp("k2") / "weights.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    kernels = {layer.name: [keras.ops.convert_to_numpy(v) for v in layer.weights] for layer in model.layers}
    return path, kernels, model


def test_keras2_save_weights_needs_a_mapping_only_where_names_do_not_tell(keras2_save_weights, tmp_path):
    path, kernels, model = keras2_save_weights
    with h5py.File(path, "r") as f:
        assert "layer_names" in f.attrs and "model_weights" not in f and "model_config" not in f.attrs
    assert sniff_format(path) == "keras"
    with pytest.raises(FormatError, match=r"weights\.h5: layer 'block2_conv' holds a 4-D weight of shape "
                                          r"\(3, 3, 2, 3\).*keras_layer_classes: \{'block2_conv': Conv2D\}"):
        formats.read(path, "keras")
    m = formats.read(path, "keras", layer_classes={"block2_conv": "Conv2D"})
    convs = {c.name: c for c in m.convs}
    conv_name = next(n for n in kernels if n.startswith("conv2d"))
    dw_name = next(n for n in kernels if n.startswith("depthwise_conv2d"))
    assert set(convs) == {conv_name, dw_name, "block1_sep/depthwise", "block1_sep/pointwise", "block2_conv"}
    np.testing.assert_array_equal(convs[conv_name].weight, dense(kernels[conv_name][0]))
    np.testing.assert_array_equal(convs[dw_name].weight, depthwise(kernels[dw_name][0]))
    np.testing.assert_array_equal(convs["block1_sep/depthwise"].weight, depthwise(kernels["block1_sep"][0]))
    np.testing.assert_array_equal(convs["block1_sep/pointwise"].weight, dense(kernels["block1_sep"][1]))
    np.testing.assert_array_equal(convs["block2_conv"].weight, dense(kernels["block2_conv"][0]))
    assert [c.name for c in sorted(m.convs, key=lambda c: c.level)][0] == conv_name  # stored order

    # the same through a catalog entry and the pipeline
    out = tmp_path / "out"
    with pytest.raises(FormatError, match=r"^k2-weights: .*keras_layer_classes"):
        extract_model(entry_for(path, "k2-weights"), out / "rel", out / "meta", root=tmp_path,
                      cache_dir=tmp_path / "cache", progress=False)
    mapped = entry_for(path, "k2-weights", keras_layer_classes={"block2_conv": "Conv2D"})
    (tmp_path / "catalog" / "models").mkdir(parents=True)
    (tmp_path / "catalog" / "models" / "k2-weights.yaml").write_text(yaml.safe_dump(mapped.model_dump()))
    row = extract_model(mapped, out / "rel", out / "meta", root=tmp_path, cache_dir=tmp_path / "cache",
                        progress=False)
    assert row["n_filters"] == 4 * 3 + 4 * 2 + 8 + 3 * 2  # conv2d, depthwise x2, separable on 8 channels, block2_conv


def test_a_wrong_mapping_is_refused(keras2_save_weights):
    path, _, _ = keras2_save_weights
    with pytest.raises(FormatError, match=r"keras_layer_classes: 'block2_conv' maps to 'Dense'; expected one of"):
        formats.read(path, "keras", layer_classes={"block2_conv": "Dense"})
    with pytest.raises(FormatError, match=r"keras_layer_classes names layers the file does not have: \['nope'\]"):
        formats.read(path, "keras", layer_classes={"block2_conv": "Conv2D", "nope": "Conv2D"})
    with pytest.raises(FormatError, match=r"format 'onnx' takes no keras_layer_classes"):
        formats.read(path, "onnx", layer_classes={"block2_conv": "Conv2D"})


# --------------------------------------------------------------------------- (c) Keras 3 subclassed

@pytest.fixture(scope="module")
def keras3_subclassed(tmp_path_factory):
    import keras

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv = keras.layers.Conv2D(4, 3, padding="same")
            self.dw = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)
            self.sep = keras.layers.SeparableConv2D(5, 3, padding="same")
            self.up = keras.layers.Conv2DTranspose(5, 3, padding="same")
            self.stack = [keras.layers.Conv2D(5, 3, padding="same"), keras.layers.Conv2D(5, 3, padding="same")]
            self.proj = keras.layers.Conv2D(5, 3, padding="same", name="proj")  # nothing tells its class

        def call(self, x):
            x = self.up(self.sep(self.dw(self.conv(x))))
            for layer in self.stack:
                x = layer(x)
            return self.proj(x)

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.stem = keras.layers.Conv2D(3, 3, padding="same", name="stem")  # saved as layers/conv2d
            self.block = Block()
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(self.block(self.stem(x)))

    keras.utils.set_random_seed(2)
    model = Net()
    model(np.zeros((1, 8, 8, 2), "float32"))
    for w in model.weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape).astype("float32"))
    path = tmp_path_factory.mktemp("k3") / "net.weights.h5"
    model.save_weights(path)
    return path, model


def test_keras3_subclassed_weights(keras3_subclassed, tmp_path, root):
    path, model = keras3_subclassed
    with h5py.File(path, "r") as f:
        groups = []
        f.visit(groups.append)
    assert {"block/stack/conv2d_1/vars", "block/proj/vars", "layers/conv2d/vars"} <= set(groups)
    assert sniff_format(path) == "keras"
    with pytest.raises(FormatError, match=r"net\.weights\.h5: layer 'proj' \(group block/proj\) holds a 4-D weight.*"
                                          r"keras_layer_classes: \{'block/proj': Conv2D\}"):
        formats.read(path, "keras")
    m = formats.read(path, "keras", layer_classes={"block/proj": "Conv2D"})
    convs = m.convs
    b = model.block
    want = [("stem", dense(model.stem.kernel.numpy())), (b.conv.name, dense(b.conv.kernel.numpy())),
            (b.dw.name, depthwise(b.dw.kernel.numpy())),
            (f"{b.sep.name}/depthwise", depthwise(b.sep.depthwise_kernel.numpy())),
            (f"{b.sep.name}/pointwise", dense(b.sep.pointwise_kernel.numpy())),
            (b.stack[0].name, dense(b.stack[0].kernel.numpy())), (b.stack[1].name, dense(b.stack[1].kernel.numpy())),
            ("proj", dense(b.proj.kernel.numpy()))]
    got = {c.name: c for c in convs}
    assert set(got) == {n for n, _ in want}  # the transposed conv is skipped, the Dense holds no 4-D kernel
    for name, expected in want:
        np.testing.assert_array_equal(got[name].weight, expected, err_msg=name)
    assert got[b.dw.name].kind == "depthwise" and got[b.dw.name].groups == 4

    # catalog add sniffs it; the kernel nothing names stops it with the mapping to write
    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", proj / "catalog")
    with pytest.raises(FormatError, match="keras_layer_classes"):
        add_entry(str(path), "net", root=proj, cache_dir=tmp_path / "cache")
