"""The runtime registry: how validation and the measurements find a backend."""

import numpy as np
import pytest

from dlmark import config as dlconfig
from dlmark import runtimes, variants
from dlmark.results import status
from dlmark.runtimes import base


def test_every_backend_is_found_by_its_own_names():
    assert runtimes.known() == [
        ("mxnet", "float32"), ("mxnet", "int8"), ("onnxruntime", "float16"), ("onnxruntime", "float32"),
        ("torch", "bfloat16"), ("torch", "float16"), ("torch", "float32"),
        ("torch.compile", "bfloat16"), ("torch.compile", "float16"), ("torch.compile", "float32"),
        ("torch.cudagraph", "bfloat16"), ("torch.cudagraph", "float16"), ("torch.cudagraph", "float32"),
    ]
    for runtime, precision in runtimes.known():
        backend = runtimes.get(runtime, precision)
        assert (backend.runtime, backend.precision) == (runtime, precision)
    assert runtimes.REFERENCE in runtimes.known()


def test_an_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown variant tensorrt/int4; known: mxnet/float32, mxnet/int8"):
        runtimes.get("tensorrt", "int4")


def test_importing_the_registry_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys; import dlmark.runtimes, dlmark.variants, dlmark.config; "
        "loaded = {'mxnet', 'onnxruntime', 'onnx', 'torch'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def a_new_runtime():
    """A runtime added as the README says: one Backend subclass, registered."""

    @base.register
    class Doubled(base.Backend):
        runtime, precision = "doubling", "float32"
        device_kinds = frozenset({"cpu"})
        unsupported_device_reason = "CPU only"

        def load(self, spec):
            return lambda x: np.repeat(x.reshape(len(x), -1)[:, :10], 2, axis=1)

        def batch_calls(self, spec, batch_sizes, device):
            return {b: (lambda: None) for b in batch_sizes}

    yield Doubled
    del base._REGISTRY["doubling", "float32"]


def test_a_new_runtime_is_one_registered_class(a_new_runtime, tmp_path):
    config = {"models": ["resnet18_v1"], "batch_sizes": [1], "devices": ["cpu"],
              "variants": [{"runtime": "doubling", "precision": "float32"}]}
    dlconfig.check(config, dlconfig.load_schema(dlconfig.SCHEMA), gpus=[])  # validation knows it
    with pytest.raises(dlconfig.ConfigError, match="doubling/float32 does not run on a GPU: CPU only"):
        dlconfig.check(config | {"devices": ["gpu0"]}, dlconfig.load_schema(dlconfig.SCHEMA), gpus=[(8, 0)])
    spec = variants.VariantSpec("resnet18_v1", "doubling", "float32", str(tmp_path), 1)
    assert variants.load(spec)(np.ones((2, 3, 4, 4), np.float32)).shape == (2, 20)


def test_torch_refuses_an_operator_it_does_not_convert(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from dlmark.runtimes import torch_graph

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["data"], ["scores"])],
        "g",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert torch_graph.unsupported_operators(path) == ["Softmax"]
    with pytest.raises(ValueError, match="ONNX operators the torch runtime does not convert: Softmax"):
        torch_graph.from_onnx(path)


def test_torch_follows_onnx_pads_pools_and_clips_exactly(tmp_path):
    """Asymmetric padding, ceil-mode pooling and constant Clip bounds, against ONNX Runtime."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from dlmark.runtimes import onnxruntime_backend, torch_graph

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(np.array(0.0, np.float32), "low"),
               numpy_helper.from_array(np.array(0.5, np.float32), "high")]
    nodes = [
        helper.make_node("Conv", ["data", "w"], ["c"], pads=[0, 0, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c", "low", "high"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["a"], ["g"]),
        helper.make_node("Flatten", ["g"], ["out"], axis=1),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, 13, 13])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4])], weights)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.standard_normal((2, 3, 13, 13)).astype(np.float32)
    expected = onnxruntime_backend.session(path, 1)(x)
    with torch.inference_mode():
        got = torch_graph.from_onnx(path)(torch.from_numpy(x)).numpy()
    assert np.allclose(got, expected, atol=1e-6)


WITHOUT_MXNET = "import sys; sys.modules['mxnet'] = None  # MXNet absent: importing it fails\n"


def test_the_core_runs_where_mxnet_is_absent(tmp_path):
    """Config checks, the registry and a torch measurement on files MXNet prepared elsewhere."""
    import subprocess
    import sys

    for runtime in ("torch", "onnxruntime"):
        spec = variants.VariantSpec("mobilenet0.25", runtime, "float32", str(tmp_path / runtime), 1)
        variants.prepare(spec)
        np.save(tmp_path / f"{runtime}.npy", variants.load(spec)(variants.gate_batch("mobilenet0.25")))
    code = WITHOUT_MXNET + f"""
