"""Run one measurement in a fresh child process and report how it ended.

Why a child: a framework crash (a segfault in a kernel, an abort in the
allocator) or an out-of-memory kill must become a recorded status, not a
dead workflow job; MXNet never returns memory after an allocation failure,
so the next trial needs a clean process anyway; and a fresh process makes
its own memory (see `dlmark.memory`) the memory of exactly this measurement.
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from dlmark import memory

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


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


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


def _job_files(target: Callable[[Any], dict[str, Any]], arg: Any) -> tuple[str, str, str]:
    if getattr(target, "__module__", None) == "__main__":
        raise ValueError("run_isolated needs a target importable by module name, not from __main__")
    workdir = tempfile.mkdtemp(prefix="dlmark-child-")
    job_path = os.path.join(workdir, "job.pkl")
    with open(job_path, "wb") as f:
        pickle.dump((target, arg), f)
    return workdir, job_path, os.path.join(workdir, "answer.pkl")


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
                OUT_OF_MEMORY,
                None,
                "killed by SIGKILL (most likely the kernel's out-of-memory killer)",
                observed,
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


def _child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def run_isolated(
    target: Callable[[Any], dict[str, Any]],
    arg: Any,
    memory_limit_mb: float | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.05,
) -> Outcome:
    """Call `target(arg)` in a new Python process; never raise for its failures.

    With `memory_limit_mb`, the child's own memory is watched and the
    child killed once it exceeds the limit: on a CPU the limit is a budget
    the user sets. The child's own peak (from VmHWM) is checked too, for
    spikes between polls.
    """
    workdir, job_path, answer_path = _job_files(target, arg)
    # A plain subprocess, not multiprocessing: spawn would re-run the
    # parent's __main__, which under Snakemake is the job script itself.
    process = subprocess.Popen(
        [sys.executable, "-m", "dlmark.runner", job_path, answer_path],
        env=_child_env(),
        preexec_fn=die_with_parent,
    )
    return _watched_outcome(process, workdir, answer_path, memory_limit_mb, timeout_s, poll_s)


def _watched_outcome(
    process: subprocess.Popen,
    workdir: str,
    answer_path: str,
    memory_limit_mb: float | None,
    timeout_s: float | None,
    poll_s: float,
) -> Outcome:
    """Watch a fresh child running its job to the end (or kill it), and say how it ended."""

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
    try:
        return _outcome(code, observed, killed_for, answer_path, memory_limit_mb)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Prestarted:
    """Fresh processes started one ahead, for jobs that measure memory only.

    A largest-batch trial must be a fresh process (its peak resident set is
    the trial's memory), and most of a small trial's time is Python starting
    and importing the framework (about 1.1 of 1.55 s for resnet18_v1 at
    batch 8 on a CPU). This keeps the next process started: it runs
    `preload(arg)` (pin the thread pools, import the framework, run nothing,
    as `Forker`'s warm process does) and then waits for its job while the
    current one runs. Each process still runs one job and is watched, killed and judged as
    `run_isolated`'s are, and it shares no memory with the one before, so
    its peak is a fresh process's.

    Not for timings: the next process imports on the same cores while the
    current one computes (its OpenMP threads sleep rather than spin while
    they wait, so that the import slows the computing less: 0.73 s against
    0.95 s for that trial's job, measured). It also holds the framework's
    memory while it waits, beside the job being measured.

        with Prestarted(preload, arg) as starter:
            outcome = starter.run(target, arg)
    """

    def __init__(self, preload: Callable[[Any], None], arg: Any) -> None:
        self._workdir, self._preload_path, _ = _job_files(preload, arg)
        self._next: subprocess.Popen | None = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dlmark.runner", "--prestarted", self._preload_path],
            env=dict(_child_env(), OMP_WAIT_POLICY="PASSIVE"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )

    def run(
        self,
        target: Callable[[Any], dict[str, Any]],
        arg: Any,
        memory_limit_mb: float | None = None,
        timeout_s: float | None = None,
        poll_s: float = 0.05,
    ) -> Outcome:
        """Like `run_isolated`, in the process started before; the one after starts now.

        The one after starts only once this one has imported: two processes
        importing side by side, measured, made the first trials' peaks 3 to
        4 MiB lower (squeezenet1.1 at batch 57: 635.9 and 637.0 against
        640.0 to 640.4 in fresh processes), as if another allocation pattern.
        """
        process = self._next or self._start()
        assert process.stdin is not None and process.stdout is not None
        process.stdout.readline()  # "ready", or nothing if it died while importing
        self._next = self._start()
        workdir, job_path, answer_path = _job_files(target, arg)
        try:
            process.stdin.write(f"{job_path}\t{answer_path}\n".encode())
            process.stdin.close()
        except OSError:
            pass  # it died while importing: its exit code tells how
        try:
            return _watched_outcome(process, workdir, answer_path, memory_limit_mb, timeout_s, poll_s)
        finally:
            process.stdout.close()

    def close(self) -> None:
        """Stop the process that has no job yet; it has computed nothing."""
        if self._next is not None:
            self._next.kill()
            self._next.wait()
            for pipe in (self._next.stdin, self._next.stdout):
                if pipe is not None:
                    pipe.close()
            self._next = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "Prestarted":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Forker:
    """A warm process that forks fresh measurement processes on demand.

    Starting Python and importing MXNet costs more than a second, paid again
    by every process a point is measured in. This process pays it once
    (`preload(arg)`: pin the thread pools, import the framework, run
    nothing), then forks a child per measurement. A forked child builds its
    own network, memory pool and thread pools, as a new process does, and it
    is watched, killed and judged the same way (a crash is a status, not a
    dead job). What it does not give is a fresh process's resident set:
    pages the warm process touched are not counted until the child touches
    them. So CPU memory figures come from processes started by
    `run_isolated`; forked ones give timings, and GPU memory (the warm
    process never touches the device).

        with Forker(preload, arg) as forker:
            outcome = forker.run(target, arg)
    """

    def __init__(self, preload: Callable[[Any], None], arg: Any) -> None:
        self._workdir, job_path, _ = _job_files(preload, arg)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dlmark.runner", "--forker", job_path],
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=die_with_parent,
        )
        assert self._process.stdout is not None and self._process.stdin is not None
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
        self,
        target: Callable[[Any], dict[str, Any]],
        arg: Any,
        memory_limit_mb: float | None = None,
        timeout_s: float | None = None,
        poll_s: float = 0.05,
    ) -> Outcome:
        """Like `run_isolated`, in a child forked from the warm process."""
        workdir, job_path, answer_path = _job_files(target, arg)
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(f"{job_path}\t{answer_path}\n".encode())
            pid = int(self._readline(None) or "")
        except (OSError, ValueError):
            shutil.rmtree(workdir, ignore_errors=True)
            return Outcome(ERROR, None, "the warm measurement process died", 0.0)

        def finished(wait_s: float) -> int | None:
            line = self._readline(wait_s)
            return None if line is None else int(line or "-9")

        try:
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

    def __enter__(self) -> "Forker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _forker_main(preload_path: str) -> None:
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
                _child_main(job_path, answer_path)
                code = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        protocol.write(f"{pid}\n")
        _, status = os.waitpid(pid, 0)
        protocol.write(f"{os.waitstatus_to_exitcode(status)}\n")


def _prestarted_main(preload_path: str) -> None:
    """A process started ahead: preload, then run the one job named on stdin (none: exit)."""
    _preload_and_say_ready(preload_path).close()
    line = sys.stdin.readline()
    if line:
        _child_main(*line.rstrip("\n").split("\t"))


def _exit_at_once() -> None:
    """End a child whose answer is written, skipping the framework's teardown.

    MXNet's shutdown (engine threads, memory pools) takes about 0.2 s, paid
    by every measurement process and after every largest-batch trial; the
    answer file already holds everything, and the kernel frees the rest.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    if sys.argv[1] == "--forker":
        _forker_main(sys.argv[2])
    elif sys.argv[1] == "--prestarted":
        _prestarted_main(sys.argv[2])
        _exit_at_once()
    else:
        _child_main(sys.argv[1], sys.argv[2])
        _exit_at_once()
