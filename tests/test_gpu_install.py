"""`make run GPU=cu117`: MXNet's CUDA 11.7 build beside the pinned environment, its libraries on the jobs' path."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_dry_run(*args):
    return subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), *args],
                          capture_output=True, text=True)


def test_the_cuda_build_replaces_the_cpu_build_and_its_libraries_reach_the_jobs():
    plan = make_dry_run("run", "GPU=cu117", "VENV=.venv-cu117").stdout.splitlines()
    uninstall = next(i for i, line in enumerate(plan) if "pip uninstall" in line and " mxnet" in line)
    install = next(i for i, line in enumerate(plan) if "-r requirements-gpu-cu117.txt" in line)
    assert uninstall < install  # both builds own the mxnet package folder: the CPU one goes first
    run = plan[-1]
    assert re.search(r'LD_LIBRARY_PATH=.*\.venv-cu117/lib/python\*/site-packages/nvidia/\*/lib.*snakemake --cores', run)


def test_an_unknown_gpu_build_is_refused_with_the_known_one():
    done = make_dry_run("run", "GPU=cu118")
    assert done.returncode != 0
    assert "GPU=cu118 is not a build dlmark installs; use GPU=cu117" in done.stderr


def test_the_cuda_build_resolves_beside_the_pinned_environment():
    # Resolved against the package index (not installed: about 3 GB): it adds
    # MXNet's CUDA build and CUDA libraries, and replaces none of the pins.
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
         "-r", str(ROOT / "requirements-gpu-cu117.txt")],
        capture_output=True, text=True, timeout=300,
    )
    assert report.returncode == 0, report.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.stdout)["install"]}
    pinned = {line.split("==")[0].lower() for line in (ROOT / "requirements-gpu-cu117.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    base = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert pinned <= names and not names & base
    # The NVIDIA wheels also declare setuptools and wheel; the install (--no-deps) leaves them out.
    assert names - pinned <= {"setuptools", "wheel"}
