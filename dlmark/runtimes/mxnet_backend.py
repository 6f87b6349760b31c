"""MXNet: float32 as MXNet runs it (the reference), and oneDNN INT8.

The reference is MXNet's CPU path with oneDNN graph fusion (convolution +
batch norm + activation folded, what MXNet's symbolic executor does by
default); measuring the unfused Gluon graph would under-report MXNet and
inflate every speed-up over it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlmark import hardware, models
from dlmark.measure import memory
from dlmark.runtimes.base import WEIGHTS_SEED, Backend, Predict, VariantSpec, register


def context(device: str) -> Any:
    """The MXNet context of a dlmark device name ("cpu", "gpu0", ...)."""
    import mxnet as mx

    index = hardware.device_index(device)
    return mx.cpu() if index is None else mx.gpu(index)


def defined_net(model: str, ctx: Any, params_file: str | None = None) -> Any:
    """The network as defined, unfused: the same weights in every process.

    Every variant derives from it (export, quantization) and is gated
    against its outputs.
    """
    import mxnet as mx

    mx.random.seed(WEIGHTS_SEED)
    return models.build_net(model, ctx, params_file)


def reference_net(model: str, ctx: Any, params_file: str | None = None) -> Any:
    """mxnet/float32 as MXNet runs it: on a CPU, with oneDNN graph fusion.

    Fusion folds batch norm into the convolution weights, so outputs move
    by float rounding (the gate allows for it and asks every top-1 to
    agree); it is 5-25% faster on CPUs.
    """
    net = defined_net(model, ctx, params_file)
    if ctx.device_type == "cpu":
        net.hybridize(static_alloc=True, static_shape=True, backend="MKLDNN")
    return net


class _MXNet(Backend):
    runtime = "mxnet"
    framework = "mxnet"
    # MXNet's threaded engine runs initialisation, the fusion pass and the calls on its own
    # threads, so what is allocated when depends on their timing: four fresh processes of
    # inceptionv3 at batch 4 peaked between 450.8 and 456.0 MiB, and their memory before the
    # first call between 302 and 325. With the synchronous engine: 449.8 to 450.5, and 296 to 298.
    memory_environment = {"MXNET_ENGINE_TYPE": "NaiveEngine"}
    memory_note = ("CPU memory measured with MXNet's synchronous engine (NaiveEngine) and glibc's mmap threshold fixed; "
                   "timed with its threaded engine")
    install_hint = "MXNet 1.9 needs Python 3.11 and numpy<1.24 (requirements.txt); use torch or onnxruntime here"

    def block(self, spec: VariantSpec, ctx: Any) -> Any:
        raise NotImplementedError

    def load(self, spec: VariantSpec, device: str = "cpu") -> Predict:
        import mxnet as mx

        ctx = context(device)
        net = self.block(spec, ctx)
        return lambda x: net(mx.nd.array(x, ctx=ctx)).asnumpy()

    def batch_calls(self, spec: VariantSpec, batch_sizes: list[int], device: str) -> dict[int, Callable[[], None]]:
        # MXNet's engine is asynchronous: wait_to_read() ends the call.
        import mxnet as mx

        # A network per batch size: a hybridized block plans its memory for one input shape
        # (static_shape), and a call at another shape plans again. Alternating batches 1 and 2 on
        # one block of mobilenet0.25 took 19.2 ms a pair against 9.4 ms on blocks of their own.
        ctx = context(device)

        def call_at(batch_size: int) -> Callable[[], None]:
            net = self.block(spec, ctx)
            data = mx.nd.random.uniform(shape=models.input_shape(spec.model, batch_size), ctx=ctx)
            data.wait_to_read()
            return lambda: net(data).wait_to_read()

        return {b: call_at(b) for b in batch_sizes}

    def preload(self) -> None:
        import mxnet  # noqa: F401

    def gpu_problem(self, capability: tuple[int, int]) -> str | None:
        """MXNet 1.9's GPU builds cannot run on Hopper or later.

        The mxnet-cu11x wheels hold machine code for sm_50 to sm_86 and no
        PTX (checked in the wheels), so a driver cannot compile them for a
        newer GPU; sm_89 (Ada) runs the sm_86 code.
        """
        if capability >= (9, 0):
            return (
                f"MXNet 1.9's GPU builds have no code for compute capability {capability[0]}.{capability[1]} "
                "(sm_50 to sm_86, no PTX); measure torch/float32, torch/float16 or onnxruntime/float32 there"
            )
        if not any(hardware.package_version(name) for name in hardware.GPU_BUILDS["mxnet"]):
            return (
                "the installed MXNet is its CPU build; install the CUDA 11.7 build with "
                "`make run GPU=cu117 VENV=.venv-cu117` (README, 'GPUs and clusters')"
            )
        return None

    def gpu_held_mb(self, index: int) -> float:
        # MXNet's pooled allocator keeps what it took until the process ends:
        # the memory in use after the calls is the peak they needed.
        return memory.gpu_memory_used_mb(index)


@register
class MXNetFloat32(_MXNet):
    precision = "float32"

    def block(self, spec: VariantSpec, ctx: Any) -> Any:
        return reference_net(spec.model, ctx, spec.params_file)


@register
class MXNetInt8(_MXNet):
    precision = "int8"
    device_kinds = frozenset({"cpu"})
    unsupported_device_reason = "MXNet's INT8 kernels are oneDNN's, CPU only; benchmark it with devices: [cpu]"

    def prepare(self, spec: VariantSpec, defined: Any) -> str:
        import mxnet as mx
        from mxnet.contrib.quantization import quantize_net

        data, source = calibration_data(spec)
        # quantize_net's calibration reads (data, label) batches; labels are unused.
        dataset = mx.gluon.data.ArrayDataset(mx.nd.array(data), mx.nd.zeros(len(data)))
        quantized = quantize_net(
            defined,
            quantized_dtype="auto",
            calib_mode="naive",
            calib_data=mx.gluon.data.DataLoader(dataset, batch_size=8),
            num_calib_examples=len(data),
            ctx=mx.cpu(),
        )
        quantized.hybridize(static_alloc=True, static_shape=True)
        quantized(mx.nd.array(data[:1]))
        quantized.export(str(Path(spec.out_dir) / "model"))
        return source

    def block(self, spec: VariantSpec, ctx: Any) -> Any:
        import mxnet as mx

        out = Path(spec.out_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = mx.gluon.SymbolBlock.imports(
                str(out / "model-symbol.json"), ["data"], str(out / "model-0000.params"), ctx=ctx
            )
        net.hybridize(static_alloc=True, static_shape=True)
        return net


def calibration_data(spec: VariantSpec) -> tuple[np.ndarray, str]:
    """Images that calibrate a quantization, and where they came from."""
    size = models.model_info(spec.model).input_size
    if spec.calibration != "random":
        from dlmark import imagenet

        samples = imagenet.discover(spec.calibration, spec.labels_file, spec.num_classes)
        step = max(1, len(samples) // spec.calibration_images)
        chosen = samples[::step][: spec.calibration_images]
        data = np.stack([imagenet.preprocess(s.path, size) for s in chosen])
        return data, f"{len(chosen)} validation images from {spec.calibration}"
    rng = np.random.default_rng(WEIGHTS_SEED + 1)
    data = rng.standard_normal((spec.calibration_images, 3, size, size)).astype(np.float32)
    return data, f"{spec.calibration_images} random normal images (no validation data configured)"
