"""Busy machines, repeated processes and the noisy status, with real processes.

A CPU-bound child really runs beside the measurement: the point it
disturbs must be remeasured or marked noisy, never plain ok.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time

import child_targets
import pytest

from dlmark import config
from dlmark.measure import interference
from dlmark.measure.timing import Budget
from dlmark.scenarios import throughput, throughput_child

pytestmark = pytest.mark.quiet  # its processes judge the whole machine's load: nothing may run beside them
MODEL = "mobilenet0.25"
CPUS = os.cpu_count() or 1
POLICY = dict(min_cpu_share=0.85, max_other_cpu_cores=0.3, max_steal=0.05, retries=1, quiet_wait_seconds=1)
BUDGET = dict(
    warmup_min_seconds=0.05, warmup_max_seconds=1, warmup_tolerance=0.1, min_seconds=0.3, max_seconds=0.6,
    min_iterations=5, target_rel_ci=0.5, min_processes=2, max_processes=2,
)


def spec(threads: int = CPUS, **noise) -> throughput.ThroughputSpec:
    return throughput.ThroughputSpec(
        model=MODEL, device="cpu", runtime="mxnet", precision="float32", threads=threads, variant_dir="",
        batch_size=2, machine="ci", budget=Budget(**BUDGET), noise=interference.NoisePolicy(**{**POLICY, **noise}),
    )


def burners(count: int, seconds: float) -> list[subprocess.Popen]:
    """`count` processes spinning on a CPU each for `seconds`."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.kill()
        p.wait()


LIMITS = interference.NoisePolicy(**POLICY)


def test_a_preempted_benchmark_is_disturbed():
    reason = interference.judge(0.64, 0.7, 0.0, None, threads=2, logical_cpus=2, on_gpu=False, limits=LIMITS)
    assert "64%" in reason and "0.70 of 2 CPUs" in reason


def test_other_processes_on_cores_the_benchmark_leaves_free_do_not_count():
    # Measured: resnet18_v1 with 1 thread on 2 cores runs as fast beside one busy process.
    assert interference.judge(0.99, 1.0, 0.0, None, threads=1, logical_cpus=2, on_gpu=False, limits=LIMITS) is None
    assert interference.judge(0.99, 1.5, 0.0, None, threads=1, logical_cpus=2, on_gpu=False, limits=LIMITS)


def test_steal_and_other_gpu_processes_disturb():
    assert "stole 10%" in interference.judge(0.99, 0.0, 0.10, None, 1, 2, False, LIMITS)
    assert "4242" in interference.judge(0.2, 0.0, 0.0, [4242], 1, 2, True, LIMITS)  # cpu share ignored on a GPU


def test_other_gpu_processes_when_nvml_numbers_pids_as_the_host_does():
    assert interference.others_on_gpu([10, 4242], own_pid=10) == [4242]
    assert interference.others_on_gpu([10], own_pid=10) == []
    # In a container this process is listed under its host PID: alone, it is nobody else.
    assert interference.others_on_gpu([98765], own_pid=10) == []
    assert interference.others_on_gpu([], own_pid=10) == []
    # Two listed, neither under this PID: someone else is there, whichever one is this process.
    assert interference.others_on_gpu([98765, 98766], own_pid=10) == [98765, 98766]


def test_watch_sees_this_process_use_its_cpu():
    with interference.Watch(threads=1, limits=LIMITS) as watch:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    assert watch.result.cpu_share > 0.5
    assert watch.result.wall_seconds >= 0.3


def test_a_busy_machine_is_not_quiet_and_says_why():
    busy = burners(CPUS, 10)
    try:
        time.sleep(0.3)
        assert "CPUs used by others" in interference.why_busy(LIMITS, threads=CPUS)
    finally:
        stop(busy)


def test_quiet_machine_gives_ok_from_several_processes():
    # The shipped retries and quiet wait: a shared VM's host steals CPU in
    # bursts (13% once during this test in a run of the suite, with nothing
    # else running), and a point waits such a burst out as a user's run does.
    shipped = config.section_defaults("noise")
    record = throughput.run_throughput(
        spec(retries=shipped["retries"], quiet_wait_seconds=shipped["quiet_wait_seconds"])
    )
    assert record.status == "ok", record.disturbance
    assert record.processes == 2 and len(record.process_results) == 2
    assert all(p.disturbed is None for p in record.process_results)
    assert record.cpu_share >= POLICY["min_cpu_share"]
    assert record.throughput_ci95_low < record.throughput < record.throughput_ci95_high
    per_process = sorted(p.summary.throughput for p in record.process_results)
    # The interval spans the processes: it holds both of their means.
    assert record.throughput_ci95_low <= per_process[0] and per_process[-1] <= record.throughput_ci95_high
    # Each process was preceded by the drift canary; the row keeps their median.
    canaries = sorted(p.memory_bandwidth_gbs for p in record.process_results)
    assert canaries[0] > 0 and record.memory_bandwidth_gbs == pytest.approx(sum(canaries) / 2)


def test_busy_machine_throughout_gives_noisy_with_numbers_kept():
    busy = burners(CPUS, 120)
    try:
        record = throughput.run_throughput(spec())
    finally:
        stop(busy)
    assert record.status == "noisy"
    assert record.remeasured == POLICY["retries"]
    assert record.throughput > 0 and record.processes >= 1
    assert record.cpu_share < POLICY["min_cpu_share"] or record.interference > 0.1
    assert "disturbed" in record.disturbance


def stop_once_timing_began(busy: list[subprocess.Popen], then_s: float) -> threading.Thread:
    """Stop `busy` `then_s` seconds after the first timing process is forked, however slow the machine.

    The memory trials before it fork from a warm process too: the timing
    processes' warm process is told apart by the preload its job file names.
    """
    import psutil

    def timing_began() -> bool:
        for child in psutil.Process().children():
            try:
                command = child.cmdline()
                if command[-2:-1] != ["forker"] or not child.children():
                    continue
                with open(command[-1], "rb") as job:
                    preload, _ = pickle.load(job)
                if preload is throughput_child.preload:
                    return True
            except (psutil.Error, OSError, EOFError, pickle.UnpicklingError):
                continue
        return False

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not timing_began() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(then_s)
        stop(busy)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_disturbed_process_waits_for_quiet_and_is_measured_again():
    # Over the memory trial and the first timing process, gone before the retry's wait for quiet
    # ends. (Burners on a clock once ended before the first timing process began, on a slow VM.)
    busy = burners(CPUS, 120)
    stopper = stop_once_timing_began(busy, then_s=3)
    try:
        record = throughput.run_throughput(spec(retries=2, quiet_wait_seconds=30))
    finally:
        stopper.join(timeout=130)
        stop(busy)
    assert record.remeasured >= 1
    assert record.status == "ok", record.disturbance
    assert all(p.disturbed is None for p in record.process_results)


def test_a_process_that_crashes_makes_an_error_row_keeping_the_finished_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DLMARK_TEST_COUNTER", str(tmp_path / "count"))
    record = throughput.run_throughput(spec(), target=child_targets.measure_then_crash)
    assert record.status == "error"
    # A segfault in a process that loaded MXNet: its handler exits with 255 ("Segmentation fault: 11").
    assert ("SIGSEGV" in record.error or "status 255" in record.error) and "in timing process 2" in record.error
    assert record.throughput is None
    assert record.processes == 1 and record.process_results[0].summary.throughput > 0
