"""Functions the runner tests execute in a child process (importable by name)."""

import os
import signal


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

    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(2)
    return {"held_mb": len(block) // 2**20}


def killed_above_16(spec):
    """A trial the kernel 'kills' above batch 16; below, memory is 100 + batch MiB."""
    if spec.batch_size > 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"peak_memory_mb": 100.0 + spec.batch_size}
