"""The offline GPU node's bundle: what it holds, its size, and that its check never passes quietly."""

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "gpu"))
import bundle  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "gpu-bundle"
    subprocess.run([sys.executable, str(ROOT / "gpu" / "bundle.py"), str(out)], check=True, timeout=600)
    return out


def test_the_bundle_fits_what_a_node_may_be_sent(built):
    assert bundle.size_mb(built) <= bundle.LIMIT_MB


def test_every_carried_package_is_one_wheel_that_python_312_installs(built):
    wheels = list((built / "wheels").glob("*.whl"))
    names = {re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower(): w.name for w in wheels}
    assert set(names) == {re.sub(r"[-_.]+", "-", n).lower() for n in bundle.carried()}
    for wheel in wheels:
        assert re.search(r"-(cp312-cp312|cp3\d+-abi3|(py2\.)?py3-none)-(manylinux\S*x86_64|any)\.whl$", wheel.name), wheel


def test_each_variant_is_prepared_gated_and_readable_without_mxnet(built):
    for model in bundle.MODELS:
        for runtime, precision in bundle.VARIANTS:
            folder = built / "resources" / "variants" / model / f"{runtime}-{precision}"
            assert json.loads((folder / "gate.json").read_text())["passed"]
            graph = onnx.load(str(folder / "model.onnx")).graph  # a link to the shared export resolves
            wanted = onnx.TensorProto.FLOAT16 if (runtime, precision) == ("onnxruntime", "float16") else onnx.TensorProto.FLOAT
            assert graph.input[0].type.tensor_type.elem_type == wanted


def test_the_bundle_is_this_workflow_without_its_tests(built):
    assert (built / "Snakefile").exists() and (built / "gpu" / "check.py").exists()
    assert "gpu-check:" in (built / "Makefile").read_text()
    assert not (built / "tests").exists()


def test_rows_made_from_the_bundle_name_its_commit(built):
    # The bundle has no repository of its own: its rows take the commit from REVISION.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    probe = "from dlmark import provenance; print(provenance.workflow_version())"
    run = subprocess.run([sys.executable, "-c", probe], cwd=built, capture_output=True, text=True,
                         env={"PYTHONPATH": str(built), "PATH": "/usr/bin:/bin"})
    assert run.stdout.strip() == str({"git_commit": head, "git_dirty": None}), run.stderr


def test_the_check_fails_loudly_where_there_is_no_gpu(built):
    run = subprocess.run([sys.executable, str(built / "gpu" / "check.py")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert "GPU CHECK FAILED: no NVIDIA GPU visible" in run.stdout
    assert not (built / "results").exists()  # nothing ran on the CPU instead
