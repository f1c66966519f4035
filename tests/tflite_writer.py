"""A small TFLite writer for tests: real flatbuffers built with the ``flatbuffers`` builder
and the ``tflite`` schema package, runnable by the LiteRT interpreter."""
from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

_TYPES = {np.dtype(np.float32): tflite.TensorType.FLOAT32, np.dtype(np.float16): tflite.TensorType.FLOAT16,
          np.dtype(np.int8): tflite.TensorType.INT8, np.dtype(np.uint8): tflite.TensorType.UINT8,
          np.dtype(np.int32): tflite.TensorType.INT32}


@dataclass
class _Tensor:
    name: str
    shape: tuple
    ttype: int
    buffer: int = 0
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    axis: int = 0


@dataclass
class TfliteWriter:
    buffers: list = field(default_factory=lambda: [b""])  # buffer 0: the empty sentinel
    tensors: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    opcodes: list = field(default_factory=list)

    def tensor(self, name: str, shape, dtype=np.float32) -> int:
        self.tensors.append(_Tensor(name, tuple(shape), _TYPES[np.dtype(dtype)]))
        return len(self.tensors) - 1

    def const(self, name: str, array: np.ndarray, scale=None, zero_point=None, axis: int = 0) -> int:
        array = np.ascontiguousarray(array)
        self.buffers.append(array.tobytes())
        t = _Tensor(name, array.shape, _TYPES[array.dtype], buffer=len(self.buffers) - 1, axis=axis)
        if scale is not None:
            t.scale = np.atleast_1d(np.asarray(scale, np.float32))
            t.zero_point = np.atleast_1d(np.asarray(zero_point if zero_point is not None else 0, np.int64))
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs, outputs, options=None) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.ops.append((self.opcodes.index(code), list(inputs), list(outputs), options))

    def conv(self, x, w, b, y, stride=1) -> None:
        self.op(tflite.BuiltinOperator.CONV_2D, [x, w, b], [y], ("conv", stride, 1))

    def depthwise(self, x, w, b, y, multiplier, stride=1) -> None:
        self.op(tflite.BuiltinOperator.DEPTHWISE_CONV_2D, [x, w, b], [y], ("dw", stride, multiplier))

    def dequantize(self, x, y) -> None:
        self.op(tflite.BuiltinOperator.DEQUANTIZE, [x], [y])

    def build(self, inputs, outputs) -> bytes:
        b = flatbuffers.Builder(1024)

        def ints(start, values, prepend=b.PrependInt32):
            start(b, len(values))
            for v in reversed(values):
                prepend(v)
            return b.EndVector()

        buffers = []
        for data in self.buffers:
            vec = None
            if data:
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                vec = b.EndVector()
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
            buffers.append(tflite.BufferEnd(b))
        tensors = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = ints(tflite.TensorStartShapeVector, list(t.shape))
            quant = None
            if t.scale is not None:
                scale = ints(tflite.QuantizationParametersStartScaleVector, [float(s) for s in t.scale], b.PrependFloat32)
                zp = ints(tflite.QuantizationParametersStartZeroPointVector, [int(z) for z in t.zero_point], b.PrependInt64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t.ttype)
            tflite.TensorAddBuffer(b, t.buffer)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensors.append(tflite.TensorEnd(b))
        ops = []
        for index, ins, outs, options in self.ops:
            opts, opts_type = None, 0
            if options and options[0] == "conv":
                tflite.Conv2DOptionsStart(b)
                tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
                tflite.Conv2DOptionsAddStrideW(b, options[1])
                tflite.Conv2DOptionsAddStrideH(b, options[1])
                opts, opts_type = tflite.Conv2DOptionsEnd(b), tflite.BuiltinOptions.Conv2DOptions
            elif options and options[0] == "dw":
                tflite.DepthwiseConv2DOptionsStart(b)
                tflite.DepthwiseConv2DOptionsAddPadding(b, tflite.Padding.SAME)
                tflite.DepthwiseConv2DOptionsAddStrideW(b, options[1])
                tflite.DepthwiseConv2DOptionsAddStrideH(b, options[1])
                tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, options[2])
                opts, opts_type = tflite.DepthwiseConv2DOptionsEnd(b), tflite.BuiltinOptions.DepthwiseConv2DOptions
            ivec = ints(tflite.OperatorStartInputsVector, ins)
            ovec = ints(tflite.OperatorStartOutputsVector, outs)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, index)
            tflite.OperatorAddInputs(b, ivec)
            tflite.OperatorAddOutputs(b, ovec)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, opts_type)
                tflite.OperatorAddBuiltinOptions(b, opts)
            ops.append(tflite.OperatorEnd(b))
        tvec = ints(tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
        ovec = ints(tflite.SubGraphStartOperatorsVector, ops, b.PrependUOffsetTRelative)
        ivec = ints(tflite.SubGraphStartInputsVector, list(inputs))
        outvec = ints(tflite.SubGraphStartOutputsVector, list(outputs))
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tvec)
        tflite.SubGraphAddInputs(b, ivec)
        tflite.SubGraphAddOutputs(b, outvec)
        tflite.SubGraphAddOperators(b, ovec)
        subgraph = tflite.SubGraphEnd(b)
        codes = []
        for code in self.opcodes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            codes.append(tflite.OperatorCodeEnd(b))
        cvec = ints(tflite.ModelStartOperatorCodesVector, codes, b.PrependUOffsetTRelative)
        svec = ints(tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
        bvec = ints(tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
        desc = b.CreateString("cnn-filter-db test model")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, cvec)
        tflite.ModelAddSubgraphs(b, svec)
        tflite.ModelAddBuffers(b, bvec)
        tflite.ModelAddDescription(b, desc)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())
