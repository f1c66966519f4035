"""TFLite reader: flatbuffers written with the schema package, run by the LiteRT interpreter
to prove they are real models, and read back element for element."""
from __future__ import annotations

import numpy as np
import pytest
import tflite
import torch

from cnn_filter_db import formats
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import layers_of
from tflite_writer import TfliteWriter


def ohwi_to_oihw(k):
    o, h, w, i = k.shape
    e = np.empty((o, i, h, w), np.float32)
    for a in range(o):
        for b in range(i):
            for y in range(h):
                for x in range(w):
                    e[a, b, y, x] = k[a, y, x, b]
    return e


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """input -> CONV_2D (float32) -> DEPTHWISE_CONV_2D (float16 behind DEQUANTIZE, multiplier 2)
    -> grouped CONV_2D (int8, per-channel scales, behind DEQUANTIZE) -> CONV_2D 1x1 (int8 fed
    straight in, per-tensor scale: a hybrid conv)."""
    rng = np.random.default_rng(0)
    w = TfliteWriter()
    k = {"conv1": rng.normal(size=(6, 3, 3, 4)).astype(np.float32),
         "dw": rng.normal(size=(1, 3, 3, 12)).astype(np.float16),
         "grouped_q": rng.integers(-127, 128, size=(4, 3, 3, 6)).astype(np.int8),
         "grouped_scale": rng.uniform(0.001, 0.05, size=4).astype(np.float32),
         "head_q": rng.integers(-127, 128, size=(5, 1, 1, 4)).astype(np.int8),
         "head_scale": np.float32(0.0123),
         "conv1_bias": rng.normal(size=6).astype(np.float32)}
    x = w.tensor("input", [1, 8, 8, 4])
    y1 = w.tensor("conv1", [1, 8, 8, 6])
    w.conv(x, w.const("conv1/w", k["conv1"]), w.const("conv1/b", k["conv1_bias"]), y1)
    dw16 = w.const("dw/w_f16", k["dw"])
    dw32 = w.tensor("dw/w", [1, 3, 3, 12])
    w.dequantize(dw16, dw32)
    y2 = w.tensor("dw", [1, 8, 8, 12])
    w.depthwise(y1, dw32, w.const("dw/b", np.zeros(12, np.float32)), y2, multiplier=2)
    gq = w.const("grouped/w_q", k["grouped_q"], scale=k["grouped_scale"], zero_point=np.zeros(4), axis=0)
    g32 = w.tensor("grouped/w", [4, 3, 3, 6])
    w.dequantize(gq, g32)
    y3 = w.tensor("grouped", [1, 8, 8, 4])
    w.conv(y2, g32, w.const("grouped/b", np.zeros(4, np.float32)), y3)
    hq = w.const("head/w_q", k["head_q"], scale=k["head_scale"], zero_point=0)
    y4 = w.tensor("head", [1, 8, 8, 5])
    w.conv(y3, hq, w.const("head/b", np.zeros(5, np.float32)), y4)
    path = tmp_path_factory.mktemp("tflite") / "toy.tflite"
    path.write_bytes(w.build([x], [y4]))
    return path, k


def test_values_element_for_element(model):
    path, k = model
    m = formats.read(path, "tflite")
    convs = {c.name: c for c in m.convs}
    assert list(convs) == ["conv1", "dw", "grouped", "head"]
    np.testing.assert_array_equal(convs["conv1"].weight, ohwi_to_oihw(k["conv1"]))
    # float16 -> float32 is exact
    dw = k["dw"].astype(np.float32)
    for c in range(12):
        np.testing.assert_array_equal(convs["dw"].weight[c, 0], dw[0, :, :, c])
    # int8 per channel: (q - 0) * scale[out], one rounding to float32
    want = ohwi_to_oihw(k["grouped_q"].astype(np.float64) * k["grouped_scale"].astype(np.float64)[:, None, None, None])
    np.testing.assert_array_equal(convs["grouped"].weight, want)
    want = ohwi_to_oihw(k["head_q"].astype(np.float64) * np.float64(k["head_scale"]))
    np.testing.assert_array_equal(convs["head"].weight, want)
    assert convs["dw"].kind == "depthwise" and convs["dw"].groups == 6
    assert convs["grouped"].groups == 2 and convs["conv1"].groups == 1
    assert all(c.weight.dtype == np.float32 for c in m.convs)


def test_levels_follow_the_data_path(model):
    path, _ = model
    convs = formats.read(path, "tflite").convs
    assert [c.level for c in convs] == [1, 2, 3, 4]  # DEQUANTIZE of a constant adds no depth
    rows = [layer.row for layer in layers_of("toy", convs)]
    assert [(r["layer_name"], r["conv_kind"], r["conv_depth"]) for r in rows] == [
        ("conv1", "dense", 0), ("dw", "depthwise", 1), ("grouped", "grouped", 2)]
    assert rows[-1]["conv_depth_norm"] == pytest.approx(2 / 3)


