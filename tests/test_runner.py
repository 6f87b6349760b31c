import child_targets
from dlmark import runner


def test_result_comes_back_from_the_child():
    outcome = runner.run_isolated(child_targets.succeed, 42)
    assert outcome.status == runner.OK
    assert outcome.value["echo"] == 42
    assert outcome.value["child_peak_rss_mb"] > 0


def test_framework_oom_message_is_out_of_memory():
    outcome = runner.run_isolated(child_targets.raise_oom, None)
    assert outcome.status == runner.OUT_OF_MEMORY
    assert "out of memory" in outcome.error


def test_other_exception_is_error_with_its_message():
    outcome = runner.run_isolated(child_targets.raise_error, None)
    assert outcome.status == runner.ERROR
    assert "ValueError: bad weights file" in outcome.error


def test_crash_is_recorded_not_raised():
    outcome = runner.run_isolated(child_targets.segfault, None)
    assert outcome.status == runner.ERROR
    assert "SIGSEGV" in outcome.error


def test_kill_counts_as_out_of_memory():
    outcome = runner.run_isolated(child_targets.sigkill, None)
    assert outcome.status == runner.OUT_OF_MEMORY
    assert "SIGKILL" in outcome.error


def test_memory_limit_stops_the_child():
    outcome = runner.run_isolated(child_targets.allocate, 400, memory_limit_mb=150)
    assert outcome.status == runner.OUT_OF_MEMORY
    assert "memory limit of 150 MiB" in outcome.error
    assert outcome.observed_peak_mb > 150


def test_within_the_memory_limit_it_runs():
    outcome = runner.run_isolated(child_targets.allocate, 50, memory_limit_mb=1000)
    assert outcome.status == runner.OK
    assert outcome.value["held_mb"] == 50
    assert 50 < outcome.observed_peak_mb < 1000


def test_timeout_is_an_error():
    outcome = runner.run_isolated(child_targets.allocate, 1, timeout_s=0.5)
    assert outcome.status == runner.ERROR
    assert "timed out" in outcome.error
