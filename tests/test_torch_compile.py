"""torch.compile: the same network through TorchInductor, gated, compiled before the clock."""

from conftest import measured

from dlmark import runtimes, variants
from dlmark.specs import header

MODEL = "mobilenet0.25"


def test_compiled_torch_passes_the_gate_and_compiles_while_the_model_is_built(tmp_path):
    import torch
    from torch._dynamo.utils import counters

    spec = runtimes.VariantSpec(MODEL, "torch.compile", "float32", str(tmp_path), 2)
    gate = variants.prepare(spec)  # the gate runs the compiled module against MXNet's network as defined
    assert gate["passed"] and gate["top1_agreement"] == 1.0 and gate["max_abs_diff"] < 1e-3

    backend = runtimes.get("torch.compile", "float32")
    torch._dynamo.reset()
    counters.clear()
    call = backend.timed_call(spec, 2, "cpu")
    compiled = sum(counters["stats"].values())
    assert compiled > 0  # compiled for batch 2 while the timed call was built ...
    for _ in range(3):
        call()
    assert sum(counters["stats"].values()) == compiled  # ... so no timed call compiles


def test_the_row_names_the_compiler_and_the_package_version():
    common = header(measured(MODEL, "torch.compile", "bfloat16"), "ci")
    assert common["runtime"] == "torch.compile"
    assert common["software"].startswith("torch 2.")
