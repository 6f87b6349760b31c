"""What a result ran on: devices, CPU features, software versions.

A throughput number is meaningless without the hardware and software
behind it, so every record carries them. Reading devices must not need
MXNet (config validation runs inside every `snakemake -n`), so GPUs are
counted through NVML.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from importlib import metadata

import psutil

from dlmark.measure.memory import MB

CPU_FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")
DEVICE_PATTERN = r"cpu|gpu[0-9]+"


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS_THAT_MATTER if flag in have]
    except OSError:
        pass
    return []


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def resolve_threads(requested: int) -> int:
    """Threads for a measurement; 0 means every physical core of this machine.

    Resolved inside the job, not when Snakemake plans the run: on a cluster
    the planning host (a login node) and the node that measures differ.
    More threads than logical CPUs is refused: they would take turns on the
    cores, and the benchmark would time the scheduler.
    """
    logical = os.cpu_count() or 1
    if requested > logical:
        raise ValueError(
            f"{requested} threads asked, but this machine has {logical} logical CPUs; "
            f"use at most {logical}, or 0 for all its physical cores ({physical_cores()})"
        )
    return requested or physical_cores()


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees; empty where there are none."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no GPU to benchmark
        return []
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = []
        for i in range(count):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else name)
        return names
    finally:
        pynvml.nvmlShutdown()


def gpu_total_memory_mb(index: int) -> float:
    """Total memory of GPU `index` in MiB, from NVML."""
    import pynvml

    pynvml.nvmlInit()
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
        return info.total / MB
    finally:
        pynvml.nvmlShutdown()


def gpu_capabilities() -> list[tuple[int, int]]:
    """(major, minor) CUDA compute capability of each GPU NVML sees, gpu0 first (9.0 is Hopper)."""
    count = len(gpu_names())
    if not count:
        return []
    import pynvml

    pynvml.nvmlInit()
    try:
        return [
            tuple(pynvml.nvmlDeviceGetCudaComputeCapability(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
    finally:
        pynvml.nvmlShutdown()


def device_index(device: str) -> int | None:
    """`gpu3` -> 3, `cpu` -> None."""
    match = re.fullmatch(r"gpu([0-9]+)", device)
    return int(match.group(1)) if match else None


def device_name(device: str) -> str:
    index = device_index(device)
    if index is None:
        return cpu_name()
    names = gpu_names()
    return names[index] if index < len(names) else f"GPU {index}"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# GPU builds of a framework, as pip names them (they install the same module).
GPU_BUILDS = {
    "mxnet": ("mxnet-cu112", "mxnet-cu116", "mxnet-cu117"),
    "onnxruntime": ("onnxruntime-gpu",),
}


def software(runtime: str) -> str:
    """The framework that ran the model, as 'package version' (runtimes are named as their
    packages; a GPU build installs under another name, such as onnxruntime-gpu or mxnet-cu117)."""
    for name in (runtime, *GPU_BUILDS.get(runtime, ())):
        if version := package_version(name):
            return f"{name} {version}"
    return f"{runtime} unknown"


def host_facts() -> dict[str, object]:
    """Everything about the host that can change a benchmark result."""
    return {
        "hostname": platform.node(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "physical_cores": physical_cores(),
        "logical_cores": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / MB),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: package_version(name)
            for name in ("mxnet", "numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "torch", "snakemake")
        },
        "gpus": gpu_names(),
        # On a cluster: the batch job that measured, to find its log and node.
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
