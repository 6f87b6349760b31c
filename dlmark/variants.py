"""Runtimes and precisions of one model, from the same weights.

A variant is a way to run a model: MXNet float32 (the reference), the
ONNX export under ONNX Runtime, MXNet's oneDNN INT8 quantization. Each is
measured as its own users run it: the reference is MXNet's CPU path with
oneDNN graph fusion (convolution + batch norm + activation folded, what
MXNet's symbolic executor does by default), ONNX Runtime gets its full
graph optimisation. Every variant is prepared once per model (its own
cached target), then checked on a fixed batch against the network as
defined (the unfused Gluon graph, same weights) before anyone times it:
a fast wrong model is worth nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from dlmark import hardware, models, results

REFERENCE = ("mxnet", "float32")
SUPPORTED = {("mxnet", "float32"), ("onnxruntime", "float32"), ("mxnet", "int8")}
CPU_ONLY = {("mxnet", "int8")}  # oneDNN kernels: no INT8 path on GPUs here
WEIGHTS_SEED = 0
GATE_BATCH = 4
FLOAT32_TOLERANCE = 1e-3  # max |difference| of outputs, relative to the largest output
GATE_AGAINST = "mxnet/float32 as defined (unfused)"

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VariantSpec:
    model: str
    runtime: str
    precision: str
    out_dir: str
    threads: int
    params_file: str | None = None
    calibration: str = "random"  # or the validation folder (imagenet.val_dir)
    calibration_images: int = 32
    labels_file: str | None = None
    num_classes: int = 1000


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
    agree); it is 5-25% faster on CPUs, and leaving it out would
    under-report MXNet and inflate every speed-up over it.
    """
    net = defined_net(model, ctx, params_file)
    if ctx.device_type == "cpu":
        net.hybridize(static_alloc=True, static_shape=True, backend="MKLDNN")
    return net


def gate_batch(model: str) -> np.ndarray:
    """A fixed batch of inputs, the same in every process."""
    rng = np.random.default_rng(WEIGHTS_SEED)
    return rng.standard_normal(models.input_shape(model, GATE_BATCH)).astype(np.float32)


def check_gate(reference: np.ndarray, candidate: np.ndarray, precision: str) -> dict[str, Any]:
    """Compare a variant's outputs with the reference's on the gate batch.

    float32 variants must agree within a tolerance and on every top-1;
    quantized variants cannot, so their top-1 agreement is recorded for the
    reader to judge (the accuracy pass then measures what it costs).
    """
    scale = float(np.abs(reference).max()) or 1.0
    max_abs = float(np.abs(reference - candidate).max())
    agreement = float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())
    if precision == "float32":
        passed = max_abs <= FLOAT32_TOLERANCE * scale and agreement == 1.0
    else:
        passed = bool(np.isfinite(candidate).all())
    return {
        "passed": bool(passed),
        "max_abs_diff": max_abs,
        "relative_max_abs_diff": max_abs / scale,
        "top1_agreement": agreement,
        "tolerance": FLOAT32_TOLERANCE if precision == "float32" else None,
    }


def _export_onnx(net: Any, spec: VariantSpec, out: Path) -> Path:
    """ONNX file with a dynamic batch axis and initializers kept out of the inputs.

    An initializer listed among the graph inputs may be overridden at run
    time, so ONNX Runtime must not fold it as a constant; removing it from
    the inputs lets the full graph optimisation do its work.
    """
    import mxnet as mx
    import onnx

    size = models.model_info(spec.model).input_size
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


def _calibration_data(spec: VariantSpec) -> tuple[np.ndarray, str]:
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


def _quantize_int8(net: Any, spec: VariantSpec, out: Path) -> tuple[Path, str]:
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net

    data, source = _calibration_data(spec)
    # quantize_net's calibration reads (data, label) batches; labels are unused.
    dataset = mx.gluon.data.ArrayDataset(mx.nd.array(data), mx.nd.zeros(len(data)))
    loader = mx.gluon.data.DataLoader(dataset, batch_size=8)
    quantized = quantize_net(
        net,
        quantized_dtype="auto",
        calib_mode="naive",
        calib_data=loader,
        num_calib_examples=len(data),
        ctx=mx.cpu(),
    )
    quantized.hybridize(static_alloc=True, static_shape=True)
    quantized(mx.nd.array(data[:1]))
    quantized.export(str(out / "model"))
    return out / "model-symbol.json", source


