"""safetensors reader: files written by safetensors itself (numpy and torch writers)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch

from cnn_filter_db import formats
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import layers_of


def _rng_tensors():
    rng = np.random.default_rng(0)
    return {
        "features.0.weight": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
        "features.0.bias": rng.normal(size=8).astype(np.float32),
        "features.2.weight": rng.normal(size=(8, 1, 3, 3)).astype(np.float32),  # depthwise by the rule
        "features.10.weight": rng.normal(size=(16, 8, 1, 1)).astype(np.float32),
        "features.10.running_mean": rng.normal(size=16).astype(np.float32),
        "head.fc.weight": rng.normal(size=(10, 16)).astype(np.float32),
    }


def test_values_and_natural_order(tmp_path):
    tensors = _rng_tensors()
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    m = formats.read(path, "safetensors")
    assert m.format == "safetensors"
    # safetensors stores keys sorted as text (features.0, features.10, features.2): numbers are
    # compared as numbers to restore the order of the module
    assert [(c.name, c.level) for c in m.convs] == [("features.0", 0), ("features.2", 1), ("features.10", 2)]
    for c in m.convs:
        np.testing.assert_array_equal(c.weight, tensors[c.name + ".weight"])
        assert c.groups is None and c.weight.dtype == np.float32
    rows = [layer.row for layer in layers_of("st", m.convs)]
    assert [(r["layer_name"], r["conv_kind"]) for r in rows] == [("features.0", "dense"), ("features.2", "depthwise")]


def test_explicit_order_in_metadata(tmp_path):
    tensors = _rng_tensors()
    path = tmp_path / "ordered.safetensors"
    save_file(tensors, str(path), metadata={"order": json.dumps(["features.10.weight", "features.0.weight"])})
    names = [c.name for c in sorted(formats.read(path, "safetensors").convs, key=lambda c: c.level)]
    assert names == ["features.10", "features.0", "features.2"]  # listed first, the rest in natural order


def test_same_convs_as_the_torch_state_dict(tmp_path):
    """A torch module saved both ways: the two readers agree name for name, value for value."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Conv2d(4 if i else 3, 4, 3) for i in range(12)])
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_torch(state, str(tmp_path / "net.safetensors"))
    torch.save(state, tmp_path / "net.pt")
    a = formats.read(tmp_path / "net.safetensors", "safetensors").convs
    b = formats.read(tmp_path / "net.pt", "pytorch").convs
    assert [c.name for c in a] == [c.name for c in b] == [str(i) for i in range(12)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.weight, y.weight)
        assert x.level == y.level


def test_half_precision_widened_exactly(tmp_path):
    torch.manual_seed(1)
    bf = torch.randn(4, 2, 3, 3, dtype=torch.bfloat16)
    fp = torch.randn(4, 4, 3, 3, dtype=torch.float16)
    save_torch({"a.weight": bf, "b.weight": fp}, str(tmp_path / "half.safetensors"))
    convs = {c.name: c for c in formats.read(tmp_path / "half.safetensors", "safetensors").convs}
    np.testing.assert_array_equal(convs["a"].weight, bf.float().numpy())
    np.testing.assert_array_equal(convs["b"].weight, fp.float().numpy())


# --------------------------------------------------------------------------- bad input

def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(_rng_tensors(), str(path))
    data = path.read_bytes()
    for cut in (4, 20, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=rf"cut{cut}\.safetensors: (not a safetensors file|truncated)"):
            formats.read(bad, "safetensors")


def test_extension_that_lies_names_the_real_format(tmp_path):
    torch.save({"conv.weight": torch.zeros(2, 2, 3, 3)}, tmp_path / "model.safetensors")
    with pytest.raises(FormatError, match=r"model\.safetensors: not a safetensors file.*PyTorch file: format 'pytorch'"):
        formats.read(tmp_path / "model.safetensors", "safetensors")


def test_nan_kernel_is_refused_by_extraction(tmp_path):
    tensors = _rng_tensors()
    tensors["features.2.weight"][3, 0, 1, 1] = np.nan
    save_file(tensors, str(tmp_path / "nan.safetensors"))
    convs = formats.read(tmp_path / "nan.safetensors", "safetensors").convs
    with pytest.raises(FormatError, match=r"the-entry: layer 'features.2' holds 1 NaN or infinite weights"):
        layers_of("the-entry", convs)


def test_integer_and_fp8_conv_weights_are_refused(tmp_path):
    save_file({"q.weight": np.ones((2, 2, 3, 3), np.int8)}, str(tmp_path / "int8.safetensors"))
    with pytest.raises(FormatError, match=r"int8\.safetensors: tensor 'q.weight' is a 4-D conv weight of dtype int8"):
        formats.read(tmp_path / "int8.safetensors", "safetensors")
    save_torch({"f8.weight": torch.zeros(2, 2, 3, 3).to(torch.float8_e4m3fn)}, str(tmp_path / "fp8.safetensors"))
    with pytest.raises(FormatError, match=r"fp8\.safetensors: tensor 'f8.weight' has dtype F8_E4M3, which is not supported"):
        formats.read(tmp_path / "fp8.safetensors", "safetensors")


def test_bad_order_metadata_is_refused(tmp_path):
    save_file(_rng_tensors(), str(tmp_path / "o.safetensors"), metadata={"order": "features.0.weight"})
    with pytest.raises(FormatError, match=r"o\.safetensors: __metadata__\['order'\] must be a JSON list"):
        formats.read(tmp_path / "o.safetensors", "safetensors")
    save_file(_rng_tensors(), str(tmp_path / "u.safetensors"), metadata={"order": '["nope.weight"]'})
    with pytest.raises(FormatError, match=r"names tensors the file does not hold: \['nope.weight'\]"):
        formats.read(tmp_path / "u.safetensors", "safetensors")
