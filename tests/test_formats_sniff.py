"""Format sniffing from magic bytes, and the readers' shared refusals."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from safetensors.numpy import save_file

from cnn_filter_db import formats
from cnn_filter_db.errors import FormatError
from cnn_filter_db.formats.sniff import sniff_format
from tflite_writer import TfliteWriter


def _onnx_model(path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, producer_name="test"), str(path))


def test_sniffs_every_format(tmp_path):
    import h5py

    _onnx_model(tmp_path / "a.bin")
    torch.save({"w": torch.zeros(1)}, tmp_path / "b.bin")
    torch.save({"w": torch.zeros(1)}, tmp_path / "c.bin", _use_new_zipfile_serialization=False)
    save_file({"w": np.zeros(1, np.float32)}, str(tmp_path / "d.bin"))
    w = TfliteWriter()
    x = w.tensor("x", [1, 2, 2, 1])
    w.dequantize(w.const("c", np.zeros(1, np.float16)), x)
    (tmp_path / "e.bin").write_bytes(w.build([], [x]))
    with h5py.File(tmp_path / "f.bin", "w") as f:
        f.create_group("model_weights").attrs["layer_names"] = np.array([], dtype="S")
    with h5py.File(tmp_path / "g.bin", "w") as f:
        f.create_dataset("filters", data=np.zeros((1, 3, 3)))
        f.create_group("meta")
    (tmp_path / "h.bin").write_bytes(b"hello world, not weights")
    got = {p.name: sniff_format(p) for p in sorted(tmp_path.iterdir())}
    assert got == {"a.bin": "onnx", "b.bin": "pytorch", "c.bin": "pytorch", "d.bin": "safetensors",
                   "e.bin": "tflite", "f.bin": "keras", "g.bin": "hdf5-original", "h.bin": None}


def test_pytorch_reader_refuses_integer_conv_weights(tmp_path):
    torch.save({"conv.weight": torch.ones(2, 2, 3, 3, dtype=torch.int8)}, tmp_path / "q.pt")
    with pytest.raises(FormatError, match=r"q\.pt: tensor 'conv.weight' is a 4-D conv weight of dtype int8"):
        formats.read(tmp_path / "q.pt", "pytorch")


def test_pytorch_reader_dequantises_torch_quantised_tensors(tmp_path):
    w = torch.randn(2, 2, 3, 3)
    q = torch.quantize_per_tensor(w, scale=0.05, zero_point=3, dtype=torch.qint8)
    torch.save({"conv.weight": q}, tmp_path / "tq.pt")
    (conv,) = formats.read(tmp_path / "tq.pt", "pytorch").convs
    np.testing.assert_array_equal(conv.weight, q.dequantize().numpy())


def test_pytorch_reader_widens_bfloat16(tmp_path):
    w = torch.randn(2, 2, 3, 3).to(torch.bfloat16)
    torch.save({"conv.weight": w}, tmp_path / "bf.pt")
    (conv,) = formats.read(tmp_path / "bf.pt", "pytorch").convs
    np.testing.assert_array_equal(conv.weight, w.float().numpy())
