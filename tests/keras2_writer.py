"""A Keras 2 ``model.save`` file written with h5py (Keras 2 itself does not install here)."""
from __future__ import annotations

import json

import h5py
import numpy as np



def write_layer_groups(group, weights: dict) -> None:
    """One subgroup a layer under ``group``, its ``weight_names`` attribute and datasets, as Keras 2 writes them."""
    for layer, ws in weights.items():
        g = group.create_group(layer)
        g.attrs["weight_names"] = np.array([n.encode() for n, _ in ws], dtype="S")
        for name, value in ws:
            g.create_dataset(name, data=value)

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
        write_layer_groups(mw, weights)
        ow = f.create_group("optimizer_weights")
        names = []
        for layer, ws in weights.items():
            for name, value in ws:
                for slot in ("m", "v"):
                    n = f"Adam/{name.replace(':0', '')}/{slot}:0"
                    ow.create_dataset(n, data=np.full_like(value, optimizer_fill))
                    names.append(n.encode())
        ow.attrs["weight_names"] = np.array(names, dtype="S")


def write_keras21_h5(path, kernels: dict[str, np.ndarray]) -> None:
    """A Keras 2.1 ``model.save`` file as it lays them out under TensorFlow: weight groups
    named after uniquified name scopes (``conv1_1/kernel:0`` under ``model_weights/conv1``),
    a nested Sequential whose inner scopes are uniquified too, and optimizer weights named
    ``training/Adam/Variable:0`` shaped like the kernels."""
    layers = [
        {"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 8, 8, 3]},
         "name": "input_1", "inbound_nodes": []},
        {"class_name": "Conv2D", "config": {"name": "conv1", "filters": 4, "kernel_size": [3, 3]},
         "name": "conv1", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Sequential", "config": [
            {"class_name": "DepthwiseConv2D", "config": {"name": "dwise", "depth_multiplier": 1}},
            {"class_name": "SeparableConv2D", "config": {"name": "sep", "filters": 6}}],
         "name": "backbone", "inbound_nodes": [[["conv1", 0, 0, {}]]]},
        {"class_name": "Conv2D", "config": {"name": "conv2", "filters": 6, "kernel_size": [3, 3]},
         "name": "conv2", "inbound_nodes": [[["backbone", 1, 0, {}]]]},
    ]
    # Keras 2.1 Sequential configs are the bare layer list; the nested one names itself only
    # in the outer entry
    layers[2]["config"] = {"name": "backbone", "layers": layers[2]["config"]}
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                               "input_layers": [["input_1", 0, 0]], "output_layers": [["conv2", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.6"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps({"optimizer_config": {"class_name": "Adam"}}).encode()
        mw = f.create_group("model_weights")
        mw.attrs["keras_version"] = b"2.1.6"
        mw.attrs["backend"] = b"tensorflow"
        mw.attrs["layer_names"] = np.array([b"input_1", b"conv1", b"backbone", b"conv2"])
        weights = {
            "input_1": [],
            "conv1": [("conv1_1/kernel:0", kernels["conv1"]), ("conv1_1/bias:0", np.ones(4, np.float32))],
            "backbone": [("dwise_1/depthwise_kernel:0", kernels["dwise"]), ("dwise_1/bias:0", np.ones(4, np.float32)),
                         ("sep_1/depthwise_kernel:0", kernels["sep_d"]),
                         ("sep_1/pointwise_kernel:0", kernels["sep_p"]), ("sep_1/bias:0", np.ones(6, np.float32))],
            "conv2": [("conv2_1/kernel:0", kernels["conv2"]), ("conv2_1/bias:0", np.ones(6, np.float32))],
        }
        write_layer_groups(mw, weights)
        ow = f.create_group("optimizer_weights")
        names = []
        for i, (name, value) in enumerate(w for ws in weights.values() for w in ws):
            n = f"training/Adam/Variable_{i}:0" if i else "training/Adam/Variable:0"
            ow.create_dataset(n, data=np.full_like(value, 7.0))
            names.append(n.encode())
        ow.attrs["weight_names"] = np.array(names, dtype="S")