import numpy as np
from dlmark import config, runtimes, specs, variants
from dlmark.results import plotting, tables
from dlmark.scenarios import memory_trial, throughput
config_ = {{"models": ["mobilenet0.25"], "batch_sizes": [1], "devices": ["cpu"],
           "variants": [{{"runtime": "mxnet", "precision": "float32"}}]}}
try:
    config.check(config_, config.load_schema(config.SCHEMA), gpus=[])
    raise SystemExit("mxnet/float32 passed validation without MXNet")
except config.ConfigError as error:
    assert "mxnet/float32 needs mxnet, which is not installed here" in str(error), error
for runtime in ("torch", "onnxruntime"):
    config.check(config_ | {{"variants": [{{"runtime": runtime, "precision": "float32"}}]}},
                 config.load_schema(config.SCHEMA), gpus=[])
    spec = throughput.ThroughputSpec(model="mobilenet0.25", device="cpu", runtime=runtime, precision="float32",
                                    threads=1, variant_dir=r"{tmp_path}/" + runtime, batch_size=2, machine="m",
                                    budget=config.budget({{}}, "mobilenet0.25"), noise=config.noise_policy({{}}))
    [timed] = throughput.measure_rounds(throughput.RoundsJob((spec,)))["results"]
    assert timed.summary.iterations >= 3 and len(timed.block_ms) >= 3
    trial = memory_trial.run_trial(memory_trial.TrialSpec(**specs.identity(spec), batch_size=2))
    assert trial["peak_memory_mb"] > 0
    scores = variants.load(variants.variant_of(spec))(variants.gate_batch("mobilenet0.25"))
    assert np.array_equal(scores, np.load(r"{tmp_path}/" + runtime + ".npy"))  # as with MXNet present
assert "mxnet" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
print("ran without MXNet")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ran without MXNet" in run.stdout


def test_onnxruntime_float16_is_converted_from_the_export_and_gated(tmp_path):
    spec = variants.VariantSpec("mobilenet0.25", "onnxruntime", "float16", str(tmp_path), 1)
    gate = variants.prepare(spec)
    assert gate["passed"] and gate["tolerance"] is None  # reduced precision: agreement recorded
    assert gate["relative_max_abs_diff"] < 0.01 and gate["top1_agreement"] >= 0.75
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert variants.load(spec)(variants.gate_batch("mobilenet0.25")).dtype == np.float32


def test_a_cuda_provider_that_does_not_start_is_an_error_row_not_a_cpu_number(tmp_path):
    from dlmark import config
    from dlmark.scenarios import throughput

    variants.prepare(variants.VariantSpec("mobilenet0.25", "onnxruntime", "float32", str(tmp_path), 1))
    spec = throughput.ThroughputSpec(
        model="mobilenet0.25", device="gpu0", runtime="onnxruntime", precision="float32", threads=1,
        variant_dir=str(tmp_path), batch_size=2, machine="m",
        budget=config.budget({}, "mobilenet0.25"), noise=config.noise_policy({}),
    )
    record = throughput.run_throughput(spec)
    assert record.status == "error" and record.throughput is None
    assert "did not start its CUDA execution provider on gpu0" in record.error
    assert "Not measured on the CPU instead" in record.error


def test_onnxruntime_memory_follows_the_batch_with_its_arena_grown_as_requested(tmp_path):
    """The default CPU arena grows in powers of two, so its peaks step; measured, memory grows with the
    batch, trial by trial in fresh processes, and the rows say how it was measured."""
    from dlmark.measure import launchers
    from dlmark.scenarios import memory_trial

    variants.prepare(variants.VariantSpec("mobilenet0.25", "onnxruntime", "float32", str(tmp_path), 1))
    peaks = {}
    for batch in (8, 16, 24, 32):
        trial = memory_trial.TrialSpec(model="mobilenet0.25", device="cpu", runtime="onnxruntime", precision="float32",
                                   threads=1, variant_dir=str(tmp_path), batch_size=batch)
        outcome = launchers.run_isolated(memory_trial.run_trial, trial)
        assert outcome.status == status.OK, outcome.error
        peaks[batch] = outcome.value["peak_memory_mb"]
    steps = [peaks[b] - peaks[b - 8] for b in (16, 24, 32)]
    assert min(steps) > 0 and max(steps) < 1.5 * min(steps), peaks  # about linear, not a step function
    assert "grown as requested" in runtimes.get("onnxruntime", "float32").memory_note
    assert "NaiveEngine" in runtimes.get("mxnet", "float32").memory_note  # each says how it measured
