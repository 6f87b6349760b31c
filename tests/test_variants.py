"""Variants: the fused reference, ONNX export, INT8, and the correctness gate."""

import re

import mxnet as mx
import numpy as np
import pytest
from conftest import measured

from dlmark import config, variants
from dlmark.runtimes import mxnet_backend
from dlmark.scenarios import throughput
from dlmark.specs import identity

MODEL = "mobilenet0.25"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    gates = {}
    for runtime, precision in [("mxnet", "float32"), ("onnxruntime", "float32"), ("mxnet", "int8")]:
        spec = variants.VariantSpec(MODEL, runtime, precision, str(out / f"{runtime}-{precision}"), 1,
                                    calibration_images=8)
        gates[runtime, precision] = (spec, variants.prepare(spec))
    return gates


def test_the_fused_reference_matches_the_network_as_defined(prepared):
    spec, gate = prepared["mxnet", "float32"]
    assert gate["passed"] and gate["against"] == variants.GATE_AGAINST
    assert gate["top1_agreement"] == 1.0
    # Fusion folds batch norm into the convolutions: float rounding moves the
    # outputs a little, which shows the fused graph is the one that ran.
    assert 0.0 < gate["relative_max_abs_diff"] < 1e-4


def test_the_reference_runs_fused_on_a_cpu():
    net = mxnet_backend.reference_net(MODEL, mx.cpu())
    assert net._backend == "MKLDNN"
    assert mxnet_backend.defined_net(MODEL, mx.cpu())._backend is None


def test_onnx_export_matches_mxnet_float32(prepared):
    spec, gate = prepared["onnxruntime", "float32"]
    assert gate["passed"]
    assert gate["relative_max_abs_diff"] < 1e-5
    assert gate["top1_agreement"] == 1.0


def test_onnx_graph_keeps_initializers_out_of_its_inputs(prepared):
    import onnx

    spec, _ = prepared["onnxruntime", "float32"]
    graph = onnx.load(f"{spec.out_dir}/model.onnx").graph
    assert [i.name for i in graph.input] == ["data"]
    assert len(graph.initializer) > 10
    # A dynamic batch axis: one file serves every batch size.
    predict = variants.load(spec)
    assert predict(np.zeros((3, 3, 224, 224), np.float32)).shape == (3, 1000)


def test_int8_records_its_agreement_and_calibration(prepared):
    spec, gate = prepared["mxnet", "int8"]
    assert gate["passed"] and gate["tolerance"] is None  # quantized: agreement recorded, not required
    # The recorded agreement is this variant's, against the network as defined.
    batch = variants.gate_batch(MODEL)
    defined = mxnet_backend.defined_net(MODEL, mx.cpu())(mx.nd.array(batch)).asnumpy()
    quantized = variants.load(spec)(batch)
    assert gate["top1_agreement"] == float((defined.argmax(axis=1) == quantized.argmax(axis=1)).mean())
    assert "random normal images" in gate["calibration"]


def test_a_broken_variant_fails_the_gate():
    reference = variants.load(variants.VariantSpec(MODEL, "mxnet", "float32", "", 1))
    batch = variants.gate_batch(MODEL)
    # The classic deployment bug: inputs normalised differently than in training.
    broken = reference(batch * 0.5 + 0.2)
    gate = variants.check_gate(reference(batch), broken, "float32")
    assert not gate["passed"]
    assert gate["relative_max_abs_diff"] > variants.FLOAT32_TOLERANCE


def test_the_same_weights_in_every_process():
    a = variants.load(variants.VariantSpec(MODEL, "mxnet", "float32", "", 1))(variants.gate_batch(MODEL))
    b = variants.load(variants.VariantSpec(MODEL, "mxnet", "float32", "", 1))(variants.gate_batch(MODEL))
    assert np.array_equal(a, b)


