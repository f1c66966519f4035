"""Readers and extraction on small model files the tests write with the formats' own writers."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from cnn_filter_db import extract, formats
from cnn_filter_db.errors import FormatError


def conv_node(name, x, w, y, group=1):
    return helper.make_node("Conv", [x, w], [y], name=name, group=group)


def write_onnx(path, nodes, inits, constants=()):
    graph = helper.make_graph(
        list(constants) + nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_onnx_depth_groups_constants_and_exclusions(tmp_path):
    rng = np.random.default_rng(0)
    w = {
        "w_stem": rng.standard_normal((8, 4, 3, 3), dtype=np.float32),
        "w_a": rng.standard_normal((8, 8, 3, 3), dtype=np.float32),       # branch a
        "w_b": rng.standard_normal((8, 8, 1, 1), dtype=np.float32),       # branch b, parallel to a
        "w_dw": rng.standard_normal((16, 1, 3, 3), dtype=np.float32),     # depthwise, multiplier 2
        "w_g": rng.standard_normal((16, 8, 3, 3), dtype=np.float32),      # 2 groups
        "w_13": rng.standard_normal((16, 16, 1, 3), dtype=np.float32),    # 1x3: excluded
        "w_t": rng.standard_normal((16, 4, 3, 3), dtype=np.float32),      # ConvTranspose: excluded
    }
    const_w = rng.standard_normal((4, 16, 3, 3), dtype=np.float32)
    constants = [
        helper.make_node("Constant", [], ["w_const"], value=numpy_helper.from_array(const_w, "w_const")),
        # a constant-only chain (adds no depth): Identity of an initializer
        helper.make_node("Identity", ["w_a"], ["w_a_id"], name="id"),
    ]
    nodes = [
        conv_node("stem", "x", "w_stem", "s"),
        conv_node("a", "s", "w_a_id", "a"),
        conv_node("b", "s", "w_b", "b"),
        helper.make_node("Add", ["a", "b"], ["ab"], name="add"),
        conv_node("dw", "ab", "w_dw", "d", group=8),
        conv_node("g", "d", "w_g", "gg", group=2),
        conv_node("k13", "gg", "w_13", "k"),
        conv_node("last", "k", "w_const", "l"),
        helper.make_node("ConvTranspose", ["l", "w_t"], ["out"], name="up"),
    ]
    path = tmp_path / "m.onnx"
    write_onnx(path, nodes, {k: v for k, v in w.items()}, constants)
    convs = formats.read(path, "onnx").convs
    assert [c.name for c in convs] == ["stem", "a", "b", "dw", "g", "k13", "last"]
    levels = {c.name: c.level for c in convs}
    assert levels["a"] == levels["b"] == levels["stem"] + 1  # parallel branches share a level
    assert levels["dw"] == levels["a"] + 2  # the Add between them counts
    layers = extract.layers_of("m", convs)
    rows = {layer.row["layer_name"]: layer.row for layer in layers}
    assert list(rows) == ["stem", "a", "dw", "g", "last"]
    assert [r["conv_depth"] for r in rows.values()] == [0, 1, 2, 3, 5]  # k13 holds level 4
    assert rows["last"]["conv_depth_norm"] == 1.0
    assert rows["dw"]["conv_kind"] == "depthwise" and rows["dw"]["groups"] == 8
    assert rows["g"]["conv_kind"] == "grouped" and rows["g"]["in_channels_per_group"] == 8
    assert rows["stem"]["conv_kind"] == "dense" and rows["stem"]["n_filters"] == 32
    np.testing.assert_array_equal(layers[-1].weight, const_w)  # weights from a Constant node


def test_c_order_rows_match_kernels(tmp_path):
    from cnn_filter_db.dataset import writer

    w = np.arange(4 * 3 * 9, dtype=np.float32).reshape(4, 3, 3, 3)
    batch = next(writer.filter_batches("m", 7, w, 1000))
    assert batch.num_rows == 12
    outs = batch.column("out_channel").to_numpy()
    ins = batch.column("in_channel").to_numpy()
    vals = batch.column("weights").values.to_numpy().reshape(-1, 9)
    for o, i, v in zip(outs, ins, vals):
        np.testing.assert_array_equal(v, w[o, i].ravel())  # row-major k[0,0], k[0,1], ...
    assert list(zip(outs, ins))[:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 8, 3)              # grayscale stem: dense
        self.dw = torch.nn.Conv2d(8, 8, 3, groups=8)       # depthwise
        self.pw = torch.nn.Conv2d(8, 16, 1)
        self.up = torch.nn.ConvTranspose2d(16, 4, 3)       # 4-D too: a state dict cannot tell
        self.fc = torch.nn.Linear(4, 2)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("wrap", ["plain", "module", "nested"])
def test_state_dicts_both_serialisations(tmp_path, zip_format, wrap):
    torch.manual_seed(0)
    net = Net()
    sd = net.state_dict()
    if wrap == "module":
        sd = {f"module.{k}": v for k, v in sd.items()}
    elif wrap == "nested":
        sd = {"epoch": 3, "state_dict": sd}
    path = tmp_path / "net.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    convs = formats.read(path, "pytorch").convs
    assert [c.name for c in convs] == ["stem", "dw", "pw", "up"]
    layers = extract.layers_of("net", convs, {"up": "dense"})
    kinds = {layer.row["layer_name"]: layer.row["conv_kind"] for layer in layers}
    assert kinds == {"stem": "dense", "dw": "depthwise", "up": "dense"}
    np.testing.assert_array_equal(layers[1].weight, net.dw.weight.detach().numpy())


class Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_unpickling_arbitrary_objects_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2, 2, 3, 3), "obj": Payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(FormatError, match="refused: the file needs arbitrary Python objects unpickled"):
        formats.read(path, "pytorch")
    assert not marker.exists()


def test_wrong_or_truncated_files(tmp_path):
    torch.manual_seed(0)
    good = tmp_path / "net.pth"
    torch.save(Net().state_dict(), good)
    with pytest.raises(FormatError, match="not a readable ONNX model"):
        formats.read(good, "onnx")  # a torch file declared as ONNX
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(FormatError, match="not a PyTorch file"):
        formats.read(junk, "pytorch")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FormatError, match=str(cut)):
        formats.read(cut, "pytorch")
    with pytest.raises(FormatError, match="format 'caffe' is not supported"):
        formats.read(good, "caffe")


def test_nan_kernel_is_refused():
    from cnn_filter_db.formats.base import Conv

    w = np.zeros((2, 2, 3, 3), np.float32)
    w[1, 0, 2, 2] = np.nan
    with pytest.raises(FormatError, match="layer 'bad' holds 1 NaN or infinite"):
        extract.layers_of("m", [Conv("bad", w, None, 0)])


def test_override_of_unknown_layer_is_an_error():
    from cnn_filter_db.formats.base import Conv

    with pytest.raises(FormatError, match="nope"):
        extract.layers_of("m", [Conv("a", np.zeros((2, 2, 3, 3), np.float32), 1, 0)], {"nope": "dense"})


def test_onnx_node_order_does_not_change_depth_and_computed_weights_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    inits = {"w1": rng.standard_normal((4, 4, 3, 3), dtype=np.float32),
             "w2": rng.standard_normal((4, 4, 3, 3), dtype=np.float32)}
    nodes = [conv_node("c1", "x", "w1", "a"), helper.make_node("Relu", ["a"], ["r"], name="relu"),
             conv_node("c2", "r", "w2", "out")]
    straight, shuffled = tmp_path / "s.onnx", tmp_path / "u.onnx"
    write_onnx(straight, nodes, inits)
    write_onnx(shuffled, nodes[::-1], inits)  # breaks the spec's topological order
    levels = [{c.name: c.level for c in formats.read(p, "onnx").convs} for p in (straight, shuffled)]
    assert levels[0] == levels[1] == {"c1": 1, "c2": 3}

    scaled = tmp_path / "scaled.onnx"
    inits["two"] = np.float32([2.0])
    write_onnx(scaled, [helper.make_node("Mul", ["w1", "two"], ["w1x2"], name="scale"),
                        conv_node("c1", "x", "w1x2", "out")], inits)
    with pytest.raises(FormatError, match="weight 'w1x2' is computed by a Mul node"):
        formats.read(scaled, "onnx")


def test_onnx_external_data_is_refused(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    rng = np.random.default_rng(0)
    path = tmp_path / "ext.onnx"
    write_onnx(path, [conv_node("c1", "x", "w1", "out")], {"w1": rng.standard_normal((64, 4, 3, 3), dtype=np.float32)})
    model = onnx.load(str(path))
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, str(path))
    with pytest.raises(FormatError, match="external data file"):
        formats.read(path, "onnx")
