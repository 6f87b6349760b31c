"""End-to-end: a run interrupted by Ctrl-C, then one killed hard, as a user's would be."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, SNAKEMAKE, jobs_run, mtimes, snakemake, write_config

from dlmark.results import tables
from dlmark.results.records import MaxBatchRecord

pytestmark = pytest.mark.workflow

TABLE = "results/throughput.csv"


def measuring(process) -> bool:
    """Whether `process` is a measurement child (it may end while we look)."""
    import psutil

    try:
        return "dlmark.measure.child" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def default_sigint() -> None:
    """Ctrl-C as a terminal gives it: a shell that starts a command in the background (`cmd &`, as a
    CI script may start the suite) leaves SIGINT ignored, and Snakemake would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(workdir: Path, **popen) -> subprocess.Popen:
    command = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "1"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint, **popen)


def wait_for(condition, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_run_stopped_by_ctrl_c_then_killed_hard_loses_only_the_job_in_progress(tmp_path, tiny_config):
    """Ctrl-C mid-sweep, then kill -9 of the next run mid-measurement: every file left is whole, no
    measurement outlives its Snakemake, the lock names the one manual step, and the third run measures
    only the model no run finished."""
    import psutil

    tiny_config["batch_sizes"] = [1]
    tiny_config["max_batch"] = {"upper_bound": 1}  # one trial a model: the search is not what stops here
    tiny_config["measure"].update(min_seconds=1.0, max_seconds=1.5)
    write_config(tmp_path, tiny_config)
    raw = tmp_path / "results/raw"
    # 1. Ctrl-C: its own session, so the signal reaches Snakemake and its jobs together, as in a terminal.
    process = start_run(tmp_path, start_new_session=True)
    wait_for(lambda: mtimes(tmp_path, "rounds"))  # a model's points are one job: its rounds file
    # Then once the next model's measurement runs: not while Snakemake itself writes a point file
    # (a local rule), where it may take the signal as that rule's and go on.
    wait_for(lambda: any(measuring(p) for p in psutil.Process(process.pid).children(recursive=True)))
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    finished = mtimes(tmp_path, "rounds")
    assert len(finished) == 1, "the interrupt should land mid-sweep"
    for path in raw.rglob("*"):
        assert not path.name.endswith(".tmp"), f"temporary file left behind: {path}"
    for path in (raw / "ci/throughput").rglob("*.json"):
        tables.read_record(path)  # every file that exists is complete
    for path in (raw / "ci/max_batch").rglob("*.json"):
        tables.read_record(path, MaxBatchRecord)
    # 2. kill -9 of Snakemake alone, as the OOM killer or a lost node would, while a measurement runs.
    process = start_run(tmp_path)
    running: list = []

    def measurement_started() -> bool:
        running[:] = psutil.Process(process.pid).children(recursive=True)
        return any(measuring(p) for p in running)

    wait_for(measurement_started)
    assert running, "a measurement should be running when Snakemake is killed"
    process.kill()
    process.wait()
    gone, alive = psutil.wait_procs(running, timeout=15)
    assert not alive, f"still running after Snakemake died: {[p.cmdline() for p in alive]}"
    assert mtimes(tmp_path, "rounds") == finished  # the killed run finished nothing
    # 3. The lock survives a hard kill; the README names the one manual step.
    locked = snakemake(tmp_path, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(tmp_path, "--unlock")
    result = snakemake(tmp_path, TABLE)  # the measurements and their table; no figures needed
    assert jobs_run(result.stdout + result.stderr).get("throughput") == 1  # the unfinished model only
    after = mtimes(tmp_path, "rounds")
    assert len(after) == 2 and all(after[p] == t for p, t in finished.items())
    assert len(mtimes(tmp_path)) == 2
