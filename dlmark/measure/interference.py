"""What the rest of the machine did while a benchmark measured.

On a CPU a benchmark shares its cores with everything else on the host.
One other busy process costs a multi-threaded benchmark more than its fair
share: OpenMP threads wait at every barrier for a sibling that the
scheduler preempted, so two threads on a 2-core machine lose two thirds of
their speed to one busy neighbour. Such a number is wrong, not noisy, and
a confidence interval does not show it. So every measurement watches the
machine, and a disturbed one is measured again or marked.

Signals, all from the kernel's own counters (cheap, no sampling thread):
- cpu_share: this process's CPU time / (wall x threads). A benchmark that
  was ready to run all the time but got less CPU was preempted.
- other_cpu_cores: CPU time of every other process (the whole machine's
  busy time less this process's) per second of wall: how many cores the
  rest of the machine kept busy.
- steal: time the hypervisor gave this VM's CPUs to other guests.
- cpu_pressure: Linux PSI "some" share of wall time in which a runnable
  task waited for a CPU (recorded for the reader; it also counts this
  benchmark's own threads, so it is not a verdict by itself).
- gpu_other_processes: processes other than this one on the same GPU (NVML).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PRESSURE = Path("/proc/pressure/cpu")
_STAT = Path("/proc/stat")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class NoisePolicy:
    """When a measurement counts as disturbed, and what to do then: the config's `noise` block.

    Defaults (in the schema) leave a quiet machine's measurements alone
    (the job's own watcher uses a few percent of one core) and catch one
    busy neighbour on any core the benchmark uses.
    """

    min_cpu_share: float
    max_other_cpu_cores: float
    max_steal: float
    retries: int  # disturbed processes measured again, per point
    quiet_wait_seconds: float  # how long to wait for a quiet machine before each retry


@dataclass(frozen=True)
class _Snapshot:
    wall: float
    own_cpu: float
    machine_busy: float | None  # seconds of all CPUs; None where /proc/stat is absent
    steal: float | None
    pressure_us: float | None


def _proc_stat() -> tuple[float, float] | tuple[None, None]:
    """Busy and steal seconds of all CPUs since boot, from /proc/stat."""
    try:
        first = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None, None
    # user nice system idle iowait irq softirq steal guest guest_nice
    ticks = [float(x) for x in first[1:]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]  # guest time is inside user
    steal = ticks[7] if len(ticks) > 7 else 0.0
    return busy / _TICK, steal / _TICK


def _pressure_us() -> float | None:
    """Microseconds in which some runnable task waited for a CPU (PSI), since boot."""
    try:
        for line in _PRESSURE.read_text().splitlines():
            if line.startswith("some"):
                return float(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def _snapshot() -> _Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    busy, steal = _proc_stat()
    return _Snapshot(time.monotonic(), usage.ru_utime + usage.ru_stime, busy, steal, _pressure_us())


def others_on_gpu(listed: list[int], own_pid: int) -> list[int]:
    """The processes NVML lists on a GPU, less this one (which holds a context there).

    Inside a container NVML numbers processes as the host does, so this
    process is not listed under its own PID. One listed process is then this
    one: a single entry is nobody else; with several, which one is this
    process is unknown, so all are named (and someone else is there).
    """
    pids = set(listed)
    if own_pid in pids:
        return sorted(pids - {own_pid})
    return [] if len(pids) <= 1 else sorted(pids)


def gpu_other_processes(device_index: int) -> list[int]:
    """PIDs (as NVML numbers them) of other processes holding memory on GPU `device_index`."""
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        running = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        running += pynvml.nvmlDeviceGetGraphicsRunningProcesses(handle)
        return others_on_gpu([p.pid for p in running], os.getpid())
    finally:
        pynvml.nvmlShutdown()


@dataclass(frozen=True)
class Interference:
    """The machine's state over one measurement, and whether it disturbed it."""

    wall_seconds: float
    cpu_share: float
    other_cpu_cores: float | None
    interference: float | None  # other processes' CPU as a fraction of the machine's
    steal: float | None  # fraction of the machine's CPU time
    cpu_pressure: float | None
    gpu_other_processes: list[int] | None
    disturbed: str | None  # why, in words; None when the machine left it alone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def others_too_busy(other_cpu_cores: float, threads: int, logical_cpus: int, limits: NoisePolicy) -> bool:
    """Whether other processes used more than the cores the benchmark leaves free, plus a margin.

    A 1-thread benchmark on 2 cores is not slowed by one busy neighbour
    (measured), so only use beyond the spare cores counts.
    """
    return other_cpu_cores > max(0, logical_cpus - threads) + limits.max_other_cpu_cores


def judge(
    cpu_share: float,
    other_cpu_cores: float | None,
    steal: float | None,
    gpu_others: list[int] | None,
    threads: int,
    logical_cpus: int,
    on_gpu: bool,
    limits: NoisePolicy,
) -> str | None:
    """Why a measurement was disturbed, or None (a GPU benchmark keeps one CPU busy)."""
    reasons = []
    if not on_gpu and cpu_share < limits.min_cpu_share:
        reasons.append(f"got {cpu_share:.0%} of its {threads} thread(s)' CPU time")
    if other_cpu_cores is not None and others_too_busy(
        other_cpu_cores, 1 if on_gpu else threads, logical_cpus, limits
    ):
        reasons.append(f"other processes kept {other_cpu_cores:.2f} of {logical_cpus} CPUs busy")
    if steal is not None and steal > limits.max_steal:
        reasons.append(f"the hypervisor stole {steal:.0%} of the CPU time")
    if gpu_others:
        reasons.append(f"other processes on the GPU: {', '.join(map(str, gpu_others))}")
    return "; ".join(reasons) or None


class Watch:
    """Context manager measuring interference over its block.

        with Watch(threads=2, limits=...) as watch:
            ... timed work ...
        watch.result  # Interference
    """

    def __init__(self, threads: int, limits: NoisePolicy, gpu_index: int | None = None) -> None:
        self.threads = threads
        self.limits = limits
        self.gpu_index = gpu_index
        self.result: Interference | None = None
        self._start: _Snapshot | None = None

    def __enter__(self) -> "Watch":
        self._start = _snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        end = _snapshot()
        start = self._start
        wall = max(end.wall - start.wall, 1e-9)
        own = end.own_cpu - start.own_cpu
        cpus = os.cpu_count() or 1
        others = steal = None
        if start.machine_busy is not None and end.machine_busy is not None:
            # /proc/stat counts in ticks (10 ms): a short window may read a
            # little below this process's own time; that is no one else's.
            others = max(0.0, (end.machine_busy - start.machine_busy) - own) / wall
            steal = max(0.0, end.steal - start.steal) / (wall * cpus)
        pressure = None
        if start.pressure_us is not None and end.pressure_us is not None:
            pressure = (end.pressure_us - start.pressure_us) / 1e6 / wall
        gpu_others = gpu_other_processes(self.gpu_index) if self.gpu_index is not None else None
        share = own / (wall * self.threads)
        self.result = Interference(
            wall_seconds=wall,
            cpu_share=share,
            other_cpu_cores=others,
            interference=None if others is None else others / cpus,
            steal=steal,
            cpu_pressure=pressure,
            gpu_other_processes=gpu_others,
            disturbed=judge(
                share, others, steal, gpu_others, self.threads, cpus, self.gpu_index is not None, self.limits
            ),
        )


def why_busy(limits: NoisePolicy, threads: int, window_s: float = 0.5) -> str | None:
    """What keeps the machine from being quiet over a short window, or None if it is quiet.

    Quiet means the rest of the machine leaves `threads` cores free and the
    hypervisor steals no more than the policy allows: a VM's host steals in
    bursts, and a retry begun inside one is disturbed again.
    """
    start_busy, start_steal = _proc_stat()
    time.sleep(window_s)
    end_busy, end_steal = _proc_stat()
    if start_busy is None or end_busy is None or start_steal is None or end_steal is None:
        return None
    cpus = os.cpu_count() or 1
    # This (waiting) process uses next to nothing, so the machine's busy time is the others'.
    others = (end_busy - start_busy) / window_s
    if others_too_busy(others, threads, cpus, limits):
        return f"{others:.2f} CPUs used by others"
    steal = (end_steal - start_steal) / (window_s * cpus)
    if steal > limits.max_steal:
        return f"the hypervisor stole {steal:.0%} of the CPU time"
    return None


def wait_for_quiet(limits: NoisePolicy, threads: int, max_wait_s: float, log: Any = None) -> bool:
    """Wait (at most `max_wait_s`) until the machine is quiet; True if it became quiet."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = why_busy(limits, threads)
        if busy is None:
            return True
        if time.monotonic() >= deadline:
            if log:
                log(f"machine still busy after {max_wait_s:.0f} s ({busy})")
            return False
