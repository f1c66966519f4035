"""ONNX graphs: Conv weights from initializers or Constant nodes, groups from the attribute,
depth as the longest data path from the graph inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import register
from .base import Conv, ModelConvs

# Ops that pass a tensor through unchanged; a weight reached through them is still a weight.
_PASS_THROUGH = {"Identity", "Cast"}


@register("onnx")
def read_onnx(path: Path) -> ModelConvs:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise FormatError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    graph = model.graph
    if not graph.node:
        raise FormatError(f"{path}: not a readable ONNX model (the graph has no nodes)")

    constants: dict[str, object] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    # Tensors computed only from constants (e.g. Identity of an initializer) are constants too.
    producers = {out: node for node in graph.node for out in node.output}

    def resolve(name: str):
        seen = 0
        while name not in constants and name in producers and seen < 16:
            node = producers[name]
            if node.op_type not in _PASS_THROUGH:
                return None
            name = node.input[0]
            seen += 1
        return constants.get(name)

    depth = _data_depths(graph, set(constants))

    convs: list[Conv] = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue  # ConvTranspose and others are not filters of this database
        tensor = resolve(node.input[1])
        if tensor is None:
            producer = producers.get(node.input[1])
            how = f"computed by a {producer.op_type} node" if producer is not None else "a graph input"
            raise FormatError(f"{path}: Conv {node.name or node.output[0]!r}: its weight {node.input[1]!r} is {how}, "
                              "not a stored tensor; constant folding is not supported (fold the graph first, "
                              "e.g. with onnxsim)")
        if getattr(tensor, "data_location", 0) == onnx.TensorProto.EXTERNAL:
            raise FormatError(f"{path}: Conv {node.name!r}: its weight is stored in an external data file; "
                              "only self-contained ONNX files are read")
        try:
            w = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise FormatError(f"{path}: Conv {node.name!r}: unreadable weight tensor ({exc})") from None
        if w.ndim != 4:
            continue  # 1-D and 3-D convolutions
        groups = 1
        for attr in node.attribute:
            if attr.name == "group":
                groups = int(attr.i)
        name = node.name or node.output[0]
        convs.append(Conv(name=name, weight=np.asarray(w, dtype=np.float32), groups=groups,
                          level=depth.get(node.output[0], 0)))
    return ModelConvs(convs=convs, format="onnx", framework_versions={"onnx": onnx.__version__})


def _data_depths(graph, constant_names: set[str]) -> dict[str, int]:
    """Depth of every tensor on the data path: graph inputs are 0, a node adds 1.

    Nodes fed only by weights or constants add no depth (their outputs stay constant).
    The ONNX spec requires topological node order, but files in the wild break it: nodes
    are visited in a topological order computed here (Kahn), so order never changes depth.
    """
    nodes = list(graph.node)
    produced_by = {out: i for i, n in enumerate(nodes) for out in n.output}
    waiting = [sum(1 for x in set(n.input) if x in produced_by) for n in nodes]
    consumers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in set(n.input):
            if x in produced_by:
                consumers.setdefault(produced_by[x], []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    depth: dict[str, int] = {i.name: 0 for i in graph.input if i.name not in constant_names}
    visited = 0
    while ready:
        i = ready.pop(0)
        visited += 1
        data_in = [depth[x] for x in nodes[i].input if x in depth]
        if data_in:  # else a constant-only node
            for out in nodes[i].output:
                depth[out] = max(data_in) + 1
        for j in consumers.get(i, []):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if visited != len(nodes):
        raise FormatError(f"the graph {graph.name!r} has a cycle; not a valid ONNX model")
    return depth
