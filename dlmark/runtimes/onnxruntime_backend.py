"""ONNX Runtime on the model exported to ONNX, with its full graph optimisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from dlmark import hardware, models
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


# kSameAsRequested: the CPU arena grows by what each allocation asks, not to the next power of two.
_ARENA_AS_REQUESTED = 1


def _arena_as_requested(options: Any) -> None:
    """Make the session take its CPU memory from an arena that grows as requested.

    ONNX Runtime's default CPU arena grows in powers of two, so a session's
    peak memory is a step function of the batch size, and the largest-batch
    search's line through two trials misleads it (2 to 12 trials, mean 7.5,
    over 14 models). Registered once per process, shared by its sessions.
    """
    import onnxruntime as ort

    global _ARENA_REGISTERED
    if not _ARENA_REGISTERED:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, _ARENA_AS_REQUESTED, -1, -1))
        _ARENA_REGISTERED = True
    options.add_session_config_entry("session.use_env_allocators", "1")


_ARENA_REGISTERED = False


def open_session(path: Path, threads: int, device: str = "cpu", arena_as_requested: bool = False) -> Any:
    """An InferenceSession on `device`: the CPU provider, or CUDA and nothing else.

    ONNX Runtime quietly runs on the CPU when its CUDA provider cannot start
    (a CPU-only package, missing CUDA or cuDNN libraries); that would put a
    CPU number under a GPU's name, so it is an error here, saying why.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    index = hardware.device_index(device)
    if index is None:
        if arena_as_requested:
            _arena_as_requested(options)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu 1.21+: load the pip CUDA/cuDNN libraries
        ort.preload_dlls()
    session = ort.InferenceSession(str(path), options, providers=[("CUDAExecutionProvider", {"device_id": index})])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(
            f"ONNX Runtime did not start its CUDA execution provider on {device} (available: "
            f"{', '.join(ort.get_available_providers())}; session: {', '.join(session.get_providers())}); "
            "install onnxruntime-gpu with its CUDA 12 and cuDNN 9 libraries "
            "(pip install 'onnxruntime-gpu[cuda,cudnn]'). Not measured on the CPU instead."
        )
    return session


def session(path: Path, threads: int, device: str = "cpu") -> Predict:
    """Scores for a numpy batch, computed on `device` (the gates and the accuracy pass)."""
    opened = open_session(path, threads, device)
    name = opened.get_inputs()[0].name
    dtype = np.float16 if "float16" in opened.get_inputs()[0].type else np.float32
    return lambda x: opened.run(None, {name: x.astype(dtype, copy=False)})[0].astype(np.float32, copy=False)


class _OnnxRuntime(Backend):
    runtime = "onnxruntime"
    framework = "onnxruntime"
    install_hint = "pip install onnxruntime (requirements.txt pins it; onnxruntime-gpu on a GPU host)"
    dtype: ClassVar[type] = np.float32

    def load(self, spec: VariantSpec, device: str = "cpu") -> Predict:
        return session(Path(spec.out_dir) / "model.onnx", spec.threads, device)

    memory_note = "CPU memory measured with the arena grown as requested (kSameAsRequested); timed with the default arena"

    def batch_calls(self, spec: VariantSpec, batch_sizes: list[int], device: str) -> dict[int, Callable[[], None]]:
        opened = open_session(Path(spec.out_dir) / "model.onnx", spec.threads, device)
        return {b: self._call(opened, spec, b, device) for b in batch_sizes}

    def memory_call(self, spec: VariantSpec, batch_size: int, device: str) -> Callable[[], None]:
        """As timed, but on a CPU with an arena that grows as requested: memory then follows the batch."""
        opened = open_session(Path(spec.out_dir) / "model.onnx", spec.threads, device, arena_as_requested=True)
        return self._call(opened, spec, batch_size, device)

    def _call(self, opened: Any, spec: VariantSpec, batch_size: int, device: str) -> Callable[[], None]:
        name = opened.get_inputs()[0].name
        host = np.random.default_rng(1).standard_normal(models.input_shape(spec.model, batch_size))
        host = host.astype(self.dtype)
        index = hardware.device_index(device)
        if index is None:
            # run() returns only when the outputs are computed: no extra synchronisation.
            return lambda: opened.run(None, {name: host})
        import onnxruntime as ort

        # Input and output stay on the GPU (I/O binding): the clock sees the
        # model, not copies over the host link.
        binding = opened.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(host, "cuda", index))
        binding.bind_output(opened.get_outputs()[0].name, "cuda", index)

        def call() -> None:
            opened.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return call

    def preload(self) -> None:
        import onnxruntime  # noqa: F401


@register
class OnnxRuntimeFloat32(_OnnxRuntime):
    precision = "float32"

    def prepare(self, spec: VariantSpec, defined: Any) -> None:
        export_onnx(defined, spec.model, Path(spec.out_dir))


@register
class OnnxRuntimeFloat16(_OnnxRuntime):
    precision = "float16"
    dtype = np.float16
    device_kinds = frozenset({"gpu"})
    unsupported_device_reason = (
        "float16 kernels are for GPUs (use a gpuN device with onnxruntime-gpu); on a CPU measure onnxruntime/float32"
    )

    def prepare(self, spec: VariantSpec, defined: Any) -> None:
        """The float32 export converted to float16 throughout, inputs and outputs included."""
        import onnx
        from onnxconverter_common import float16

        path = export_onnx(defined, spec.model, Path(spec.out_dir))
        onnx.save(float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=False), str(path))