@pytest.mark.workflow
def test_every_cpu_runtime_is_gated_and_measured_beside_mxnet_through_the_workflow(tmp_path, tiny_config):
    """The reference, ONNX Runtime, INT8 and eager torch at two precisions: one run, one job timing them all."""
    import json

    import pandas as pd
    from conftest import snakemake, write_config
    from PIL import Image

    tiny_config.update(
        models=[MODEL],
        batch_sizes=[1],
        variants=[
            {"runtime": "mxnet", "precision": "float32"},
            {"runtime": "onnxruntime", "precision": "float32"},
            {"runtime": "mxnet", "precision": "int8"},
            {"runtime": "torch", "precision": "float32"},
            {"runtime": "torch", "precision": "bfloat16"},
        ],
        int8_calibration_images=8,
        figures={"speedup_batch_size": 1},
        max_batch={"upper_bound": 1},  # one trial per variant: the search is tested elsewhere
        cpu_memory_limit_mb=1024,  # torch and its libraries hold about 250 MiB before any batch
    )
    tiny_config["measure"].update(min_processes=2, max_processes=2)
    write_config(tmp_path, tiny_config)
    # What this test reads, not every figure (test_plotting draws those from frames like these).
    snakemake(tmp_path, "results/throughput.csv", "results/max_batch_size.csv", "results/figures/speedup.png")
    frame = pd.read_csv(tmp_path / "results/throughput.csv")
    rows = frame.set_index(["runtime", "precision"])
    assert sorted(rows.index) == [("mxnet", "float32"), ("mxnet", "int8"), ("onnxruntime", "float32"),
                                  ("torch", "bfloat16"), ("torch", "float32")]
    assert set(frame["status"]) <= {"ok", "noisy"} and (frame["throughput"] > 0).all()
    assert rows.loc[("onnxruntime", "float32"), "software"].startswith("onnxruntime 1.20")
    assert rows.loc[("torch", "float32"), "software"].startswith("torch 2.")
    assert 0 <= rows.loc[("mxnet", "int8"), "top1_agreement"] <= 1
    # float32 must agree with MXNet's network as defined; bfloat16 records how well it does.
    assert rows.loc[("torch", "float32"), "top1_agreement"] == 1.0
    assert rows.loc[("torch", "float32"), "gate_max_abs_diff"] < 1e-3
    gate = json.loads((tmp_path / f"resources/variants/{MODEL}/torch-bfloat16/gate.json").read_text())
    assert gate["passed"] and gate["tolerance"] is None
    assert rows.loc[("torch", "bfloat16"), "top1_agreement"] == gate["top1_agreement"]
    assert len(pd.read_csv(tmp_path / "results/max_batch_size.csv")) == 5
    # Each variant over the reference, from blocks timed side by side (trusted, ok, points only).
    ok = {pair for pair, status in rows["status"].items() if status == "ok"}
    speedups = pd.read_csv(tmp_path / "results/speedup.csv")
    expected = ok - {("mxnet", "float32")} if ("mxnet", "float32") in ok else set()
    assert set(zip(speedups["runtime"], speedups["precision"])) == expected
    with Image.open(tmp_path / "results/figures/speedup.png") as image:
        image.verify()


