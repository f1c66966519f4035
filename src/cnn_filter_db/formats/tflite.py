"""TFLite flatbuffers, parsed with the ``tflite`` schema package (no TensorFlow needed).

``CONV_2D`` filters are stored OHWI and become (O, I, kh, kw); groups are the input tensor's
channels over I where the input shape says (TFLite runs grouped convs that way), else 1.
``DEPTHWISE_CONV_2D`` filters are 1HWC with C = in_channels * multiplier, output channel
c*multiplier + m; they become (C, 1, kh, kw), marked depthwise. ``TRANSPOSE_CONV`` and 3-D
convs are not filters of this database and are skipped.

Filter values: float32 buffers as stored; float16 and bfloat16 widened to float32 (exact),
also when a ``DEQUANTIZE`` op sits between the constant and the conv; int8, uint8 and int16
weights dequantised with their stored scale and zero point, per tensor or per channel
(``(q - zero_point) * scale``, rounded once to float32, as TFLite does). Quantised weights
without a scale, int4 and sparse weights, and filters computed at run time are refused.

Level: the longest data path from the subgraph inputs, counting the operators on it;
operators fed only by constants (a ``DEQUANTIZE`` of a weight) add no depth. Convs of
further subgraphs (control-flow bodies) follow those of the main one, levels offset past it.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import register
from .base import Conv, ModelConvs
from .sniff import mismatch_hint

_QUANTISED = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}
_FLOATS = {"FLOAT32": "<f4", "FLOAT16": "<f2", "FLOAT64": "<f8"}


@register("tflite")
def read_tflite(path: Path) -> ModelConvs:
    import tflite

    path = Path(path)
    size = path.stat().st_size
    if size < 16:
        raise FormatError(f"{path}: not a TFLite flatbuffer (only {size} bytes){mismatch_hint(path, 'tflite')}")
    with open(path, "rb") as fh:
        if fh.read(8)[4:8] != b"TFL3":
            raise FormatError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier){mismatch_hint(path, 'tflite')}")
    # Read whole: TFLite models are made for phones, and flatbuffers needs random access.
    buf = path.read_bytes()
    try:
        convs = _read_model(tflite.Model.GetRootAs(buf, 0), buf, path)
    except (struct.error, IndexError, ValueError, TypeError) as exc:
        # flatbuffers reads fields lazily: a truncated or corrupt file fails on first access
        raise FormatError(f"{path}: corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    return ModelConvs(convs=convs, format="tflite", framework_versions={"tflite (schema)": tflite.__version__})


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _read_model(model, buf, path: Path) -> list[Conv]:
    import tflite

    op_names = _names(tflite.BuiltinOperator)
    type_names = _names(tflite.TensorType)
    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        # deprecated_builtin_code is an int8 kept for old readers; the larger of the two is the code
        opcodes.append(op_names.get(max(oc.DeprecatedBuiltinCode(), oc.BuiltinCode()), "UNKNOWN"))
    if model.SubgraphsLength() == 0:
        raise FormatError(f"{path}: the TFLite model has no subgraph")
    _touch_tables(model)
    convs: list[Conv] = []
    offset = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        reader = _Graph(model, graph, buf, path, opcodes, type_names, prefix="" if s == 0 else f"subgraph{s}/")
        found = reader.convs(level_offset=offset)
        if found:
            offset = max(c.level for c in found) + 1
        convs.extend(found)
    return convs


def _touch_tables(model) -> None:
    """Visit every buffer, tensor and operator table once. Python flatbuffers has no verifier
    and reads lazily, so this is what makes a truncated file fail even where the convs
    themselves would still read."""
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        buffer.DataLength(), buffer.Offset(), buffer.Size()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            tensor.ShapeAsNumpy() if tensor.ShapeLength() else None
            tensor.Type(), tensor.Buffer(), tensor.Name()
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            op.OpcodeIndex(), op.InputsLength(), op.OutputsLength()


class _Graph:
    """One subgraph: its constants, its data depths and its conv filters."""

    def __init__(self, model, graph, buf, path, opcodes, type_names, prefix):
        self.model, self.graph, self.buf, self.path = model, graph, buf, path
        self.opcodes, self.type_names, self.prefix = opcodes, type_names, prefix
        self.ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
        self.producer = {}
        for op in self.ops:
            for j in range(op.OutputsLength()):
                self.producer[op.Outputs(j)] = op

    def op_name(self, op) -> str:
        i = op.OpcodeIndex()
        return self.opcodes[i] if i < len(self.opcodes) else "UNKNOWN"

    def tensor_name(self, t: int) -> str:
        name = self.graph.Tensors(t).Name()
        return self.prefix + (name.decode(errors="replace") if name else f"tensor{t}")

    def raw(self, t: int):
        """The bytes of tensor ``t``'s buffer, or None for a tensor without data."""
        tensor = self.graph.Tensors(t)
        b = tensor.Buffer()
        if b <= 0 or b >= self.model.BuffersLength():
            return None
        buffer = self.model.Buffers(b)
        if buffer.DataLength() > 0:
            return buffer.DataAsNumpy()
        if buffer.Offset() > 1:  # buffers of files over 2 GB live after the flatbuffer
            start, n = buffer.Offset(), buffer.Size()
            if start + n > len(self.buf):
                raise FormatError(f"{self.path}: truncated: tensor {self.tensor_name(t)!r} needs bytes up to "
                                  f"{start + n}, the file has {len(self.buf)}")
            return np.frombuffer(self.buf, dtype=np.uint8, count=n, offset=start)
        return None

    def depths(self) -> dict[int, int]:
        depth = {self.graph.Inputs(i): 0 for i in range(self.graph.InputsLength())
                 if self.raw(self.graph.Inputs(i)) is None}
        for op in self.ops:  # operators are stored in execution order
            ins = [depth[x] for x in (op.Inputs(j) for j in range(op.InputsLength())) if x in depth]
            if not ins:
                continue  # fed only by constants: its outputs stay constant
            for j in range(op.OutputsLength()):
                depth[op.Outputs(j)] = max(ins) + 1
        return depth

    def convs(self, level_offset: int) -> list[Conv]:
        depth = self.depths()
        out = []
        for op in self.ops:
            kind = self.op_name(op)
            if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                continue
            if op.InputsLength() < 2 or op.OutputsLength() < 1:
                raise FormatError(f"{self.path}: a {kind} operator has no filter input")
            x, w, y = op.Inputs(0), op.Inputs(1), op.Outputs(0)
            name = self.tensor_name(y)
            filt = self.filter(w, kind, name)
            in_channels = self.channels(x)
            if kind == "CONV_2D":
                weight = np.ascontiguousarray(filt.transpose(0, 3, 1, 2))  # OHWI -> OIHW
                per_group = weight.shape[1]
                groups = in_channels // per_group if in_channels and in_channels % per_group == 0 else 1
                conv = Conv(name, weight, groups=groups, level=level_offset + depth.get(y, 0))
            else:
                if filt.shape[0] != 1:
                    raise FormatError(f"{self.path}: DEPTHWISE_CONV_2D {name!r}: filter shape {filt.shape}, "
                                      f"expected (1, kh, kw, C)")
                weight = np.ascontiguousarray(filt[0].transpose(2, 0, 1)[:, None])  # 1HWC -> (C, 1, kh, kw)
                groups = in_channels or self.depthwise_groups(op, weight.shape[0])
                conv = Conv(name, weight, groups=groups, level=level_offset + depth.get(y, 0), kind="depthwise")
            out.append(conv)
        return out

    def depthwise_groups(self, op, out_channels: int) -> int:
        """Input channels = outputs / depth multiplier, for inputs of unknown shape."""
        import tflite

        table = op.BuiltinOptions()
        if table is not None and op.BuiltinOptionsType() == tflite.BuiltinOptions.DepthwiseConv2DOptions:
            options = tflite.DepthwiseConv2DOptions()
            options.Init(table.Bytes, table.Pos)
            mult = options.DepthMultiplier()
            if mult > 0 and out_channels % mult == 0:
                return out_channels // mult
        return out_channels

    def channels(self, t: int) -> int | None:
        tensor = self.graph.Tensors(t)
        if tensor.ShapeLength() != 4:
            return None
        c = int(tensor.Shape(3))
        return c if c > 0 else None

    def filter(self, t: int, kind: str, conv_name: str) -> np.ndarray:
        """The filter tensor as float32 in its stored layout, through a DEQUANTIZE if there is one."""
        where = f"{kind} {conv_name!r}"
        if self.raw(t) is None:
            op = self.producer.get(t)
            if op is not None and self.op_name(op) == "DEQUANTIZE" and op.InputsLength() >= 1:
                source = op.Inputs(0)
                if self.raw(source) is not None:
                    return self.decode(source, where)
            by = f"by {self.op_name(op)}" if op is not None else "(it has no data)"
            raise FormatError(f"{self.path}: {where}: the filter is computed at run time {by}; "
                              f"only stored filters are supported")
        return self.decode(t, where)

    def decode(self, t: int, where: str) -> np.ndarray:
        tensor = self.graph.Tensors(t)
        shape = tuple(int(tensor.Shape(i)) for i in range(tensor.ShapeLength()))
        dtype = self.type_names.get(tensor.Type(), f"type {tensor.Type()}")
        if len(shape) != 4:
            raise FormatError(f"{self.path}: {where}: filter of shape {shape}, expected 4-D")
        if tensor.Sparsity() is not None:
            raise FormatError(f"{self.path}: {where}: sparse filters are not supported")
        raw = self.raw(t)
        n = int(np.prod(shape))
        if dtype in _FLOATS:
            values = self._frombuffer(raw, _FLOATS[dtype], n, where).astype(np.float32)
        elif dtype == "BFLOAT16":
            values = (self._frombuffer(raw, "<u2", n, where).astype(np.uint32) << 16).view(np.float32)
        elif dtype in _QUANTISED:
            values = self._dequantise(tensor, self._frombuffer(raw, _QUANTISED[dtype], n, where), shape, where)
        else:
            raise FormatError(f"{self.path}: {where}: filter of dtype {dtype} is not supported "
                              f"(float32, float16, bfloat16, or int8/uint8/int16 with scales)")
        return np.array(values.reshape(shape), dtype=np.float32)  # a copy, not a view of the file bytes

    def _frombuffer(self, raw, dtype: str, n: int, where: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        data = np.asarray(raw, dtype=np.uint8)
        if data.size != n * itemsize:
            raise FormatError(f"{self.path}: {where}: the buffer holds {data.size} bytes, "
                              f"the shape needs {n * itemsize}")
        return data.view(dtype)

    def _dequantise(self, tensor, q: np.ndarray, shape: tuple, where: str) -> np.ndarray:
        qp = tensor.Quantization()
        if qp is None or qp.ScaleLength() == 0:
            raise FormatError(f"{self.path}: {where}: quantised {q.dtype} filter without a stored scale; "
                              f"cannot be dequantised")
        scale = qp.ScaleAsNumpy().astype(np.float64)
        zero = qp.ZeroPointAsNumpy().astype(np.int64) if qp.ZeroPointLength() else np.zeros(1, np.int64)
        axis = qp.QuantizedDimension()
        values = q.reshape(shape).astype(np.int64)
        if scale.size > 1:
            if axis >= len(shape) or shape[axis] != scale.size or zero.size not in (1, scale.size):
                raise FormatError(f"{self.path}: {where}: {scale.size} per-channel scales do not match "
                                  f"dimension {axis} of the filter shape {shape}")
            bshape = [1] * len(shape)
            bshape[axis] = scale.size
            scale = scale.reshape(bshape)
            zero = zero.reshape(bshape) if zero.size > 1 else zero
        elif zero.size > 1:
            raise FormatError(f"{self.path}: {where}: one scale but {zero.size} zero points")
        # exact in float64 (a small integer times a float32 scale), then one rounding to float32
        return ((values - zero) * scale).astype(np.float32)
