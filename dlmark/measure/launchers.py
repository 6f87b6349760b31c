"""Starting, watching and judging measurement processes (the parent side).

Every measurement runs in a child process (`dlmark.measure.child` says why and
runs inside it). The two ways to start one share one protocol,
`Launcher`: `run(target, arg, ...)` calls `target(arg)` in a watched child
and returns how it ended, an `Outcome`, never raising for the child's
failures; `close()` ends what the launcher keeps running.

- `Fresh`: a new Python process per call, its framework imported each time.
- `Forker`: children forked from one warm process that imported the
  framework once: timings, and memory on a CPU and on a GPU.

Each child's own memory is watched against a limit, and its exit read:
a result, a framework error, an out-of-memory kill, a crash, a timeout.
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from dlmark.measure import job_files, memory
from dlmark.measure.child import die_with_parent
from dlmark.results.status import ERROR, OK, OUT_OF_MEMORY

Target = Callable[[Any], dict[str, Any]]


@dataclass
class Outcome:
    status: str
    value: dict[str, Any] | None
    error: str | None
    observed_peak_mb: float


class Launcher(Protocol):
    """What the scenarios use to run a measurement in a process of its own."""

    def run(
        self, target: Target, arg: Any, memory_limit_mb: float | None = None,
        timeout_s: float | None = None, poll_s: float = 0.05,
    ) -> Outcome: ...

    def close(self) -> None: ...


def child_command(mode: str, *paths: str) -> list[str]:
    """The command line of a child in one of `dlmark.measure.child.MODES`."""
    return [sys.executable, "-m", "dlmark.measure.child", mode, *paths]


def _start(mode: str, *paths: str, pipes: bool = False) -> subprocess.Popen:
    """A child process, dying with this one, that imports dlmark as this one does.

    A plain subprocess, not multiprocessing: spawn would rerun the parent's
    __main__, which under Snakemake is the job script itself.
    """
    pipe = subprocess.PIPE if pipes else None
    return subprocess.Popen(
        child_command(mode, *paths),
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
        stdin=pipe,
        stdout=pipe,
        bufsize=0 if pipes else -1,
        preexec_fn=die_with_parent,
    )


def _watch(
    pid: int,
    finished: Callable[[float], int | None],
    memory_limit_mb: float | None,
    timeout_s: float | None,
    poll_s: float,
) -> tuple[int | None, float, str | None]:
    """Watch process `pid` until `finished(poll_s)` gives its exit code.

    Returns (exit code, largest own memory seen, why it was killed). The
    process's own memory (`memory.ResidentSet.own_mb`: what it allocated,
    not the mapped libraries' pages) is polled so that a trial which would
    push the host into swap or the OOM killer is stopped early instead.
    """
    watched: int | None = pid
    observed = 0.0
    started = time.monotonic()
    while True:
        code = finished(poll_s)
        if code is not None:
            return code, observed, None
        try:
            if watched is not None:
                observed = max(observed, memory.resident_set(watched).own_mb)
        except OSError:  # ended between the two checks (its exit comes next), or no /proc
            watched = None
            continue
        if memory_limit_mb is not None and observed > memory_limit_mb:
            return None, observed, (
                f"exceeded the memory limit of {memory_limit_mb:.0f} MiB "
                f"(its own memory reached {observed:.0f} MiB)"
            )
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            return None, observed, f"timed out after {timeout_s:.0f} s"


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def _outcome(
    code: int | None, observed: float, killed_for: str | None, answer_path: str, memory_limit_mb: float | None
) -> Outcome:
    """How a watched process ended, from its answer file, exit code or the reason it was killed."""
    if killed_for is not None:
        status = OUT_OF_MEMORY if "memory" in killed_for else ERROR
        return Outcome(status, None, killed_for, observed)
    if not os.path.exists(answer_path):
        code = code or 0
        if code < 0 and -code == signal.SIGKILL:
            return Outcome(
                OUT_OF_MEMORY, None, "killed by SIGKILL (most likely the kernel's out-of-memory killer)", observed
            )
        if code < 0:
            return Outcome(ERROR, None, f"crashed with {_signal_name(-code)}", observed)
        # MXNet's own SIGSEGV handler prints "Segmentation fault" and exits with 255.
        return Outcome(
            ERROR, None, f"exited with status {code} without a result (its last words are in the job log)", observed
        )
    with open(answer_path, "rb") as f:
        status, value, error = pickle.load(f)
    if status == OK and value is not None:
        peak = float(value.get("child_peak_mb", 0.0))
        observed = max(observed, peak)
        if memory_limit_mb is not None and peak > memory_limit_mb:
            return Outcome(
                OUT_OF_MEMORY,
                None,
                f"exceeded the memory limit of {memory_limit_mb:.0f} MiB (its own memory peaked at {peak:.0f} MiB)",
                observed,
            )
    return Outcome(status, value, error, observed)


def _watched_outcome(
    process: subprocess.Popen, answer_path: str, memory_limit_mb: float | None, timeout_s: float | None,
    poll_s: float,
) -> Outcome:
    """Watch a child process of ours running its job to the end (or kill it), and say how it ended."""

    def finished(wait_s: float) -> int | None:
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    try:
        code, observed, killed_for = _watch(process.pid, finished, memory_limit_mb, timeout_s, poll_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return _outcome(code, observed, killed_for, answer_path, memory_limit_mb)


class _Closing:
    """`with launcher:` closes it."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Fresh(_Closing):
    """A new Python process per call: its memory is the call's own, its import paid each time.

    With `memory_limit_mb`, the child's own memory is watched and the child
    killed once it exceeds the limit (on a CPU the limit is a budget the
    user sets); its own peak (from VmHWM) is checked too, for spikes
    between polls.
    """

    def run(
        self, target: Target, arg: Any, memory_limit_mb: float | None = None,
        timeout_s: float | None = None, poll_s: float = 0.05,
    ) -> Outcome:
        workdir, job_path, answer_path = job_files.make(target, arg)
        try:
            process = _start("run", job_path, answer_path)
            return _watched_outcome(process, answer_path, memory_limit_mb, timeout_s, poll_s)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def run_isolated(target: Target, arg: Any, **limits: Any) -> Outcome:
    """`target(arg)` in a new process (`Fresh`); never raises for its failures."""
    return Fresh().run(target, arg, **limits)