def test_litert_runs_the_file_and_our_weights_reproduce_it(model):
    """The interpreter computes the graph from the file; torch computes it from what we read."""
    from ai_edge_litert.interpreter import Interpreter

    path, k = model
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    x = np.random.default_rng(5).normal(size=(1, 8, 8, 4)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    convs = formats.read(path, "tflite").convs
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    for c in convs:
        pad = c.weight.shape[-1] // 2
        t = torch.nn.functional.conv2d(t, torch.from_numpy(c.weight), padding=pad, groups=c.groups)
        if c.name == "conv1":
            t = t + torch.from_numpy(k["conv1_bias"])[None, :, None, None]
    got = t.permute(0, 2, 3, 1).numpy()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    # the hybrid int8 conv quantises its input on the fly, so compare at that precision
    np.testing.assert_allclose(got, want, rtol=0.02, atol=0.02 * np.abs(want).max())


def test_uint8_with_zero_point_is_dequantised(tmp_path):
    q = np.arange(2 * 3 * 3 * 1, dtype=np.uint8).reshape(2, 3, 3, 1) + 120
    w = TfliteWriter()
    x = w.tensor("x", [1, 4, 4, 1])
    y = w.tensor("y", [1, 4, 4, 2])
    w.conv(x, w.const("w", q, scale=0.5, zero_point=128), w.const("b", np.zeros(2, np.float32)), y)
    path = tmp_path / "u8.tflite"
    path.write_bytes(w.build([x], [y]))
    (conv,) = formats.read(path, "tflite").convs
    np.testing.assert_array_equal(conv.weight, ohwi_to_oihw((q.astype(np.float32) - 128) * 0.5))


# --------------------------------------------------------------------------- bad input

def _one_conv(filter_tensor_fn) -> bytes:
    w = TfliteWriter()
    x = w.tensor("x", [1, 4, 4, 2])
    y = w.tensor("y", [1, 4, 4, 3])
    wt = filter_tensor_fn(w, x)
    w.conv(x, wt, w.const("b", np.zeros(3, np.float32)), y)
    return w.build([x], [y])


def test_int8_without_scale_is_refused(tmp_path):
    path = tmp_path / "noscale.tflite"
    path.write_bytes(_one_conv(lambda w, x: w.const("w", np.ones((3, 3, 3, 2), np.int8))))
    with pytest.raises(FormatError, match=r"noscale\.tflite: CONV_2D 'y': quantised int8 filter without a stored scale"):
        formats.read(path, "tflite")


def test_filter_computed_at_run_time_is_refused(tmp_path):
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(_one_conv(lambda w, x: w.tensor("w_in", [3, 3, 3, 2])))
    with pytest.raises(FormatError, match=r"dynamic\.tflite: CONV_2D 'y': the filter is computed at run time"):
        formats.read(path, "tflite")


def test_unsupported_filter_dtype_is_refused(tmp_path):
    path = tmp_path / "int32.tflite"
    path.write_bytes(_one_conv(lambda w, x: w.const("w", np.ones((3, 3, 3, 2), np.int32))))
    with pytest.raises(FormatError, match=r"int32\.tflite: CONV_2D 'y': filter of dtype INT32 is not supported"):
        formats.read(path, "tflite")


def test_nan_filter_is_refused_by_extraction(tmp_path):
    k = np.ones((3, 3, 3, 2), np.float32)
    k[1, 1, 1, 0] = np.nan
    path = tmp_path / "nan.tflite"
    path.write_bytes(_one_conv(lambda w, x: w.const("w", k)))
    convs = formats.read(path, "tflite").convs
    with pytest.raises(FormatError, match=r"entry-x: layer 'y' holds 1 NaN or infinite weights"):
        layers_of("entry-x", convs)


def test_truncated_file_is_refused_at_any_cut(model, tmp_path):
    path, _ = model
    data = path.read_bytes()
    for cut in (12, 40, 200, len(data) // 2, len(data) - 8):
        bad = tmp_path / f"cut{cut}.tflite"
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=rf"cut{cut}\.tflite: (corrupt or truncated|not a TFLite|truncated)"):
            formats.read(bad, "tflite")


def test_extension_that_lies_names_the_real_format(tmp_path, model):
    from safetensors.numpy import save_file

    bad = tmp_path / "model.tflite"
    save_file({"conv.weight": np.zeros((2, 2, 3, 3), np.float32)}, str(bad))
    with pytest.raises(FormatError, match=r"model\.tflite: not a TFLite flatbuffer .*safetensors"):
        formats.read(bad, "tflite")
    path, _ = model
    with pytest.raises(FormatError, match=r"toy\.tflite: not a safetensors file.*tflite"):
        formats.read(path, "safetensors")
    assert tflite.Model.ModelBufferHasIdentifier(path.read_bytes(), 0)


def test_depthwise_groups_from_the_multiplier_when_the_input_shape_is_unknown(tmp_path):
    w = TfliteWriter()
    x = w.tensor("x", [1, 4, 4, -1])  # dynamic channels
    y = w.tensor("y", [1, 4, 4, 6])
    w.depthwise(x, w.const("w", np.ones((1, 3, 3, 6), np.float32)), w.const("b", np.zeros(6, np.float32)), y,
                multiplier=2)
    path = tmp_path / "dyn.tflite"
    path.write_bytes(w.build([x], [y]))
    (conv,) = formats.read(path, "tflite").convs
    assert (conv.groups, conv.kind, conv.weight.shape) == (3, "depthwise", (6, 1, 3, 3))