def test_a_variant_that_failed_its_gate_is_not_timed(tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text('{"passed": false, "max_abs_diff": 3.5, "top1_agreement": 0.25}')
    spec = throughput.ThroughputSpec(
        **identity(measured(MODEL, runtime="onnxruntime", variant_dir=str(tmp_path))), batch_size=4, machine="ci",
        budget=config.budget({}, MODEL), noise=config.noise_policy({}),
    )
    [record] = throughput.throughput_points([spec], {("onnxruntime", "float32"): {"status": "ok", "max_batch_size": 64}})
    assert record.status == "error" and record.throughput is None and record.processes == 0
    assert "failed its correctness gate" in record.error and "25%" in record.error


def test_a_gate_made_on_the_gpu_replaces_the_cpus_and_the_row_says_where(tmp_path):
    (tmp_path / "gate.json").write_text('{"passed": true, "max_abs_diff": 1e-6, "top1_agreement": 1.0}')
    spec = throughput.ThroughputSpec(
        **identity(measured(MODEL, device="gpu0", runtime="torch", precision="float16", variant_dir=str(tmp_path))),
        batch_size=4, machine="ci", budget=config.budget({}, MODEL), noise=config.noise_policy({}),
    )
    on_gpu = {"torch/float16": {"passed": False, "error": "RuntimeError: CUDA error: no kernel image",
                                "max_abs_diff": None, "top1_agreement": None, "gated_on": "gpu0",
                                "against": "torch/float32 on gpu0"}}
    [record] = throughput.throughput_points([spec], {("torch", "float16"): {"status": "ok", "max_batch_size": 64}},
                                            on_gpu)
    assert record.status == "error" and record.processes == 0  # the CPU's gate passed; the GPU's decides
    assert "failed its correctness gate on gpu0 against torch/float32 on gpu0 (RuntimeError: CUDA error" in record.error


def test_device_gates_compare_float32_with_the_defined_network_and_the_rest_with_float32_there(tmp_path):
    """The device gates' logic, run on the CPU (the only device here): what each variant is compared with."""
    folders = {}
    for runtime, precision in [("torch", "float32"), ("torch", "bfloat16"), ("torch.cudagraph", "float16")]:
        spec = variants.VariantSpec(MODEL, runtime, precision, str(tmp_path / f"{runtime}-{precision}"), 1)
        assert variants.prepare(spec)["gated_on"] == "cpu"
        folders[runtime, precision] = spec.out_dir
    folders["torch", "float16"] = str(tmp_path / "missing")  # a variant that cannot load where it is gated
    variants.write_defined_outputs(MODEL, tmp_path / "defined_outputs.json")
    defined = variants.read_defined_outputs(tmp_path / "defined_outputs.json")
    assert defined.shape == (variants.GATE_BATCH, 1000)

    gates = variants.device_gates(MODEL, folders, "cpu", 1, defined)
    assert gates["torch/float32"]["passed"] and gates["torch/float32"]["against"].startswith(variants.GATE_AGAINST)
    assert gates["torch/float32"]["tolerance"] == variants.DEVICE_FLOAT32_TOLERANCE
    assert gates["torch/bfloat16"]["against"] == "torch/float32 on cpu" and gates["torch/bfloat16"]["passed"]
    assert 0 <= gates["torch/bfloat16"]["top1_agreement"] <= 1
    assert gates["torch.cudagraph/float16"]["against"] == "torch/float32 on cpu"
    assert not gates["torch/float16"]["passed"] and "missing" in gates["torch/float16"]["error"]
    assert all(g["gated_on"] == "cpu" for g in gates.values())

    # float32 fails where its outputs are not the defined network's; a variant whose reference cannot run fails too.
    shifted = variants.device_gates(MODEL, {("torch", "float32"): folders["torch", "float32"]}, "cpu", 1, defined + 1)
    assert not shifted["torch/float32"]["passed"]
    orphan = variants.device_gates(MODEL, {("torch", "bfloat16"): folders["torch", "bfloat16"],
                                           ("torch", "float32"): str(tmp_path / "missing")}, "cpu", 1, defined)
    assert "its reference torch/float32 on cpu did not run" in orphan["torch/bfloat16"]["error"]


def test_on_a_gpu_each_model_is_gated_there_before_it_is_timed_and_a_cpu_run_plans_no_such_gate(tmp_path, tiny_config):
    """The plan (a dry run) on a machine that reports one GPU: NVML is not here, so its answer is given."""
    import subprocess
    import sys

    from conftest import ROOT, write_config

    def plan(devices: list[str], variants: list[tuple[str, str]]) -> dict[str, str]:
        listed = [{"runtime": r, "precision": p} for r, p in variants]
        write_config(tmp_path, tiny_config | {"devices": devices, "variants": listed, "model_overrides": {}})
        script = (
            "import sys; from dlmark import hardware; hardware.gpu_capabilities = lambda: [(9, 0)]; "
            "hardware.gpu_names = lambda: ['a GPU']; from snakemake.cli import main; "
            f"sys.argv = ['snakemake', '-n', '--snakefile', {str(ROOT / 'Snakefile')!r}, "
            f"'--directory', {str(tmp_path)!r}, '--cores', '1', '--resources', 'gpu=1', '--printshellcmds']; main()"
        )
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-3000:]
        return run.stdout

    on_gpu = plan(["gpu0"], [("torch", "float16"), ("torch.cudagraph", "float16")])
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", on_gpu, re.M))
    assert jobs["device_gates"] == "2" and jobs["defined_outputs"] == "2"  # a job per model on the GPU
    # torch/float32, the float16 variants' reference on the GPU, is prepared though not measured.
    assert "resources/variants/mobilenet0.25/torch-float32/gate.json" in on_gpu
    assert "throughput/gpu0/torch-float32" not in on_gpu
    on_cpu = plan(["cpu"], [("torch", "bfloat16")])
    assert "device_gates" not in on_cpu and "defined_outputs" not in on_cpu and "torch-float32" not in on_cpu