class Forker(_Closing):
    """A warm process that forks fresh measurement processes on demand.

    Starting Python and importing MXNet costs more than a second, paid again
    by every process a point is measured in. This process pays it once
    (`preload(arg)`: pin the thread pools, import the framework, run
    nothing), then forks a child per measurement. A forked child builds its
    own network, memory pool and thread pools, as a new process does, and it
    is watched, killed and judged the same way (a crash is a status, not a
    dead job).

    Its memory is a new process's too. On a CPU a measurement counts the
    process's own pages, anonymous and shared (`dlmark.measure.memory`), and
    fork maps every anonymous page the warm process holds into the child:
    they count as a new process's own import does. Measured, six points'
    memory trials (resnet18_v1 float32 at batch 4 and 32, its ONNX Runtime
    at 16 and INT8 at 1, squeezenet1.1 at 16, inceptionv3 at 4), three
    forked and three new processes each: every forked peak lay within the
    new processes' own spread (at most 0.54 MiB), and a forked trial took
    0.3 to 2.5 s against 1.8 to 6.2 s (`benchmarks/fork_memory.py`,
    docs/validation.md). The mapped files' pages, which a child
    shares without counting until it touches them, are left out of the
    figure and mapped first (`memory.map_file_pages`). On a GPU the warm
    process never touches the device, so each child's device memory is its
    own.
    """

    def __init__(self, preload: Callable[[Any], None], arg: Any) -> None:
        self._workdir, job_path, _ = job_files.make(preload, arg)
        self._process = _start("forker", job_path, pipes=True)
        self._pending = b""
        ready = self._readline(None)
        if ready != "ready":
            self.close()
            raise RuntimeError(f"the warm measurement process failed to start (said {ready!r})")

    def _readline(self, timeout_s: float | None) -> str | None:
        """One protocol line, or None if none came within `timeout_s` (None: wait)."""
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""  # the warm process is gone
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def run(
        self, target: Target, arg: Any, memory_limit_mb: float | None = None,
        timeout_s: float | None = None, poll_s: float = 0.05,
    ) -> Outcome:
        """In a child forked from the warm process, which reports its pid and then its exit."""
        workdir, job_path, answer_path = job_files.make(target, arg)
        assert self._process.stdin is not None
        try:
            try:
                self._process.stdin.write(f"{job_path}\t{answer_path}\n".encode())
                pid = int(self._readline(None) or "")
            except (OSError, ValueError):
                return Outcome(ERROR, None, "the warm measurement process died", 0.0)

            def finished(wait_s: float) -> int | None:
                line = self._readline(wait_s)
                return None if line is None else int(line or "-9")

            code, observed, killed_for = _watch(pid, finished, memory_limit_mb, timeout_s, poll_s)
            if code is None:  # killed for its memory or time: collect its exit
                os.kill(pid, signal.SIGKILL)
                self._readline(None)
            return _outcome(code, observed, killed_for, answer_path, memory_limit_mb)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
