"""Helpers for end-to-end tests: real Snakemake runs in a subprocess."""

from __future__ import annotations

import http.server
import io
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlmark.specs import Measured

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
RESULT_TABLES = ("throughput.csv", "max_batch_size.csv", "accuracy.csv")

# Two of the smallest models, tiny batches, a short budget: seconds per job.
TINY_CONFIG = {
    "machine": "ci",
    "models": ["mobilenet0.25", "squeezenet1.1"],
    "batch_sizes": [1, 2],
    "cpu_threads": 1,
    "cpu_memory_limit_mb": 400,
    "max_batch": {"upper_bound": 32},
    # These runs test the workflow, not the noise watch (test_interference does, alone: real busy
    # processes, steal through its judge). Under `make test` they share the 2 cores with the other
    # worker's tests and with the SLURM run beside the tiny run: a watch that judged that would only
    # make them wait and measure again. So no load a 2-core machine can hold counts as disturbing here.
    "noise": {"max_steal": 0.5, "max_other_cpu_cores": 2.0, "min_cpu_share": 0.25},
    "measure": {
        "warmup_min_seconds": 0.05,
        "warmup_max_seconds": 1,
        "min_seconds": 0.2,
        "max_seconds": 0.5,
        "min_iterations": 3,
        "target_rel_ci": 0.05,
        "min_processes": 3,
        "max_processes": 3,
    },
}

# The shared tiny run also serves its smallest model, briefly (LoadGen's early stopping
# still needs about 460 queries to judge a p99).
TINY_SERVING = {
    "models": ["mobilenet0.25"],
    # 20 x the SingleStream p99, not the default 6: beside the other worker's tests a SingleStream p99
    # taken in a quiet moment (2.9 ms) met Server p99s of 24-33 ms at every rate down to 46 queries/s,
    # so no rate held 6 x. At 20 the search still meets an INVALID rate near Offline's throughput.
    "latency_bound_factor": 20,
    "max_batch_size": 2,
    "min_duration_s": 0.5,
    "server_min_queries": 500,
    "server_max_runs": 6,
}


def measured(model: str, runtime: str = "mxnet", precision: str = "float32", **rest) -> Measured:
    """What a test measures: the reference on the CPU, one thread, unless it says otherwise."""
    return Measured(**{"model": model, "runtime": runtime, "precision": precision, "device": "cpu", "threads": 1,
                       "variant_dir": "", **rest})


def write_config(workdir: Path, config: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def snakemake(workdir: Path, *args: str, cores: int = 1, check: bool = True, timeout: float = 600):
    """Run the workflow as a user would, in `workdir`, and return the result."""
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        *args,  # before --resources, which would take a target for a resource
        "--resources",
        "gpu=1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def mtimes(workdir: Path, stage: str = "throughput") -> dict[str, float]:
    """Modification times of one stage's result files, by path."""
    folder = workdir / "results/raw/ci" / stage
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in folder.rglob("*.json")}


def jobs_run(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints: rule -> count."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@dataclass(frozen=True)
class TinyRun:
    """One complete local run of TINY_CONFIG, and its tables as they were right after it."""

    path: Path
    tables: dict[str, pd.DataFrame]
    figures: frozenset[str]

    def copy(self, dest: Path) -> Path:
        """A private copy to change: the shared run itself must stay as it was."""
        shutil.copytree(self.path, dest, symlinks=True)  # keeps mtimes: nothing reruns
        return dest


@pytest.fixture(scope="session")
def slurm_run_in_background(tmp_path_factory) -> Iterator[Future]:
    """The SLURM workflow run, in a thread: most of its minutes wait on the executor's status polls
    (every 40 s, fixed in the plugin), so the tiny run and the tests reading it go on meanwhile."""
    from test_slurm import run_through_slurm

    path = tmp_path_factory.mktemp("slurm")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="slurm-run") as pool:
        yield pool.submit(run_through_slurm, path)


