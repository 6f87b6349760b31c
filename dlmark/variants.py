"""Runtimes and precisions of one model, from the same weights, gated.

A variant is a way to run a model: MXNet float32 (the reference), the
ONNX export under ONNX Runtime, MXNet's oneDNN INT8 quantization (each a
backend in `dlmark.runtimes`). Each is measured as its own users run it
and prepared once per model (its own cached target), then checked on a
fixed batch against the network as defined (the unfused Gluon graph, same
weights) before anyone times it: a fast wrong model is worth nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dlmark import models, runtimes
from dlmark.results import tables
from dlmark.runtimes import WEIGHTS_SEED, Predict, VariantSpec  # noqa: F401  (the variant API)

GATE_BATCH = 4
FLOAT32_TOLERANCE = 1e-3  # max |difference| of outputs, relative to the largest output
GATE_AGAINST = "mxnet/float32 as defined (unfused)"


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


def prepare(spec: VariantSpec) -> dict[str, Any]:
    """Build the variant's files, gate them against the network as defined, write gate.json."""
    import mxnet as mx

    from dlmark.runtimes.mxnet_backend import defined_net

    backend = runtimes.get(spec.runtime, spec.precision)
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    defined = defined_net(spec.model, mx.cpu(), spec.params_file)
    batch = gate_batch(spec.model)
    expected = defined(mx.nd.array(batch)).asnumpy()
    calibration = backend.prepare(spec, defined)
    gate = check_gate(expected, backend.load(spec)(batch), spec.precision)
    gate.update(against=GATE_AGAINST, calibration=calibration, settings=asdict(spec))
    tables.write_json(out / "gate.json", gate)
    return gate


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

