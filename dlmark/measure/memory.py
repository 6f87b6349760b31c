"""Memory an inference needs, read from the process that ran it.

Each measurement runs in a process of its own (see `dlmark.measure.launchers`),
so what that process holds is the memory that model at that batch size
needs on a CPU: framework, weights, activations and allocator pools
together.

On a CPU that is the process's own memory, anonymous and shared-memory
pages, not its whole resident set. The resident set also counts the pages
of mapped files (the framework's libraries) that happen to be mapped, and
how many are depends on how those files reached the page cache, not on
the model. Measured on the development VM (kernel 6.18, ext4): with
libmxnet.so read into the cache by read() (large readahead folios, mapped
whole on a fault), resnet18_v1 at batch 4 peaked at 473 MiB, 176 of them
file pages; after `drop_caches`, or with the file freshly written, the
same process peaked at 394 MiB with 97 MiB of file pages. Its own memory
was 297.0 and 296.8 MiB. The file pages are recorded beside the figure
(`ResidentSet`), never mixed into it, and a memory trial maps all of them
before it builds the model (`map_file_pages`), so that none joins after the
peak and hides part of it.

On a GPU the framework's own accounting is used, never a nvidia-smi text
delta, which also counts other processes.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import asdict, dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class ResidentSet:
    """A process's resident set by kind of page, in MiB (from /proc/<pid>/status).

    `own_mb` is what the process allocated (anonymous and shared memory);
    `file_mb` is the mapped files' pages, shared with the page cache and
    reclaimable. `peak_mb` is VmHWM, the high-water mark of the total.
    """

    peak_mb: float
    total_mb: float
    anon_mb: float
    file_mb: float
    shmem_mb: float

    @property
    def own_mb(self) -> float:
        return self.anon_mb + self.shmem_mb

    @property
    def own_peak_mb(self) -> float:
        """The peak of the process's own memory: the total's peak less the mapped files' pages.

        Exact when no file page was mapped after the peak: the file pages
        were then the same at the peak as now. A page first touched after
        the peak (a library's code run only by the second call, a fault that
        maps a large folio whole) makes it low by that page, and how many
        there are depends on how the files reached the page cache. So a
        memory trial maps every page of its libraries first
        (`map_file_pages`): without that, resnet18_v1's INT8 trial at batch
        1 read 217.2 to 217.5 MiB after `drop_caches` and 219.0 to 219.5
        with the library read into the cache, against an own peak of 222.2
        to 223.8 sampled over the trial; with it, 222.9 to 223.8 in both.
        """
        return self.peak_mb - self.file_mb

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


_FIELDS = {"VmHWM": "peak_mb", "VmRSS": "total_mb", "RssAnon": "anon_mb", "RssFile": "file_mb", "RssShmem": "shmem_mb"}


# glibc's M_MMAP_THRESHOLD (malloc.h), and the value it starts from before it adjusts it.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Keep glibc's mmap threshold fixed in this process; True where glibc took it.

    By default glibc raises the threshold each time a large mmapped block is
    freed, so later blocks of that size come from the heap, which keeps its
    freed pages. Whether that happens before a peak depends on the order of
    frees among the framework's threads, so fresh processes of one point
    peaked at one of two values. Fixed (what MALLOC_MMAP_THRESHOLD_ does at
    start-up), every large block goes back to the system when freed and the
    peak is what was live at once (docs/methodology.md, "Memory on a CPU:
    the process's own pages"; the trials in docs/validation.md).
    """
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc
        return False


# madvise(2) advice that maps a range's pages without writing them (Linux 5.14 and later).
_MADV_POPULATE_READ = 22


def map_file_pages() -> float | None:
    """Map every page of this process's read-only file mappings now; the MiB of file pages then resident.

    Called before a memory trial builds its model, so that its file pages
    stay what they are through the trial and `ResidentSet.own_peak_mb` is
    the process's own peak in whatever state the page cache is. Writable
    mappings are left alone: a page mapped from the file and then written
    would move from the file's pages to the process's own. None where the
    kernel cannot (before 5.14), and the peak is then a lower bound.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mapped = False
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].startswith("/") or fields[1][:2] != "r-":
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            # A mapping past the end of its file fails (EFAULT) and is skipped; an old kernel fails them all.
            mapped |= libc.madvise(start, end - start, _MADV_POPULATE_READ) == 0
    return resident_set().file_mb if mapped else None


def release_free_heap() -> None:
    """Give the allocator's free heap pages back to the system (glibc), so that the resident set is what is live.

    Before a trial's first call: what building the model freed and the
    heap kept varied from process to process (resnet18_v1's INT8 trial at
    batch 1: 186.2 to 188.6 MiB over six processes; after this, 185.0 to
    185.1), and the line the largest-batch search draws starts there.
    """
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def resident_set(pid: int | str = "self") -> ResidentSet:
    """The resident set of this process (or `pid`) now; an OSError where /proc has none."""
    found = dict.fromkeys(_FIELDS.values(), 0.0)
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in _FIELDS:
                found[_FIELDS[key]] = int(value.split()[0]) / 1024  # kB
    return ResidentSet(**found)


def own_peak_mb() -> float:
    """The peak of this process's own memory since it started, in MiB (see `ResidentSet`).

    VmHWM and not getrusage's ru_maxrss: that survives exec, so a
    measurement process started by a larger parent (a Snakemake job, a test
    runner) would report the parent's size instead of its own: measured, a
    child that touched 10 MiB reported 311 MiB after a 311 MiB parent
    started it. Without /proc (not Linux), the whole peak resident set.
    """
    try:
        return resident_set().own_peak_mb
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / MB  # Linux KiB, macOS bytes


def own_mb(pid: int | None = None) -> float:
    """This process's (or `pid`'s) own memory now, anonymous and shared, in MiB."""
    try:
        return resident_set(pid or "self").own_mb
    except OSError:
        import psutil

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