@pytest.fixture(scope="session")
def tiny_run(request, tmp_path_factory) -> TinyRun:
    """Made once for every module that needs a finished run; those that change it take a copy."""
    if any(item.get_closest_marker("slurm") for item in request.session.items):
        request.getfixturevalue("slurm_run_in_background")  # started first; its tests come last
    path = tmp_path_factory.mktemp("tiny")
    write_config(path, yaml.safe_load(yaml.safe_dump(TINY_CONFIG | {"serving": TINY_SERVING})))
    snakemake(path, cores=2, timeout=600)  # more cores than benchmarks may use at once
    tables = {name: pd.read_csv(path / "results" / name) for name in (*RESULT_TABLES, "serving.csv")}
    figures = frozenset(p.name for p in (path / "results/figures").iterdir())
    return TinyRun(path, tables, figures)


# `make test` runs the suite in two worker processes (pytest-xdist), one per core of the 2-core
# VMs it is sized for, then the `quiet` tests alone. A group of tests runs on one worker, in
# collection order: each module is a group, so a module's fixture is made once, and the modules
# that share the tiny run (and the SLURM run compared with it) are one group, so it is made
# once. Groups are handed out longest first, so the short ones fill in at the end. Each worker
# keeps to about one core (every run here benchmarks on one thread); TINY_CONFIG's noise policy
# does not judge the load the workers share.
TINY_RUN_MODULES = frozenset({"test_slurm.py", "test_workflow.py", "test_results_sharing.py"})
LONGEST_FIRST = (
    "test_max_batch_workflow.py", "test_variants.py", "test_interrupts.py", "test_gpu_bundle.py",
    "test_torch_compile.py", "test_plotting.py", "test_accuracy_workflow.py", "test_runtimes.py",
    "test_gpu_install.py", "test_environment.py", "test_launchers.py",
)  # fmt: skip
TINY_GROUP = "tiny run"


def group_of(module: str) -> str:
    return TINY_GROUP if module in TINY_RUN_MODULES else module


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Groups by module, as above. (xdist's own loadgroup marks no longer reach pytest 9's test ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid.split("::", 1)[0].rsplit("/", 1)[-1])

    config.option.loadscopereorder = False  # keep the order below, not the largest group first
    return ByGroup(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order groups are handed to the workers in: the tiny run's group, then the longest modules."""
    for item in items:
        if "tiny_run" in item.fixturenames and item.path.name not in TINY_RUN_MODULES:
            raise pytest.UsageError(f"{item.nodeid} uses the shared tiny run: add {item.path.name} to "
                                    "TINY_RUN_MODULES in tests/conftest.py, or each worker makes its own")

    def rank(item: pytest.Item) -> tuple[int, int]:
        group = group_of(item.path.name)
        if group == TINY_GROUP:  # the SLURM run goes on beside the tiny run; its tests wait for it last
            return (0, 1 if item.path.name == "test_slurm.py" else 0)
        if group in LONGEST_FIRST:
            return (1 + LONGEST_FIRST.index(group), 0)
        return (1 + len(LONGEST_FIRST), 0)

    items[:] = sorted(items, key=rank)  # stable: each group keeps the files' order


@pytest.fixture
def tiny_config() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_CONFIG))  # a deep copy


@pytest.fixture
def served_config(tiny_config) -> dict:
    """The config of the shared tiny run: TINY_CONFIG and its serving block."""
    return tiny_config | {"serving": dict(TINY_SERVING)}


@pytest.fixture
def model_store(tmp_path):
    """A model-store folder served over real HTTP on 127.0.0.1: (root folder, base URL)."""
    root = tmp_path / "store"
    (root / "gluon/models").mkdir(parents=True)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def publish(root: Path, file_name: str, payload: bytes) -> None:
    """Put `payload` in the store as MXNet does: <name>.zip holding <name>.params."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(file_name, payload)
    (root / "gluon/models" / (file_name[: -len(".params")] + ".zip")).write_bytes(buffer.getvalue())
