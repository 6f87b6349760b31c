from pathlib import Path

import psutil
import pytest
import yaml

from dlmark import config as dlconfig
from dlmark import hardware, runtimes

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = dlconfig.load_schema(ROOT / "schemas/config.schema.yaml")


def shipped():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def problems_of(config, gpus=()):
    with pytest.raises(dlconfig.ConfigError) as info:
        dlconfig.check(config, SCHEMA, gpus=list(gpus))
    return str(info.value)


def test_shipped_config_is_valid_and_covers_five_families():
    config = shipped()
    dlconfig.check(config, SCHEMA, gpus=[])
    from dlmark.models import model_info

    families = {model_info(m).family for m in config["models"]}
    assert {"ResNet-v1", "MobileNet", "SqueezeNet", "DenseNet", "Inception"} <= families


def test_unknown_model_names_close_matches():
    config = shipped() | {"models": ["resnet18v1"], "model_overrides": {}}
    message = problems_of(config)
    assert "unknown model 'resnet18v1'" in message
    assert "Did you mean resnet18_v1" in message


@pytest.mark.parametrize(
    "batches, expected",
    [([0, 2], "batch_sizes[0]: 0 is less than the minimum of 1"), (["8"], "'8' is not of type 'integer'")],
)
def test_bad_batch_sizes(batches, expected):
    message = problems_of(shipped() | {"batch_sizes": batches})
    assert expected in message
    assert "batch sizes are whole numbers of at least 1" in message


def test_bad_override_batch_size_names_the_model():
    config = shipped()
    config["model_overrides"]["inceptionv3"]["batch_sizes"] = [-4]
    assert "model_overrides.inceptionv3.batch_sizes[0]" in problems_of(config)


def test_unknown_device():
    assert "unknown device 'tpu0'" in problems_of(shipped() | {"devices": ["tpu0"]})


def test_gpu_on_a_machine_without_one():
    message = problems_of(shipped() | {"devices": ["cpu", "gpu0"]}, gpus=[])
    assert "'gpu0' is not on this machine (no GPU found by NVML)" in message


def test_gpu_that_exists_passes():
    config = shipped() | {"devices": ["gpu0", "gpu1"], "model_overrides": {}, "serving": {},
                          "variants": [{"runtime": "onnxruntime", "precision": "float32"}]}
    dlconfig.check(config, SCHEMA, gpus=[(8, 0), (8, 6)])


def test_overrides_of_models_outside_a_subset_are_ignored():
    config = shipped() | {"models": ["squeezenet1.1"]}
    config["serving"] = config["serving"] | {"models": ["mobilenet1.0", "squeezenet1.1"]}
    dlconfig.check(config, SCHEMA, gpus=[])  # no error
    assert set(dlconfig.unused_overrides(config)) == set(shipped()["model_overrides"])
    # A served model outside the subset is not served either.
    assert dlconfig.unserved(config) == ["mobilenet1.0"]
    assert {t.model for t in dlconfig.serving_targets(config)} == {"squeezenet1.1"}


def test_an_override_whose_name_is_no_model_is_still_an_error():
    config = shipped()
    config["model_overrides"]["resnet18v1"] = {"batch_sizes": [1]}
    assert "model_overrides: unknown model 'resnet18v1'. Did you mean resnet18_v1" in problems_of(config)


def test_unknown_key_is_rejected():
    assert "'batch_size' was unexpected" in problems_of(shipped() | {"batch_size": [1]})


def test_overrides_replace_the_global_settings_for_one_model_only():
    config = shipped()
    config["model_overrides"]["inceptionv3"]["measure"] = {"max_seconds": 9}
    assert dlconfig.measure_settings(config, "inceptionv3")["max_seconds"] == 9
    assert dlconfig.measure_settings(config, "squeezenet1.1")["max_seconds"] == config["measure"]["max_seconds"]
    assert dlconfig.batch_sizes(config, "inceptionv3") == [1, 2, 4, 8]
    assert dlconfig.batch_sizes(config, "squeezenet1.1") == config["batch_sizes"]


def test_targets_cover_every_combination():
    config = {
        "devices": ["cpu"],
        "variants": [{"runtime": "mxnet", "precision": "float32"}],
        "models": ["a", "b"],
        "batch_sizes": [1, 2],
        "model_overrides": {"b": {"batch_sizes": [4]}},
    }
    assert [(t.model, t.batch_size) for t in dlconfig.targets(config)] == [("a", 1), ("a", 2), ("b", 4)]


def test_unknown_variant_lists_the_known_ones():
    message = problems_of(shipped() | {"variants": [{"runtime": "tensorrt", "precision": "float16"}]})
    assert "tensorrt/float16 is not supported; known: mxnet/float32, mxnet/int8, onnxruntime/float16" in message


