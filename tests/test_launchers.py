import os
import subprocess
import sys
import time
from pathlib import Path

import child_targets
import psutil
import pytest

from dlmark.measure import launchers
from dlmark.results import status


def test_result_comes_back_from_the_child():
    outcome = launchers.run_isolated(child_targets.succeed, 42)
    assert outcome.status == status.OK
    assert outcome.value["echo"] == 42


def test_the_child_reports_its_own_peak_memory_not_its_parents():
    parent = bytearray(300 * 2**20)  # getrusage would hand this size on to every child
    parent[:: 4096] = b"\1" * len(parent[:: 4096])
    small = launchers.run_isolated(child_targets.allocate, 1).value["child_peak_mb"]
    large = launchers.run_isolated(child_targets.allocate, 120).value["child_peak_mb"]
    assert small < 120 <= large < 300


def test_a_processs_memory_leaves_out_the_pages_of_files_it_maps(tmp_path):
    """The mapped file's 200 MiB are recorded beside the figure, not in it: only the 64 MiB allocated count."""
    library = tmp_path / "library.so"
    library.write_bytes(os.urandom(200 * 2**20))
    value = launchers.run_isolated(child_targets.map_file_and_allocate, (str(library), 64)).value
    resident = value["resident_set"]
    assert resident["file_mb"] >= 199  # every page of the mapping was resident
    assert resident["peak_mb"] >= value["baseline_mb"] + 64 + 199  # the whole resident set's peak has both
    assert 63 <= value["child_peak_mb"] - value["baseline_mb"] <= 66
    assert value["child_peak_mb"] == pytest.approx(resident["peak_mb"] - resident["file_mb"])


def test_file_pages_read_after_the_peak_count_only_once_mapped_first(tmp_path):
    """A file read after the 64 MiB peak makes VmHWM less the file's pages low; mapped first, it is the peak again."""
    library = tmp_path / "library.so"
    library.write_bytes(os.urandom(40 * 2**20))
    late = launchers.run_isolated(child_targets.allocate_then_read_a_mapped_file, (str(library), 64, False)).value
    assert 22 <= late["child_peak_mb"] - late["baseline_mb"] <= 26  # the 40 MiB mapped after the peak hide part of it
    first = launchers.run_isolated(child_targets.allocate_then_read_a_mapped_file, (str(library), 64, True)).value
    assert first["files_mapped_first_mb"] >= 39
    assert first["resident_set"]["file_mb"] == pytest.approx(first["files_mapped_first_mb"], abs=0.5)
    assert 63 <= first["child_peak_mb"] - first["baseline_mb"] <= 66


def test_the_memory_limit_counts_the_processs_own_memory_not_mapped_files(tmp_path):
    """300 MiB of mapped file pages under a 150 MiB limit: the process still fits."""
    library = tmp_path / "library.so"
    library.write_bytes(os.urandom(300 * 2**20))
    outcome = launchers.run_isolated(child_targets.map_file_and_allocate, (str(library), 20), memory_limit_mb=150)
    assert outcome.status == status.OK, outcome.error
    assert outcome.observed_peak_mb < 150
    over = launchers.run_isolated(child_targets.map_file_and_allocate, (str(library), 200), memory_limit_mb=150)
    assert over.status == status.OUT_OF_MEMORY


def test_framework_oom_message_is_out_of_memory():
    outcome = launchers.run_isolated(child_targets.raise_oom, None)
    assert outcome.status == status.OUT_OF_MEMORY
    assert "out of memory" in outcome.error


def test_other_exception_is_error_with_its_message():
    outcome = launchers.run_isolated(child_targets.raise_error, None)
    assert outcome.status == status.ERROR
    assert "ValueError: bad weights file" in outcome.error


def test_crash_is_recorded_not_raised():
    outcome = launchers.run_isolated(child_targets.segfault, None)
    assert outcome.status == status.ERROR
    assert "SIGSEGV" in outcome.error


def test_kill_counts_as_out_of_memory():
    outcome = launchers.run_isolated(child_targets.sigkill, None)
    assert outcome.status == status.OUT_OF_MEMORY
    assert "SIGKILL" in outcome.error


def test_memory_limit_stops_the_child():
    outcome = launchers.run_isolated(child_targets.allocate, 400, memory_limit_mb=150)
    assert outcome.status == status.OUT_OF_MEMORY
    assert "memory limit of 150 MiB" in outcome.error
    assert outcome.observed_peak_mb > 150


