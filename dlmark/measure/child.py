"""The child side of every measurement process, whichever scenario it measures.

A measurement runs in a process of its own (`dlmark.measure.launchers` starts and
watches it): started afresh, or forked from a warm process. This module is
what runs inside: the entry point (`python -m dlmark.measure.child MODE
...`), and what a measurement does first (pin the thread pools, log
progress, die with its parent).

Why a child at all: a framework crash (a segfault in a kernel, an abort in
the allocator) or an out-of-memory kill must become a recorded status, not
a dead workflow job; MXNet never returns memory after an allocation
failure, so the next trial needs a clean process anyway; and a process of
its own makes its memory (`dlmark.measure.memory`) that of exactly this
measurement.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import signal
import sys
import traceback
from typing import TextIO

from dlmark.measure import memory
from dlmark.results.status import ERROR, OK, OUT_OF_MEMORY

_OOM_MARKERS = ("out of memory", "bad_alloc", "cannot allocate memory", "memoryerror")


def log_progress(message: str) -> None:
    """A timestamped progress line on stderr, which the job log keeps."""
    print(f"[dlmark {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def limit_threads(threads: int) -> None:
    """Pin the framework's thread pools before it is imported.

    oneDNN/OpenMP read these once at start-up, so they must be set in the
    child before `import mxnet`; setting them later changes nothing.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux).

    A measurement whose job was killed (Snakemake killed with -9, a lost
    node) must not go on loading the machine for the next run.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def looks_like_oom(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _OOM_MARKERS)


def run_job(job_path: str, answer_path: str) -> None:
    """Run the pickled call and pickle how it ended: (status, value, error).

    The answer file appears whole or not at all (written, then renamed), so
    the parent never reads half an answer from a child that was killed.
    """
    with open(job_path, "rb") as f:
        target, arg = pickle.load(f)
    try:
        value = target(arg)
        value.setdefault("child_peak_mb", memory.own_peak_mb())
        try:  # what the mapped files held beside it, to diagnose a shift from the raw file
            value.setdefault("resident_set", memory.resident_set().to_dict())
        except OSError:
            pass
        answer = (OK, value, None)
    except MemoryError:
        answer = (OUT_OF_MEMORY, None, "MemoryError: " + traceback.format_exc(limit=3))
    except BaseException as exc:  # anything else the framework raises is recorded too
        text = f"{type(exc).__name__}: {exc}"
        status = OUT_OF_MEMORY if looks_like_oom(text) else ERROR
        answer = (status, None, text + "\n" + traceback.format_exc(limit=5))
    tmp = answer_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(answer, f)
    os.replace(tmp, answer_path)


def _preload_and_say_ready(preload_path: str) -> TextIO:
    """Run the pickled preload, then say "ready" on the protocol (stdout), which it returns.

    Anything else printed from here on goes to stderr, the job's log, and
    not into the protocol.
    """
    with open(preload_path, "rb") as f:
        preload, arg = pickle.load(f)
    preload(arg)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    protocol.write("ready\n")
    return protocol


def serve_forks(preload_path: str) -> None:
    """The warm process: preload, then fork one child per job line on stdin.

    It answers each job with the child's pid, then, once the child ended,
    its exit code (negative: the signal that ended it). Children write
    their answer files as fresh processes do.
    """
    protocol = _preload_and_say_ready(preload_path)
    for line in sys.stdin:
        job_path, answer_path = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                protocol.close()
                die_with_parent()
                run_job(job_path, answer_path)
                code = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        protocol.write(f"{pid}\n")
        _, status = os.waitpid(pid, 0)
        protocol.write(f"{os.waitstatus_to_exitcode(status)}\n")


def exit_at_once() -> None:
    """End a child whose answer is written, skipping the framework's teardown.

    MXNet's shutdown (engine threads, memory pools) takes about 0.2 s, paid
    by every measurement process and after every largest-batch trial; the
    answer file already holds everything, and the kernel frees the rest.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# The modes `dlmark.measure.launchers.child_command` starts a child in.
MODES = {"run": run_job, "forker": serve_forks}

if __name__ == "__main__":
    mode, *paths = sys.argv[1:]
    MODES[mode](*paths)
    if mode != "forker":  # the warm process ends when its parent closes its stdin
        exit_at_once()
