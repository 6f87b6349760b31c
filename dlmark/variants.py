"""Runtimes and precisions of one model, from the same weights, gated.

A variant is a way to run a model: MXNet float32 (the reference), the
ONNX export under ONNX Runtime, MXNet's oneDNN INT8 quantization (each a
backend in `dlmark.runtimes`). Each is measured as its own users run it
and prepared once per model (its own cached target), then checked on a
fixed batch against the network as defined (the unfused Gluon graph, same
weights) before anyone times it: a fast wrong model is worth nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dlmark import models, runtimes
from dlmark.results import tables
from dlmark.runtimes import WEIGHTS_SEED, Predict, VariantSpec  # noqa: F401  (the variant API)

GATE_BATCH = 4
FLOAT32_TOLERANCE = 1e-3  # max |difference| of outputs, relative to the largest output
# float32 on a GPU against the CPU's outputs: torch lets cuDNN run float32 convolutions in
# TF32 (a 10-bit mantissa) by default, so the outputs move by more than float rounding.
DEVICE_FLOAT32_TOLERANCE = 1e-2
GATE_AGAINST = "mxnet/float32 as defined (unfused)"


def gate_batch(model: str) -> np.ndarray:
    """A fixed batch of inputs, the same in every process."""
    rng = np.random.default_rng(WEIGHTS_SEED)
    return rng.standard_normal(models.input_shape(model, GATE_BATCH)).astype(np.float32)


def check_gate(
    reference: np.ndarray, candidate: np.ndarray, precision: str, tolerance: float = FLOAT32_TOLERANCE
) -> dict[str, Any]:
    """Compare a variant's outputs with the reference's on the gate batch.

    float32 variants must agree within `tolerance` and on every top-1;
    quantized and half-precision variants cannot, so their top-1 agreement
    is recorded for the reader to judge (the accuracy pass then measures
    what it costs), and only non-finite outputs fail them.
    """
    scale = float(np.abs(reference).max()) or 1.0
    max_abs = float(np.abs(reference - candidate).max())
    agreement = float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())
    if precision == "float32":
        passed = max_abs <= tolerance * scale and agreement == 1.0
    else:
        passed = bool(np.isfinite(candidate).all())
    return {
        "passed": bool(passed),
        "max_abs_diff": max_abs,
        "relative_max_abs_diff": max_abs / scale,
        "top1_agreement": agreement,
        "tolerance": tolerance if precision == "float32" else None,
    }


def prepare(spec: VariantSpec) -> dict[str, Any]:
    """Build the variant's files, gate them against the network as defined, write gate.json."""
    import mxnet as mx

    from dlmark.runtimes.mxnet_backend import defined_net

    backend = runtimes.get(spec.runtime, spec.precision)
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    defined = defined_net(spec.model, mx.cpu(), spec.params_file)
    expected = _on_gate_batch(defined, spec.model)  # before prepare, which may hybridize or export the block
    calibration = backend.prepare(spec, defined)
    gate = check_gate(expected, backend.load(spec)(gate_batch(spec.model)), spec.precision)
    gate.update(against=GATE_AGAINST, gated_on="cpu", calibration=calibration, settings=asdict(spec))
    tables.write_json(out / "gate.json", gate)
    return gate


def _on_gate_batch(defined: Any, model: str) -> np.ndarray:
    """The network as defined (an MXNet block on the CPU) on the gate batch: what every gate compares with."""
    import mxnet as mx

    return defined(mx.nd.array(gate_batch(model))).asnumpy()


def write_defined_outputs(model: str, path: str | Path, params_file: str | None = None) -> None:
    """The network as defined on the gate batch, in a file: what float32 is gated against on a GPU.

    A file per model, so that a GPU node without MXNet can gate there.
    """
    import mxnet as mx

    from dlmark.runtimes.mxnet_backend import defined_net

    outputs = _on_gate_batch(defined_net(model, mx.cpu(), params_file), model)
    tables.write_json(path, {"model": model, "gate_batch": GATE_BATCH, "outputs": outputs.tolist()})


def read_defined_outputs(path: str | Path) -> np.ndarray:
    return np.asarray(json.loads(Path(path).read_text(encoding="utf-8"))["outputs"], dtype=np.float32)


def device_gates(
    model: str, folders: dict[tuple[str, str], str], device: str, threads: int, defined: np.ndarray
) -> dict[str, Any]:
    """Every variant of `model` gated again on the GPU `device`, by "runtime/precision".

    The gate made with the variant ran on the CPU, but float16 and bfloat16
    round differently on a GPU, and a captured or compiled module runs
    other kernels there. So on the device: float32 variants are compared
    with the network as defined (`defined`, the CPU's outputs from
    `defined_outputs`), the others with their framework's float32 on the
    same device.
    `folders` holds every variant's folder, the references' included. A
    variant that fails to run there is a failed gate, with the error.
    """
    batch = gate_batch(model)
    outputs: dict[tuple[str, str], Any] = {}

    def run(variant: tuple[str, str]) -> Any:
        if variant not in outputs:
            try:
                spec = VariantSpec(model, *variant, folders[variant], threads)
                outputs[variant] = runtimes.get(*variant).load(spec, device)(batch)
            except Exception as exc:  # noqa: BLE001  (any failure on the device is the gate's verdict)
                outputs[variant] = f"{type(exc).__name__}: {exc}"
        return outputs[variant]

    gates = {}
    for variant in folders:
        reference = runtimes.device_reference(*variant)
        if reference is None:
            against, expected = f"{GATE_AGAINST} on the CPU", defined
        else:
            against, expected = f"{'/'.join(reference)} on {device}", run(reference)
        candidate = run(variant)
        failed = candidate if isinstance(candidate, str) else None
        if isinstance(expected, str):
            failed = f"its reference {against} did not run: {expected}"
        if failed is not None:
            gate: dict[str, Any] = {"passed": False, "error": failed, "max_abs_diff": None, "top1_agreement": None}
        else:
            gate = check_gate(expected, candidate, variant[1], DEVICE_FLOAT32_TOLERANCE)
        gates["/".join(variant)] = dict(gate, against=against, gated_on=device)
    return gates


def load(spec: VariantSpec) -> Predict:
    """A function from an input batch (numpy) to output scores (numpy), for any variant."""
    return runtimes.get(spec.runtime, spec.precision).load(spec)


class OnDevice(Protocol):
    """What a measurement (a throughput point, a largest-batch trial) says about its variant."""

    model: str
    device: str
    runtime: str
    precision: str
    variant_dir: str
    threads: int


def variant_of(spec: OnDevice) -> VariantSpec:
    return VariantSpec(spec.model, spec.runtime, spec.precision, spec.variant_dir, spec.threads)

