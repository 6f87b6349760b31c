"""Run one measurement in a fresh child process and report how it ended.

Why a child: a framework crash (a segfault in a kernel, an abort in the
allocator) or an out-of-memory kill must become a recorded status, not a
dead workflow job; MXNet never returns memory after an allocation failure,
so the next trial needs a clean process anyway; and a fresh process makes
its own peak resident set the memory of exactly this measurement.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import psutil

from dlmark.memory import MB, peak_rss_mb

OK = "ok"
OUT_OF_MEMORY = "out_of_memory"
ERROR = "error"

_OOM_MARKERS = ("out of memory", "bad_alloc", "cannot allocate memory", "memoryerror")


@dataclass
class Outcome:
    status: str
    value: dict[str, Any] | None
    error: str | None
    observed_peak_mb: float


def looks_like_oom(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _OOM_MARKERS)


def _child_main(job_path: str, answer_path: str) -> None:
    """Entry point of the child: run the pickled call, pickle its ending."""
    with open(job_path, "rb") as f:
        target, arg = pickle.load(f)
    try:
        value = target(arg)
        value.setdefault("child_peak_rss_mb", peak_rss_mb())
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


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def run_isolated(
    target: Callable[[Any], dict[str, Any]],
    arg: Any,
    memory_limit_mb: float | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.05,
) -> Outcome:
    """Call `target(arg)` in a spawned process; never raise for its failures.

    With `memory_limit_mb`, the child's resident set is watched and the
    child killed once it exceeds the limit: on a CPU the limit is a budget
    the user sets, and enforcing it from outside means a trial that would
    push the host into swap or the OOM killer stops early instead. The
    child's own peak (getrusage) is checked too, for spikes between polls.
    """
    if getattr(target, "__module__", None) == "__main__":
        raise ValueError("run_isolated needs a target importable by module name, not from __main__")
    workdir = tempfile.mkdtemp(prefix="dlmark-child-")
    job_path = os.path.join(workdir, "job.pkl")
    answer_path = os.path.join(workdir, "answer.pkl")
    with open(job_path, "wb") as f:
        pickle.dump((target, arg), f)
    # A plain subprocess, not multiprocessing: spawn would re-run the
    # parent's __main__, which under Snakemake is the job script itself.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    process = subprocess.Popen(
        [sys.executable, "-m", "dlmark.runner", job_path, answer_path], env=env
    )
    watched = psutil.Process(process.pid)
    observed = 0.0
    started = time.monotonic()
    killed_for: str | None = None
    try:
        while True:
            try:
                process.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                observed = max(observed, watched.memory_info().rss / MB)
            except psutil.Error:
                continue
            if memory_limit_mb is not None and observed > memory_limit_mb:
                killed_for = (
                    f"exceeded the memory limit of {memory_limit_mb:.0f} MiB "
                    f"(resident set reached {observed:.0f} MiB)"
                )
                break
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                killed_for = f"timed out after {timeout_s:.0f} s"
                break
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    message = None
    if killed_for is None and os.path.exists(answer_path):
        with open(answer_path, "rb") as f:
            message = pickle.load(f)
    shutil.rmtree(workdir, ignore_errors=True)

    if killed_for is not None:
        status = OUT_OF_MEMORY if "memory" in killed_for else ERROR
        return Outcome(status, None, killed_for, observed)
    if message is None:
        code = process.returncode or 0
        if code < 0 and -code == signal.SIGKILL:
            return Outcome(
                OUT_OF_MEMORY,
                None,
                "killed by SIGKILL (most likely the kernel's out-of-memory killer)",
                observed,
            )
        if code < 0:
            return Outcome(ERROR, None, f"crashed with {_signal_name(-code)}", observed)
        return Outcome(ERROR, None, f"exited with status {code} without a result", observed)

    status, value, error = message
    if status == OK and value is not None:
        peak = float(value.get("child_peak_rss_mb", 0.0))
        observed = max(observed, peak)
        if memory_limit_mb is not None and peak > memory_limit_mb:
            return Outcome(
                OUT_OF_MEMORY,
                None,
                f"exceeded the memory limit of {memory_limit_mb:.0f} MiB (peak {peak:.0f} MiB)",
                observed,
            )
    return Outcome(status, value, error, observed)


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
