"""ONNX Runtime on the model exported to ONNX, with its full graph optimisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlmark import models
from dlmark.runtimes.base import Backend, Predict, VariantSpec, register


def export_onnx(net: Any, model: str, out: Path) -> Path:
    """ONNX file with a dynamic batch axis and initializers kept out of the inputs.

    An initializer listed among the graph inputs may be overridden at run
    time, so ONNX Runtime must not fold it as a constant; removing it from
    the inputs lets the full graph optimisation do its work.
    """
    import mxnet as mx
    import onnx

    size = models.model_info(model).input_size
    net(mx.nd.zeros((1, 3, size, size)))
    prefix = str(out / "mxnet")
    net.export(prefix)
    path = out / "model.onnx"
    mx.onnx.export_model(
        f"{prefix}-symbol.json",
        f"{prefix}-0000.params",
        in_shapes=[(1, 3, size, size)],
        in_types=[np.float32],
        onnx_file_path=str(path),
        dynamic=True,
        dynamic_input_shapes=[(None, 3, size, size)],
    )
    graph = onnx.load(str(path))
    initializers = {i.name for i in graph.graph.initializer}
    inputs = [i for i in graph.graph.input if i.name not in initializers]
    del graph.graph.input[:]
    graph.graph.input.extend(inputs)
    onnx.save(graph, str(path))
    for leftover in out.glob("mxnet-*"):
        leftover.unlink()
    return path


def session(path: Path, threads: int) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


@register
class OnnxRuntimeFloat32(Backend):
    runtime = "onnxruntime"
    precision = "float32"
    # Only the CPU execution provider is set up: a session on a GPU device
    # would quietly run on the CPU.
    device_kinds = frozenset({"cpu"})
    unsupported_device_reason = "dlmark runs ONNX Runtime's CPU execution provider only; use devices: [cpu]"
    framework = "onnxruntime"
    install_hint = "pip install onnxruntime (requirements.txt pins it)"

    def prepare(self, spec: VariantSpec, defined: Any) -> None:
        export_onnx(defined, spec.model, Path(spec.out_dir))

    def load(self, spec: VariantSpec) -> Predict:
        return session(Path(spec.out_dir) / "model.onnx", spec.threads)

    def timed_call(self, spec: VariantSpec, batch_size: int, device: str) -> Callable[[], None]:
        # run() returns only when the outputs are computed: no extra synchronisation.
        predict = self.load(spec)
        host = np.random.default_rng(1).standard_normal(models.input_shape(spec.model, batch_size))
        host = host.astype(np.float32)
        return lambda: predict(host)

    def preload(self) -> None:
        import onnxruntime  # noqa: F401
