"""The Gluon zoo's ONNX export rebuilt as a `torch.nn.Module`, operator by operator.

The zoo exports use a dozen ONNX operators; each maps onto one
`torch.nn.functional` call below, so torch runs every operator itself
(its own oneDNN/cuDNN kernels), as a PyTorch user would run the same
network. An operator outside them is refused when the variant is
prepared, before anything is timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _pads(attrs: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """ONNX pads (top, left, bottom, right) as torch's symmetric padding, or an explicit pad."""
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    if (top, left) == (bottom, right):
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


def _operators() -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    def conv(x, w, b=None, *, strides=(1, 1), dilations=(1, 1), group=1, **attrs):
        padding, explicit = _pads(attrs)
        if explicit:
            x = F.pad(x, explicit)
        return F.conv2d(x, w, b, stride=tuple(strides), padding=padding, dilation=tuple(dilations), groups=group)

    def batch_norm(x, scale, bias, mean, var, *, epsilon=1e-5, **_):
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=epsilon)

    def max_pool(x, *, kernel_shape, strides=None, ceil_mode=0, **attrs):
        padding, explicit = _pads(attrs)
        if explicit:
            x = F.pad(x, explicit, value=float("-inf"))
        return F.max_pool2d(x, tuple(kernel_shape), tuple(strides or kernel_shape), padding,
                            ceil_mode=bool(ceil_mode))

    def avg_pool(x, *, kernel_shape, strides=None, ceil_mode=0, count_include_pad=0, **attrs):
        padding, explicit = _pads(attrs)
        if explicit:
            x = F.pad(x, explicit)
        return F.avg_pool2d(x, tuple(kernel_shape), tuple(strides or kernel_shape), padding,
                            ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))

    def gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
        if (alpha, beta, transA, transB) == (1.0, 1.0, 0, 1):
            return F.linear(a, b, c)  # a fully connected layer, as the zoo exports it
        out = alpha * ((a.t() if transA else a) @ (b.t() if transB else b))
        return out if c is None else out + beta * c

    return {
        "Conv": conv,
        "BatchNormalization": batch_norm,
        "Relu": lambda x: F.relu(x),
        # Bounds are read from the graph once (see from_onnx), never from a device tensor per call.
        "Clip": lambda x, *, min=None, max=None: torch.clamp(x, min=min, max=max),
        "MaxPool": max_pool,
        "AveragePool": avg_pool,
        "GlobalAveragePool": lambda x: F.adaptive_avg_pool2d(x, 1),
        "Flatten": lambda x, *, axis=1: torch.flatten(x, axis),
        "Gemm": gemm,
        "Concat": lambda *xs, axis: torch.cat(xs, dim=axis),
        "Add": lambda a, b: a + b,
        "Identity": lambda x: x,
        "Dropout": lambda x, *_, **__: x,  # inference: no dropout
    }


def _missing(graph: Any) -> list[str]:
    return sorted({n.op_type for n in graph.node} - set(_operators()))


def unsupported_operators(path: Path) -> list[str]:
    import onnx

    return _missing(onnx.load(str(path)).graph)


def from_onnx(path: Path) -> Any:
    """The ONNX graph at `path` as a torch module in eval mode (float32, on the CPU)."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    missing = _missing(graph)
    if missing:
        raise ValueError(f"{path}: ONNX operators the torch runtime does not convert: {', '.join(missing)}")
    operators = _operators()

    class OnnxGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.names: dict[str, str] = {}
            for i, init in enumerate(graph.initializer):
                self.names[init.name] = f"w{i}"
                self.register_buffer(f"w{i}", torch.from_numpy(constants[init.name].copy()))
            self.steps = []
            for n in graph.node:
                inputs = list(n.input)
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                if n.op_type == "Clip":  # opset 11+: bounds are constant inputs
                    for name, bound in zip(["min", "max"], inputs[1:3]):
                        if bound:
                            attrs[name] = float(constants[bound])
                    inputs = inputs[:1]
                self.steps.append((operators[n.op_type], inputs, n.output[0], attrs))
            self.input_name = graph.input[0].name
            self.output_name = graph.output[0].name
            # Each activation is dropped after the last step that reads it, so
            # memory holds what is live, as in a framework's own graph.
            last_use = {name: i for i, (_, inputs, _, _) in enumerate(self.steps) for name in inputs}
            self.drop = [[n for n, last in last_use.items() if last == i and n not in self.names
                          and n != self.output_name] for i in range(len(self.steps))]

        def forward(self, x: Any) -> Any:
            values = {self.input_name: x}

            def value(name: str) -> Any:
                return values[name] if name in values else getattr(self, self.names[name])

            for (op, inputs, output, attrs), drop in zip(self.steps, self.drop):
                values[output] = op(*(value(n) if n else None for n in inputs), **attrs)
                for name in drop:
                    del values[name]
            return values[self.output_name]

    return OnnxGraph().eval()
