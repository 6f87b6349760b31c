"""Energy over the timed calls, read from the hardware's own cumulative counters.

Energy per image is measured, never estimated from a rated power:
- on an NVIDIA GPU, NVML's total energy counter
  (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver
  loaded; Volta and later), which the driver updates about every 100 ms;
- on a CPU, the RAPL package domain in the powercap sysfs
  (`/sys/class/powercap/intel-rapl:N/energy_uj`, microjoules, wrapping at
  `max_energy_range_uj`; AMD's Zen CPUs expose the same interface), summed
  over the packages. Since Linux 5.10 only root may read it, and most VMs
  do not expose it at all.

A counter is read before and after each timed block and the differences
are summed per point, so a point's energy covers its own calls only, even
though its blocks alternate with other points'. Because the counter moves
in steps, a window shorter than `MIN_WINDOW_S` says so instead of giving a
number that is mostly rounding.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# NVML's counter updates about every 100 ms; a second of timed calls keeps its step under 10%.
MIN_WINDOW_S = 1.0
RAPL_ROOT = "/sys/class/powercap"


class Meter(Protocol):
    """A cumulative energy counter: `joules()` only ever grows (wrap-around undone)."""

    source: str

    def joules(self) -> float: ...


class NvmlMeter:
    source = "nvml"

    def __init__(self, index: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._pynvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.joules()  # raises NVMLError_NotSupported before Volta

    def joules(self) -> float:
        return self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


@dataclass
class _Domain:
    path: Path
    range_uj: int
    last_uj: int
    wraps: int = 0


class RaplMeter:
    """The CPU packages' RAPL energy, summed, each counter's wrap-around undone."""

    source = "rapl"

    def __init__(self, root: str = RAPL_ROOT) -> None:
        # Package domains are the top-level zones (intel-rapl:0, :1, ...), not their subzones (intel-rapl:0:0).
        zones = sorted(p for p in glob.glob(os.path.join(root, "intel-rapl:*")) if p.count(":") == 1)
        self._domains = []
        for zone in zones:
            energy = Path(zone, "energy_uj")
            self._domains.append(_Domain(energy, int(Path(zone, "max_energy_range_uj").read_text()),
                                         int(energy.read_text())))
        if not self._domains:
            raise FileNotFoundError(f"no RAPL package domain under {root}")

    def joules(self) -> float:
        total = 0.0
        for domain in self._domains:
            now = int(domain.path.read_text())
            if now < domain.last_uj:  # the counter wrapped since the last read
                domain.wraps += 1
            domain.last_uj = now
            total += domain.wraps * (domain.range_uj + 1) + now
        return total / 1e6


def meter(device_index: int | None, rapl_root: str = RAPL_ROOT) -> tuple[Meter | None, str | None]:
    """The counter for a device (None: the CPU), or None and why there is none."""
    try:
        return (NvmlMeter(device_index) if device_index is not None else RaplMeter(rapl_root)), None
    except PermissionError:
        return None, f"RAPL energy under {rapl_root} is readable by root only (Linux 5.10 and later)"
    except FileNotFoundError:
        return None, f"this machine exposes no RAPL energy counter ({rapl_root}); most VMs do not"
    except Exception as exc:  # noqa: BLE001  (NVML's errors: no counter before Volta, no driver)
        return None, f"NVML gives no energy counter for this GPU ({type(exc).__name__}: {exc})"


@dataclass(frozen=True)
class Energy:
    """A point's energy over its timed blocks, summed over blocks and processes."""

    joules: float
    seconds: float
    source: str

    @property
    def power_w(self) -> float | None:
        return self.joules / self.seconds if self.seconds and self.long_enough else None

    @property
    def long_enough(self) -> bool:
        return self.seconds >= MIN_WINDOW_S

    @property
    def note(self) -> str | None:
        if self.long_enough:
            return None
        return (f"energy not given: {self.seconds:.2f} s of timed calls is shorter than the "
                f"{MIN_WINDOW_S:g} s the {self.source} counter's resolution needs")
