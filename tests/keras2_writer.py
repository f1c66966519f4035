"""A Keras 2 ``model.save`` file written with h5py (Keras 2 itself does not install here)."""
from __future__ import annotations

import json

import h5py
import numpy as np


def write_keras2_h5(path, kernels: dict[str, np.ndarray], optimizer_fill: float = 7.0,
                    conv2_class: str = "Conv2D") -> None:
    """A Keras 2 ``model.save`` file: model_config, model_weights (names with ':0', a nested
    model), and optimizer_weights holding arrays of the kernels' shapes with other values."""
    layers = [
        {"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 8, 8, 3]}},
        {"class_name": "Conv2D", "config": {"name": "conv1", "filters": 4, "kernel_size": [3, 3], "groups": 1}},
        {"class_name": "Functional", "config": {"name": "backbone", "layers": [
            {"class_name": "InputLayer", "config": {"name": "input_2"}},
            {"class_name": "DepthwiseConv2D", "config": {"name": "dwise", "depth_multiplier": 1}},
            {"class_name": "SeparableConv2D", "config": {"name": "sep", "filters": 6}},
        ]}},
        {"class_name": "BatchNormalization", "config": {"name": "bn"}},
        {"class_name": conv2_class, "config": {"name": "conv2", "filters": 6, "kernel_size": [3, 3], "groups": 2}},
    ]
    config = {"class_name": "Functional", "config": {"name": "model", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.10.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"input_1", b"conv1", b"backbone", b"bn", b"conv2"])
        weights = {
            "input_1": [],
            "conv1": [("conv1/kernel:0", kernels["conv1"]), ("conv1/bias:0", np.ones(4, np.float32))],
            "backbone": [("dwise/depthwise_kernel:0", kernels["dwise"]), ("dwise/bias:0", np.ones(4, np.float32)),
                         ("sep/depthwise_kernel:0", kernels["sep_d"]), ("sep/pointwise_kernel:0", kernels["sep_p"]),
                         ("sep/bias:0", np.ones(6, np.float32))],
            "bn": [("bn/gamma:0", np.ones(6, np.float32)), ("bn/beta:0", np.zeros(6, np.float32))],
            "conv2": [("conv2/kernel:0", kernels["conv2"])],
        }
        for layer, ws in weights.items():
            g = mw.create_group(layer)
            g.attrs["weight_names"] = np.array([n.encode() for n, _ in ws], dtype="S")
            for name, value in ws:
                g.create_dataset(name, data=value)
        ow = f.create_group("optimizer_weights")
        names = []
        for layer, ws in weights.items():
            for name, value in ws:
                for slot in ("m", "v"):
                    n = f"Adam/{name.replace(':0', '')}/{slot}:0"
                    ow.create_dataset(n, data=np.full_like(value, optimizer_fill))
                    names.append(n.encode())
        ow.attrs["weight_names"] = np.array(names, dtype="S")
