"""Memory an inference needs, read from the process that ran it.

Each measurement runs in a fresh process (see `dlmark.runner`), so the
process's own peak resident set is the memory that model at that batch
size needs on a CPU: framework, weights, activations and allocator pools
together. On a GPU the framework's own accounting is used, never a
nvidia-smi text delta, which also counts other processes.
"""

from __future__ import annotations

import os
import resource
import sys

import psutil

MB = 1024 * 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this program since it started, in MiB.

    On Linux this is VmHWM from /proc/self/status. getrusage's ru_maxrss
    survives exec, so a measurement process started by a larger parent (a
    Snakemake job, a test runner) would report the parent's size instead of
    its own: measured, a child that touched 10 MiB reported 311 MiB after a
    311 MiB parent started it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 1024 if sys.platform != "darwin" else peak / MB


def current_rss_mb(pid: int | None = None) -> float:
    """Resident set size now, of this process or of `pid`, in MiB."""
    return psutil.Process(pid).memory_info().rss / MB


def gpu_memory_used_mb(device_index: int) -> float:
    """Memory held on GPU `device_index` by this process's MXNet pool, in MiB.

    MXNet's pooled allocator keeps what it took until the process ends, so
    the amount in use after the timed calls is the peak the calls needed.
    """
    import mxnet as mx

    free, total = mx.context.gpu_memory_info(device_index)
    return (total - free) / MB


def gpu_process_memory_mb(device_index: int) -> float:
    """GPU memory NVML attributes to this process on that device, in MiB.

    Unlike the device's used memory, this leaves out other processes; it
    includes the CUDA context and the framework's cached blocks. Where NVML
    cannot see this process (a container's own PID namespace), the device's
    used memory stands in: an upper bound that also counts other processes.
    """
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if process.pid == os.getpid() and process.usedGpuMemory is not None:
                return process.usedGpuMemory / MB
        return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MB
    finally:
        pynvml.nvmlShutdown()
