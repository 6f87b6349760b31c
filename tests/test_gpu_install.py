"""`make run GPU=cu117` / `GPU=ort-cu12`: a runtime's GPU build beside the pinned environment, its libraries on the
jobs' path."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_dry_run(*args):
    return subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), *args],
                          capture_output=True, text=True)


BUILDS = {"cu117": "mxnet", "ort-cu12": "onnxruntime"}  # each GPU build and the CPU package it replaces


@pytest.mark.parametrize("build", BUILDS)
def test_the_cuda_build_replaces_the_cpu_build_and_its_libraries_reach_the_jobs(build):
    plan = make_dry_run("run", f"GPU={build}", f"VENV=.venv-{build}").stdout.splitlines()
    uninstall = next(i for i, line in enumerate(plan) if "pip uninstall" in line and line.endswith(f" {BUILDS[build]}"))
    install = next(i for i, line in enumerate(plan) if f"-r requirements-gpu-{build}.txt" in line)
    assert uninstall < install  # both builds own the package folder: the CPU one goes first
    run = plan[-1]
    assert re.search(rf'LD_LIBRARY_PATH=.*\.venv-{build}/lib/python\*/site-packages/nvidia/\*/lib.*snakemake --cores', run)


def test_an_unknown_gpu_build_is_refused_with_the_known_one():
    done = make_dry_run("run", "GPU=cu118")
    assert done.returncode != 0
    assert "GPU=cu118 is not a build dlmark installs; use GPU=cu117" in done.stderr


@pytest.mark.parametrize("build", BUILDS)
def test_the_cuda_build_resolves_beside_the_pinned_environment(build):
    # Resolved against the package index (not installed: gigabytes): it adds
    # the GPU build and its CUDA libraries, and replaces none of the pins.
    requirements = ROOT / f"requirements-gpu-{build}.txt"
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", "-r", str(requirements)],
        capture_output=True, text=True, timeout=300,
    )
    assert report.returncode == 0, report.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.stdout)["install"]}
    pinned = {line.split("==")[0].lower() for line in requirements.read_text().splitlines()
              if line and not line.startswith("#")}
    base = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert pinned <= names and not names & base
    # The NVIDIA wheels also declare setuptools and wheel; the install (--no-deps) leaves them out.
    assert names - pinned <= {"setuptools", "wheel"}
