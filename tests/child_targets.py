"""Functions the launcher tests execute in a child process (importable by name)."""

import os
import signal


def touched(megabytes):
    """`megabytes` MiB allocated and written page by page, so that every page counts in the resident set."""
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


def succeed(arg):
    return {"echo": arg}


def raise_oom(arg):
    raise RuntimeError("[12:00:00] src/storage/storage.cc: Failed to allocate: out of memory")


def raise_error(arg):
    raise ValueError("bad weights file")


def segfault(arg):
    os.kill(os.getpid(), signal.SIGSEGV)


def sigkill(arg):
    os.kill(os.getpid(), signal.SIGKILL)


def allocate(megabytes):
    """Touch `megabytes` MiB so they count in the resident set, then hold them."""
    import time

    block = touched(megabytes)
    time.sleep(2)
    return {"held_mb": len(block) // 2**20}


def killed_above_16(spec):
    """A trial the kernel 'kills' above batch 16; below, memory is 100 + 50 MiB per image."""
    if spec.batch_size > 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"peak_memory_mb": 100.0 + 50.0 * spec.batch_size}


def measure_then_crash(job):
    """A real timing process first; a segfault in every later one.

    The count lives in a file named by DLMARK_TEST_COUNTER: each process is
    fresh, so nothing else survives from one to the next.
    """
    from pathlib import Path

    from dlmark.scenarios import throughput

    counter = Path(os.environ["DLMARK_TEST_COUNTER"])
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    if runs >= 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return throughput.measure_rounds(job)


def report_pid_and_wait(pid_file):
    """Write this process's pid, then wait to be killed."""
    import time
    from pathlib import Path

    Path(pid_file + ".tmp").write_text(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(60)
    return {}


def fail_preload(arg):
    raise ImportError("no module named 'framework'")


MAPPED = None


def map_file_and_allocate(arg):
    """Map a whole file into memory (every page touched), then allocate a known amount.

    `arg` is (path of the file, MiB to allocate). The file's pages count in
    the resident set as the framework's libraries do; the allocation is the
    process's own memory.
    """
    import mmap

    from dlmark.measure import memory

    global MAPPED
    path, megabytes = arg
    with open(path, "rb") as f:
        mapped = MAPPED = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)  # stays mapped, as a library does
    checksum = sum(mapped[i] for i in range(0, len(mapped), 4096))  # fault every page in
    baseline = memory.own_mb()
    block = touched(megabytes)
    del block  # freed before the answer: only the peak remembers it
    return {"baseline_mb": baseline, "checksum": checksum, "mapped_mb": len(mapped) / 2**20}


HELD = None


def map_file_and_hold(arg):
    """A warm process's import, in small: a file mapped whole (a library) and memory allocated and kept.

    `arg` is (path of the file, MiB to hold).
    """
    import mmap

    global MAPPED, HELD
    path, megabytes = arg
    with open(path, "rb") as f:
        MAPPED = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    sum(MAPPED[i] for i in range(0, len(MAPPED), 4096))
    HELD = touched(megabytes)


def allocate_after_mapping_files(megabytes):
    """A memory trial, in small: the files' pages mapped first, then a known amount allocated and freed."""
    from dlmark.measure import memory

    memory.map_file_pages()
    baseline = memory.own_mb()
    block = touched(megabytes)
    del block
    return {"baseline_mb": baseline}


def map_hold_and_allocate(arg):
    """What a forked trial does across its warm parent and itself, in one fresh process."""
    held, megabytes = arg
    map_file_and_hold(held)
    return allocate_after_mapping_files(megabytes)


def allocate_then_read_a_mapped_file(arg):
    """Map a file, allocate and free a known amount, and only then read the file's pages, as a library first run late.

    `arg` is (path of the file, MiB to allocate, whether to map the file's pages first as a memory trial does).
    """
    import mmap

    from dlmark.measure import memory

    global MAPPED
    path, megabytes, map_first = arg
    with open(path, "rb") as f:
        mapped = MAPPED = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    files_mb = memory.map_file_pages() if map_first else None
    baseline = memory.own_mb()
    block = touched(megabytes)
    del block
    checksum = sum(mapped[i] for i in range(0, len(mapped), 4096))  # the file's pages, after the peak
    return {"baseline_mb": baseline, "checksum": checksum, "files_mapped_first_mb": files_mb}


def serve_fixed_service(spec, service_s=0.004):
    """The serving scenario against a system under test that computes nothing for `service_s` a batch.

    DLMARK_TEST_FAIL_BATCH=1 makes every batch raise instead.
    """
    import time

    from dlmark.scenarios import serving_child

    def busy():
        if os.environ.get("DLMARK_TEST_FAIL_BATCH"):
            raise RuntimeError("the model failed")
        end = time.perf_counter() + service_s
        while time.perf_counter() < end:
            pass

    return serving_child.run_scenario(spec, {size: busy for size in spec.batcher.padded_sizes()})


def serve_then_segfault(spec):
    os.kill(os.getpid(), signal.SIGSEGV)
