"""What a measurement measures, written once for every scenario.

Every scenario's spec (a throughput point, a largest-batch search and its
trials, an accuracy pass) measures one variant of one model on one device
at a thread count: `Measured` holds those fields, and each spec adds its
own. A spec is frozen: it is what a job was asked to measure, recorded as
its settings, and it travels pickled to the measuring process.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dlmark import hardware, models, provenance, runtimes


@dataclass(frozen=True, kw_only=True)
class Measured:
    model: str
    device: str
    runtime: str
    precision: str
    threads: int
    variant_dir: str  # the prepared variant's files (ONNX export, INT8 net) and its gate.json

    def measured(self) -> Measured:
        """The identity alone, to hand to another scenario's spec."""
        return Measured(**identity(self))


def identity(spec: Measured) -> dict[str, Any]:
    """The identity's fields of any spec, as keywords for another spec."""
    return {f.name: getattr(spec, f.name) for f in fields(Measured)}


def from_job(wildcards: Any, threads: int, variant_dir: str, **given: str) -> dict[str, Any]:
    """A job's identity, as keywords: from its wildcards, unless `given` (a rule without that wildcard).

    The one way job scripts build their spec. `threads` is the config's
    (0: every physical core), resolved here, in the job, on the machine
    that measures.
    """
    names = ("model", "device", "runtime", "precision")
    found = {name: given[name] if name in given else getattr(wildcards, name) for name in names}
    return dict(found, threads=hardware.resolve_threads(threads), variant_dir=variant_dir)


def header(spec: Measured, machine: str) -> dict[str, Any]:
    """The fields every record starts with, gathered where it is measured.

    The host's facts, the device's name and the framework's version are
    read in the job that measures, on the machine that measures (on a
    cluster, the compute node), and handed to the record, which is data only.
    """
    return {
        "model": spec.model,
        "family": models.model_info(spec.model).family,
        "device": spec.device,
        "device_name": hardware.device_name(spec.device),
        "machine": machine,
        "runtime": spec.runtime,
        "precision": spec.precision,
        "software": hardware.software(runtimes.framework_of(spec.runtime, spec.precision)),
        "host": hardware.host_facts(),
        **provenance.workflow_version(),
    }
