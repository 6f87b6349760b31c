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
    for model, listed in bundle.bundled_variants().items():
        assert ("torch.cudagraph", "float16") in listed and ("onnxruntime", "float16") in listed
        assert json.loads((built / "resources" / "variants" / model / "defined_outputs.json").read_text())["outputs"]
        for runtime, precision in listed:
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


def test_the_checks_target_lines_read_the_rows_and_raw_files_it_will_find(tmp_path, monkeypatch, capsys):
    """What the check prints after the workflow, from results shaped as a GPU run writes them."""
    import pandas as pd

    import check

    monkeypatch.setattr(check, "HERE", tmp_path)
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "config.yaml").write_text((ROOT / "gpu" / "config.yaml").read_text())
    raw = tmp_path / "results" / "raw" / "gpu-node"
    rows = []
    for runtime, precision, batch, speed, joules in [
        ("torch", "float16", 1, 400.0, None), ("torch.cudagraph", "float16", 1, 1500.0, None),
        ("torch", "float16", 256, 40000.0, 0.004), ("torch", "float32", 256, 30000.0, 0.007),
        ("torch.compile", "float16", 256, 44000.0, 0.0035),
    ]:
        rows.append(dict(model="squeezenet1.1", device="gpu0", runtime=runtime, precision=precision,
                         batch_size=batch, status="ok", throughput=speed, energy_j_per_image=joules,
                         energy_note=None if joules else "window too short"))
        point = raw / "throughput" / "gpu0" / f"{runtime}-{precision}" / "squeezenet1.1" / f"bs{batch}.json"
        point.parent.mkdir(parents=True, exist_ok=True)
        point.write_text(json.dumps({"process_results": [
            {"throughput": speed * f, "build_seconds": s, "build_counts": c}
            for f, s, c in [(1.0, 30.0, {"cache_hits": 0, "cache_misses": 1}), (0.98, 9.0, {"cache_hits": 1,
                                                                                             "cache_misses": 0})]]}))
    (raw / "gates" / "gpu0").mkdir(parents=True)
    (raw / "gates" / "gpu0" / "squeezenet1.1.json").write_text(json.dumps({"gates": {"torch/float16": {
        "passed": True, "top1_agreement": 1.0, "max_abs_diff": 0.01, "gated_on": "gpu0",
        "against": "torch/float32 on gpu0"}}}))
    check.target_lines(pd.DataFrame(rows))
    out = capsys.readouterr().out
    assert "TARGET squeezenet1.1 batch 1 float16: CUDA graph 1,500 img/s over eager 400: x3.75 (wanted >= 3)" in out
    assert "torch.cudagraph/float16 batch 1: processes 1,500, 1,470 img/s, spread 2.0%" in out
    assert "torch.compile 44,000 img/s over eager 40,000: x1.10 (wanted >= 1)" in out
    assert "BUILD squeezenet1.1 torch.compile/float16 batch 256, each process: 30.0 s" in out
    assert "torch/float32 0.0070 J" in out and "torch/float16 0.0040 J" in out
    assert "GATE squeezenet1.1 torch/float16 on gpu0 against torch/float32 on gpu0: passed" in out