@pytest.mark.parametrize(
    "runtime, precision, device, problem",
    [
        ("mxnet", "float32", "cpu", None),
        # This machine's MXNet is the CPU build of requirements.txt.
        ("mxnet", "float32", "gpu0", "mxnet/float32 on gpu0: the installed MXNet is its CPU build; install the CUDA"),
        ("mxnet", "int8", "cpu", None),
        ("mxnet", "int8", "gpu0", "mxnet/int8 does not run on a GPU: MXNet's INT8 kernels are oneDNN's"),
        ("onnxruntime", "float32", "cpu", None),
        ("onnxruntime", "float32", "gpu0", None),
        ("onnxruntime", "float16", "cpu", "onnxruntime/float16 does not run on a CPU: float16 kernels are for GPUs"),
        ("onnxruntime", "float16", "gpu0", None),
        ("torch", "float32", "cpu", None),
        ("torch", "float32", "gpu0", None),
        ("torch", "bfloat16", "cpu", None),
        ("torch", "bfloat16", "gpu0", None),
        ("torch", "float16", "cpu", "torch/float16 does not run on a CPU: float16 kernels are for GPUs (use a gpuN"),
        ("torch", "float16", "gpu0", None),
        ("torch.compile", "float32", "cpu", None),
        ("torch.compile", "float32", "gpu0", None),
        ("torch.compile", "bfloat16", "cpu", None),
        ("torch.compile", "bfloat16", "gpu0", None),
        ("torch.compile", "float16", "cpu", "torch.compile/float16 does not run on a CPU: float16 kernels are for GPUs"),
        ("torch.compile", "float16", "gpu0", None),
        ("torch.cudagraph", "float32", "cpu", "torch.cudagraph/float32 does not run on a CPU: CUDA graphs are captured"),
        ("torch.cudagraph", "float16", "gpu0", None),
        ("torch.cudagraph", "bfloat16", "gpu0", None),
    ],
)
def test_every_variant_on_every_kind_of_device(runtime, precision, device, problem):
    config = shipped() | {"devices": [device], "variants": [{"runtime": runtime, "precision": precision}]}
    config["model_overrides"] = {}
    if problem is None:
        dlconfig.check(config, SCHEMA, gpus=[(8, 0)])  # raises ConfigError on any problem
    else:
        assert f"config variants: {problem}" in problems_of(config, gpus=[(8, 0)])


def test_mxnet_is_refused_on_hopper_and_later_gpus_with_the_alternatives():
    config = shipped() | {"devices": ["gpu0"], "model_overrides": {}}
    message = problems_of(config, gpus=[(9, 0)])
    assert "mxnet/float32 on gpu0: MXNet 1.9's GPU builds have no code for compute capability 9.0" in message
    assert "measure torch/float32, torch/float16 or onnxruntime/float32 there" in message
    ada = problems_of(config, gpus=[(8, 9)])  # Ada runs the sm_86 code: only the CPU build installed here is refused
    assert "compute capability" not in ada and "`make run GPU=cu117 VENV=.venv-cu117`" in ada
    torch_only = config | {"variants": [{"runtime": "torch", "precision": "float16"}]}
    dlconfig.check(torch_only, SCHEMA, gpus=[(9, 0)])


def test_torch_compile_is_refused_below_volta_with_eager_torch_named():
    config = shipped() | {"devices": ["gpu0"], "model_overrides": {},
                          "variants": [{"runtime": "torch.compile", "precision": "float32"}]}
    message = problems_of(config, gpus=[(6, 1)])
    assert "torch.compile/float32 on gpu0: torch.compile generates Triton kernels, which need compute" in message
    assert "measure torch/* there" in message
    dlconfig.check(config, SCHEMA, gpus=[(7, 0)])


def test_the_table_above_covers_every_registered_variant():
    tested = {(r, p) for r, p, _, _ in test_every_variant_on_every_kind_of_device.pytestmark[0].args[1]}
    assert tested == set(runtimes.known())


def test_per_model_variants():
    config = shipped()
    config["model_overrides"]["inceptionv3"]["variants"] = [{"runtime": "onnxruntime", "precision": "float32"}]
    dlconfig.check(config, SCHEMA, gpus=[])
    assert dlconfig.model_variants(config, "inceptionv3") == [("onnxruntime", "float32")]


def test_zero_threads_means_every_physical_core_of_the_machine_that_runs_the_job():
    assert hardware.resolve_threads(0) == psutil.cpu_count(logical=False)
    assert hardware.resolve_threads(1) == 1


def test_more_threads_than_logical_cpus_are_refused_naming_the_count():
    logical = psutil.cpu_count(logical=True)
    assert hardware.resolve_threads(logical) == logical
    config = shipped()
    config["cpu_threads"] = 100000
    message = problems_of(config)
    assert f"config cpu_threads: 100000 threads asked, but this machine has {logical} logical CPUs" in message
    assert f"use at most {logical}" in message
    with pytest.raises(ValueError, match="logical CPUs"):
        hardware.resolve_threads(logical + 1)  # in the job too: a cluster's node may differ from the login node


def test_the_gpu_checks_config_is_valid_and_serves_one_model_on_the_gpu():
    config = yaml.safe_load((ROOT / "gpu/config.yaml").read_text())
    config["cpu_threads"] = 0  # its 4 are for the node's 16 cores, not this machine's
    dlconfig.check(config, SCHEMA, gpus=[(9, 0)])  # an H200
    targets = list(dlconfig.serving_targets(config))
    assert {(t.device, t.runtime, t.precision, t.model) for t in targets} == {("gpu0", "torch", "float16", "squeezenet1.1")}
    assert [t.scenario for t in targets] == ["Offline", "Server"]