def _mxnet_block(spec: VariantSpec, ctx: Any) -> Any:
    import mxnet as mx

    if (spec.runtime, spec.precision) == REFERENCE:
        return reference_net(spec.model, ctx, spec.params_file)
    if (spec.runtime, spec.precision) == ("mxnet", "int8"):
        import warnings

        out = Path(spec.out_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = mx.gluon.SymbolBlock.imports(
                str(out / "model-symbol.json"), ["data"], str(out / "model-0000.params"), ctx=ctx
            )
        net.hybridize(static_alloc=True, static_shape=True)
        return net
    raise ValueError(f"unknown variant {spec.runtime}/{spec.precision}")


def load(spec: VariantSpec, ctx: Any = None) -> Predict:
    """A function from an input batch (numpy) to output scores (numpy), for any variant."""
    import mxnet as mx

    ctx = ctx or mx.cpu()
    if spec.runtime == "onnxruntime":
        return onnx_session(Path(spec.out_dir) / "model.onnx", spec.threads)
    net = _mxnet_block(spec, ctx)
    return lambda x: net(mx.nd.array(x, ctx=ctx)).asnumpy()


def onnx_session(path: Path, threads: int) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def prepare(spec: VariantSpec) -> dict[str, Any]:
    """Build the variant's files, gate them against the reference, write gate.json."""
    import mxnet as mx

    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calibration = None
    defined = defined_net(spec.model, mx.cpu(), spec.params_file)
    batch = gate_batch(spec.model)
    expected = defined(mx.nd.array(batch)).asnumpy()
    if (spec.runtime, spec.precision) == ("onnxruntime", "float32"):
        _export_onnx(defined, spec, out)
    elif (spec.runtime, spec.precision) == ("mxnet", "int8"):
        _, calibration = _quantize_int8(defined, spec, out)
    gate = check_gate(expected, load(spec)(batch), spec.precision)
    gate.update(against=GATE_AGAINST, calibration=calibration, settings=asdict(spec))
    results.write_json(out / "gate.json", gate)
    return gate


def timed_call(spec: VariantSpec, batch_size: int, ctx: Any) -> Callable[[], None]:
    """One synchronised inference on a batch already on the device, ready to time.

    The input is made before the clock starts; MXNet calls end with
    wait_to_read() (its engine is asynchronous), ONNX Runtime returns only
    when done.
    """
    import mxnet as mx

    shape = models.input_shape(spec.model, batch_size)
    if spec.runtime == "onnxruntime":
        predict = onnx_session(Path(spec.out_dir) / "model.onnx", spec.threads)
        host = np.random.default_rng(1).standard_normal(shape).astype(np.float32)

        def call() -> None:
            predict(host)

        return call
    net = _mxnet_block(spec, ctx)
    data = mx.nd.random.uniform(shape=shape, ctx=ctx)
    data.wait_to_read()
    return lambda: net(data).wait_to_read()


class OnDevice(Protocol):
    """What a measurement (a throughput point, a largest-batch trial) says about its variant."""

    model: str
    device: str
    runtime: str
    precision: str
    variant_dir: str
    threads: int


def context(device: str) -> Any:
    """The MXNet context of a dlmark device name ("cpu", "gpu0", ...)."""
    import mxnet as mx

    index = hardware.device_index(device)
    return mx.cpu() if index is None else mx.gpu(index)


def device_call(spec: OnDevice, batch_size: int) -> Callable[[], None]:
    """`timed_call` for a measurement: its prepared variant, on its device."""
    variant = VariantSpec(spec.model, spec.runtime, spec.precision, spec.variant_dir, spec.threads)
    return timed_call(variant, batch_size, context(spec.device))
