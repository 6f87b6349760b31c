"""PyTorch on the same weights: the exported ONNX graph, run by torch ops.

The ONNX file the ONNX Runtime variant uses is rebuilt as a
`torch.nn.Module` whose weights are torch tensors (`torch_graph`), then
run as PyTorch users run it: eager, through `torch.compile`, or captured
as a CUDA graph on a GPU, at float32, bfloat16 or float16, channels-last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlmark import hardware, models
from dlmark.measure import memory
from dlmark.runtimes.base import Backend, Predict, VariantSpec, register
from dlmark.runtimes.onnxruntime_backend import export_onnx
from dlmark.runtimes.torch_graph import from_onnx

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class _Torch(Backend):
    runtime = "torch"
    framework = "torch"
    install_hint = "install the torch extra: pip install -e '.[torch]' (make test does)"

    def prepare(self, spec: VariantSpec, defined: Any) -> None:
        # An operator the converter lacks stops the gate that follows (from_onnx says which).
        export_onnx(defined, spec.model, Path(spec.out_dir))

    def module(self, spec: VariantSpec, device: str) -> tuple[Any, Any, Any]:
        """The network on its device at this precision, channels-last: (module, torch device, dtype)."""
        import torch

        torch.set_num_threads(spec.threads)
        index = hardware.device_index(device)
        target = torch.device("cpu" if index is None else f"cuda:{index}")
        dtype = getattr(torch, DTYPES[spec.precision])
        net = from_onnx(Path(spec.out_dir) / "model.onnx").to(target, dtype)
        return self.compiled(net.to(memory_format=torch.channels_last)), target, dtype

    def compiled(self, net: Any) -> Any:
        """The module as it runs: eager here; `torch.compile`d by the compiled variants."""
        return net

    def load(self, spec: VariantSpec, device: str = "cpu") -> Predict:
        import torch

        net, target, dtype = self.module(spec, device)
        forward = self.forward(net)

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                data = torch.from_numpy(x).to(target, dtype).contiguous(memory_format=torch.channels_last)
                return forward(data).float().cpu().numpy()

        return predict

    def forward(self, net: Any) -> Callable[[Any], Any]:
        """How the gate and the accuracy pass run the module on a batch (the captured variant replays)."""
        return net

    def batch_calls(self, spec: VariantSpec, batch_sizes: list[int], device: str) -> dict[int, Callable[[], None]]:
        net, target, dtype = self.module(spec, device)
        return {b: self._call(net, target, dtype, spec, b) for b in batch_sizes}

    def _call(self, net: Any, target: Any, dtype: Any, spec: VariantSpec, batch_size: int) -> Callable[[], None]:
        import torch

        shape = models.input_shape(spec.model, batch_size)
        data = torch.rand(shape, device=target, dtype=dtype).contiguous(memory_format=torch.channels_last)
        if target.type == "cuda":
            torch.cuda.synchronize(target)

            def call() -> None:
                with torch.inference_mode():
                    net(data)
                torch.cuda.synchronize(target)  # kernels are queued: the call ends when they finish

        else:

            def call() -> None:
                with torch.inference_mode():
                    net(data)

        self.before_timing(call)
        return call

    def before_timing(self, call: Callable[[], None]) -> None:
        """Work that belongs to building the model, not to a call (the compiled variants compile here)."""

    def preload(self) -> None:
        import torch  # noqa: F401

    def gpu_peak_mb(self, index: int) -> float:
        import torch

        # The caching allocator's peak, or NVML's figure for the process
        # (which adds the CUDA context and cuDNN workspaces): the larger.
        return max(torch.cuda.max_memory_reserved(index) / memory.MB, self.gpu_held_mb(index))


class _TorchCompiled(_Torch):
    """The same module through `torch.compile` (TorchInductor, default mode).

    Inductor fuses the graph's operators into generated C++ or Triton
    kernels, which removes Python's per-operator dispatch (what bounds eager
    torch at small batches). It compiles for each input shape on the first
    call, tens of seconds on a CPU, so the first call is made when the model
    is built, before warm-up and timing. The row's runtime is
    `torch.compile`; eager torch stays `torch`.
    """

    runtime = "torch.compile"

    def compiled(self, net: Any) -> Any:
        import torch

        return torch.compile(net)

    def before_timing(self, call: Callable[[], None]) -> None:
        call()

    def build_counts(self) -> dict[str, int]:
        """Inductor's on-disk FX graph cache so far in this process: a later process of a point should only hit.

        Every timing process compiles its module again; Inductor's cache
        (TORCHINDUCTOR_CACHE_DIR, by default under the temporary folder,
        shared by all processes of the machine) turns that into a load.
        """
        from torch._dynamo.utils import counters

        return {"cache_hits": counters["inductor"]["fxgraph_cache_hit"],
                "cache_misses": counters["inductor"]["fxgraph_cache_miss"]}

    def gpu_problem(self, capability: tuple[int, int]) -> str | None:
        # Inductor's GPU kernels are Triton's, and PyTorch refuses Triton below Volta.
        if capability < (7, 0):
            return (
                f"torch.compile generates Triton kernels, which need compute capability 7.0 or later "
                f"(this GPU has {capability[0]}.{capability[1]}); measure torch/* there"
            )
        return None


def capture(net: Any, static: Any) -> tuple[Any, Any]:
    """One call of `net` on the device buffer `static`, captured as a CUDA graph: (graph, its output buffer).

    The module runs a few times first on a side stream, as capture needs
    (cuDNN picks its algorithms and the caching allocator has the blocks
    the graph will use), and the capture uses that same stream: BLAS
    libraries keep per-stream state (handles, workspaces) that is unsafe to
    create mid-capture, which is why `torch.cuda.make_graphed_callables`
    also warms up and captures on one stream. The graph
    then owns a private memory pool, which the caching allocator's reserved
    figure, and so the row's peak, counts.
    """
    import torch

    stream = torch.cuda.Stream(device=static.device)
    stream.wait_stream(torch.cuda.current_stream(static.device))
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            net(static)
    torch.cuda.current_stream(static.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph, stream=stream):
        out = net(static)
    torch.cuda.synchronize(static.device)
    return graph, out


class _TorchCudaGraph(_Torch):
    """Eager torch captured once per batch size as a CUDA graph, then replayed (GPU only).

    At small batches eager torch on a GPU is bound by launching its
    kernels one operator at a time from Python; a replayed graph launches
    them all at once, as deployed GPU inference does. Each call replays
    on the same input buffer, filled before the clock starts; the capture
    belongs to building the model, before warm-up. On the CPU, where the
    variant is prepared, its gate runs the eager module; on the GPU the
    device gate runs the replayed graph.
    """

    runtime = "torch.cudagraph"
    device_kinds = frozenset({"gpu"})
    unsupported_device_reason = (
        "CUDA graphs are captured on a GPU (use a gpuN device); on a CPU measure torch/* or torch.compile/*"
    )

    def forward(self, net: Any) -> Callable[[Any], Any]:
        graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}

        def replayed(data: Any) -> Any:
            if data.device.type != "cuda":
                return net(data)
            if data.shape not in graphs:
                static = data.clone()
                graphs[data.shape] = (static, *capture(net, static))
            static, graph, out = graphs[data.shape]
            static.copy_(data)
            graph.replay()
            return out

        return replayed

    def _call(self, net: Any, target: Any, dtype: Any, spec: VariantSpec, batch_size: int) -> Callable[[], None]:
        import torch

        if target.type != "cuda":  # refused by validation; kept eager rather than wrong
            return super()._call(net, target, dtype, spec, batch_size)
        shape = models.input_shape(spec.model, batch_size)
        static = torch.rand(shape, device=target, dtype=dtype).contiguous(memory_format=torch.channels_last)
        graph, out = capture(net, static)
        # The graph reads and writes these addresses on every replay: they must outlive it.
        buffers = (static, out)

        def call() -> None:
            graph.replay()
            torch.cuda.synchronize(target)

        call.buffers = buffers  # type: ignore[attr-defined]
        return call


@register
class TorchFloat32(_Torch):
    precision = "float32"


@register
class TorchBfloat16(_Torch):
    precision = "bfloat16"


@register
class TorchFloat16(_Torch):
    precision = "float16"
    device_kinds = frozenset({"gpu"})
    unsupported_device_reason = (
        "float16 kernels are for GPUs (use a gpuN device); on a CPU measure torch/bfloat16"
    )


@register
class TorchCompiledFloat32(_TorchCompiled):
    precision = "float32"


@register
class TorchCompiledBfloat16(_TorchCompiled):
    precision = "bfloat16"


@register
class TorchCompiledFloat16(_TorchCompiled):
    precision = "float16"
    device_kinds = TorchFloat16.device_kinds
    unsupported_device_reason = TorchFloat16.unsupported_device_reason


@register
class TorchCudaGraphFloat32(_TorchCudaGraph):
    precision = "float32"


@register
class TorchCudaGraphBfloat16(_TorchCudaGraph):
    precision = "bfloat16"


@register
class TorchCudaGraphFloat16(_TorchCudaGraph):
    precision = "float16"