def test_within_the_memory_limit_it_runs():
    outcome = launchers.run_isolated(child_targets.allocate, 50, memory_limit_mb=1000)
    assert outcome.status == status.OK
    assert outcome.value["held_mb"] == 50
    assert 50 < outcome.observed_peak_mb < 1000


def test_timeout_is_an_error():
    outcome = launchers.run_isolated(child_targets.allocate, 1, timeout_s=0.5)
    assert outcome.status == status.ERROR
    assert "timed out" in outcome.error


def no_preload(arg):
    """A warm process that imports nothing beyond the launchers."""


@pytest.fixture(scope="module")
def starter():
    """A warm process that forks each job's process."""
    with launchers.Forker(no_preload, None) as ready:
        yield ready


@pytest.mark.parametrize(
    "target, arg, status, words",
    [
        (child_targets.succeed, 7, status.OK, None),
        (child_targets.raise_oom, None, status.OUT_OF_MEMORY, "out of memory"),
        (child_targets.segfault, None, status.ERROR, "SIGSEGV"),
        (child_targets.sigkill, None, status.OUT_OF_MEMORY, "SIGKILL"),
    ],
)
def test_a_ready_process_ends_like_a_fresh_one(starter, target, arg, status, words):
    outcome = starter.run(target, arg)
    assert outcome.status == status
    if words:
        assert words in outcome.error
    else:
        assert outcome.value["echo"] == 7


def test_the_limit_is_enforced_and_the_next_job_still_runs(starter):
    over = starter.run(child_targets.allocate, 400, memory_limit_mb=150)
    assert over.status == status.OUT_OF_MEMORY and "memory limit" in over.error
    assert starter.run(child_targets.succeed, 7).value["echo"] == 7  # still serving after a kill


def test_a_forked_childs_memory_counts_its_warm_parents_pages_as_a_fresh_process_counts_its_own(tmp_path):
    """The warm process maps a 100 MiB file and holds 80 MiB; the child allocates 64 MiB.

    The child's own memory has the 80 MiB it inherited, as a fresh process
    that did the same has its own; the file's pages stay out of both.
    """
    library = tmp_path / "library.so"
    library.write_bytes(os.urandom(100 * 2**20))
    with launchers.Forker(child_targets.map_file_and_hold, (str(library), 80)) as warm:
        forked = warm.run(child_targets.allocate_after_mapping_files, 64).value
    fresh = launchers.run_isolated(
        child_targets.map_hold_and_allocate, ((str(library), 80), 64)
    ).value
    assert forked["baseline_mb"] >= 80  # inherited pages count in the child
    assert 63 <= forked["child_peak_mb"] - forked["baseline_mb"] <= 66
    assert forked["resident_set"]["file_mb"] >= 99  # mapped again in the child, and out of the figure
    assert forked["child_peak_mb"] == pytest.approx(fresh["child_peak_mb"], abs=2)
    assert forked["baseline_mb"] == pytest.approx(fresh["baseline_mb"], abs=2)


def test_a_preload_that_fails_is_an_error_that_says_so_not_a_hang():
    with pytest.raises(RuntimeError, match="failed to start"):
        launchers.Forker(child_targets.fail_preload, None)


def test_children_die_with_the_process_that_watches_them(tmp_path):
    """A measurement never outlives its job: killing the job's process kills its child too."""
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import child_targets\n"
        "from dlmark.measure import launchers\n"
        "launchers.run_isolated(child_targets.report_pid_and_wait, sys.argv[1])\n"
    )
    pid_file = tmp_path / "child.pid"
    job = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = psutil.Process(int(pid_file.read_text()))
    job.kill()  # as kill -9 of a job, a lost node or the OOM killer would
    job.wait()
    child.wait(timeout=10)
    assert not child.is_running()


def test_folders_left_by_a_parent_killed_hard_are_removed_by_the_next(tmp_path):
    from dlmark.measure import job_files

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that has just ended: its maker was killed, say, with kill -9
    host = job_files._own_prefix()
    orphan, live, elsewhere = (tmp_path / f"{host}{gone.pid}-ab", tmp_path / f"{host}{os.getppid()}-cd",
                               tmp_path / f"{job_files.PREFIX}another-host-{gone.pid}-ef")
    for folder in (orphan, live, elsewhere):
        folder.mkdir()
        (folder / "job.pkl").write_bytes(b"")
    assert job_files.sweep_orphans(tmp_path) == [orphan]
    assert live.exists() and elsewhere.exists()  # a running maker's, and another host's, whose processes we cannot see
