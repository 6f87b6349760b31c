"""What every runtime backend offers, and the registry that finds one.

A backend runs one (runtime, precision) pair the way its own users run it:
it builds its files from the network as defined (MXNet Gluon, the same
weights for every variant), loads them for the correctness gate and the
accuracy pass, and makes the synchronised call that is timed. Validation,
the workflow and the figures ask the registry, never a list of names, so a
new runtime is one module in this package plus its test.

Nothing here imports a framework: a backend imports its own when it is
used, so the core runs on machines that lack some of them.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from dlmark import hardware
from dlmark.measure import memory

REFERENCE = ("mxnet", "float32")
WEIGHTS_SEED = 0  # seeds the weights of a model built without pretrained ones, in every process

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VariantSpec:
    model: str
    runtime: str
    precision: str
    out_dir: str  # the variant's prepared files and its gate.json
    threads: int
    params_file: str | None = None
    calibration: str = "random"  # or the validation folder (imagenet.val_dir)
    calibration_images: int = 32
    labels_file: str | None = None
    num_classes: int = 1000


class Backend(ABC):
    """One runtime at one precision."""

    runtime: ClassVar[str]
    precision: ClassVar[str]
    # Kinds of device it runs on ("cpu", "gpu"), and why not where it does not.
    device_kinds: ClassVar[frozenset[str]] = frozenset({"cpu", "gpu"})
    unsupported_device_reason: ClassVar[str] = ""
    # The package it imports, and how to get it where it is missing.
    framework: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""
    # How its memory is measured, where that differs from how it is timed (said in the rows),
    # and the environment its memory-measuring processes get before the framework is imported.
    memory_note: ClassVar[str | None] = None
    memory_environment: ClassVar[dict[str, str]] = {}

    def prepare(self, spec: VariantSpec, defined: Any) -> str | None:
        """Write the variant's files into spec.out_dir from the Gluon network `defined`.

        Returns a note for the gate (e.g. what calibrated a quantization);
        a runtime that runs the network itself has nothing to write.
        """
        return None

    @abstractmethod
    def load(self, spec: VariantSpec, device: str = "cpu") -> Predict:
        """A function from a numpy batch to numpy scores, computed on `device` (the gates, the accuracy pass).

        The gate made with the variant runs it on the CPU; on a GPU it runs
        again where it is measured (`dlmark.variants.device_gates`), since
        float16 and bfloat16 round differently there.
        """

    @abstractmethod
    def batch_calls(
        self, spec: VariantSpec, batch_sizes: list[int], device: str
    ) -> dict[int, Callable[[], None]]:
        """One synchronised inference per batch size, on inputs already on `device`, ready to time.

        One model serves every size (as one deployed server does: the
        serving scenario's batcher picks the call of each batch it forms);
        each size has its own input, prepared before the clock starts.
        """

    def timed_call(self, spec: VariantSpec, batch_size: int, device: str) -> Callable[[], None]:
        """One synchronised inference at one batch size (a throughput point)."""
        return self.batch_calls(spec, [batch_size], device)[batch_size]

    def memory_call(self, spec: VariantSpec, batch_size: int, device: str) -> Callable[[], None]:
        """The call whose memory is measured (memory trials, the largest-batch search): the timed call.

        A runtime whose allocator rounds its growth (ONNX Runtime's arena)
        may measure with one that grows as requested, and says so in
        `memory_note`.
        """
        return self.timed_call(spec, batch_size, device)

    def preload(self) -> None:
        """Import the framework, in the warm process that forks the timing processes."""

    def build_counts(self) -> dict[str, int]:
        """Counters of what building a model did so far in this process (a compiler's cache hits), if any."""
        return {}

    def gpu_problem(self, capability: tuple[int, int]) -> str | None:
        """Why it cannot run on a GPU of this compute capability, else None."""
        return None

    def peak_memory_mb(self, device: str) -> float:
        """The most memory this process needed where it computed, in MiB (CPU: its own pages' peak)."""
        index = hardware.device_index(device)
        return memory.own_peak_mb() if index is None else self.gpu_peak_mb(index)

    def current_memory_mb(self, device: str) -> float:
        """Memory this process holds now where it computes, in MiB (CPU: its own pages)."""
        index = hardware.device_index(device)
        return memory.own_mb() if index is None else self.gpu_held_mb(index)

    def gpu_held_mb(self, index: int) -> float:
        """GPU memory this process holds now: NVML's figure for it, unless the framework knows better."""
        return memory.gpu_process_memory_mb(index)

    def gpu_peak_mb(self, index: int) -> float:
        """The GPU memory the calls needed, read after them (what is still held, by default)."""
        return self.gpu_held_mb(index)


_REGISTRY: dict[tuple[str, str], Backend] = {}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. a module blocked with sys.modules[name] = None
        return False


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend known by its (runtime, precision)."""
    _REGISTRY[cls.runtime, cls.precision] = cls()
    return cls


def known() -> list[tuple[str, str]]:
    return sorted(_REGISTRY)


def _known_names() -> str:
    return ", ".join(f"{r}/{p}" for r, p in known())


def get(runtime: str, precision: str) -> Backend:
    try:
        return _REGISTRY[runtime, precision]
    except KeyError:
        raise ValueError(f"unknown variant {runtime}/{precision}; known: {_known_names()}") from None


def framework_of(runtime: str, precision: str) -> str:
    """The package that runs a variant (torch.compile's is torch), or the runtime's own name."""
    backend = _REGISTRY.get((runtime, precision))
    return backend.framework if backend is not None and backend.framework else runtime


def device_reference(runtime: str, precision: str) -> tuple[str, str] | None:
    """What a variant is gated against on a GPU: its framework's eager float32 there; None for float32 itself.

    A float32 variant is gated there against the network as defined: its
    outputs on the CPU, kept per model (`variants.write_defined_outputs`).
    """
    if precision == "float32":
        return None
    return framework_of(runtime, precision), "float32"


def problems(
    runtime: str, precision: str, devices: list[str], capabilities: dict[str, tuple[int, int]] | None = None
) -> list[str]:
    """Why a (runtime, precision) cannot be measured on these devices; empty when it can.

    `capabilities` holds the compute capability of each GPU device listed.
    """
    if (runtime, precision) not in _REGISTRY:
        return [f"{runtime}/{precision} is not supported; known: {_known_names()}"]
    backend = _REGISTRY[runtime, precision]
    if backend.framework and not _installed(backend.framework):
        return [f"{runtime}/{precision} needs {backend.framework}, which is not installed here: {backend.install_hint}"]
    kinds = {"cpu" if d == "cpu" else "gpu" for d in devices}
    found = [
        f"{runtime}/{precision} does not run on a {'CPU' if kind == 'cpu' else 'GPU'}: "
        f"{backend.unsupported_device_reason}"
        for kind in sorted(kinds - backend.device_kinds)
    ]
    for device, capability in (capabilities or {}).items():
        if device in devices and "gpu" in backend.device_kinds and (why := backend.gpu_problem(capability)):
            found.append(f"{runtime}/{precision} on {device}: {why}")
    return found
