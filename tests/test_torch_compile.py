"""torch.compile: the same network through TorchInductor, gated, compiled before the clock."""

import ast
import subprocess
import sys

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
    built = backend.build_counts()  # what a process's result records of its build: compiled, or loaded
    assert built["cache_misses"] + built["cache_hits"] >= 1

    # Every timing process builds its point again: a later one loads the compiled graph from the cache.
    later = subprocess.run(
        [sys.executable, "-c", "from dlmark import runtimes; b = runtimes.get('torch.compile', 'float32'); "
         f"b.timed_call(runtimes.VariantSpec({MODEL!r}, 'torch.compile', 'float32', {str(tmp_path)!r}, 2), 2, 'cpu'); "
         "print(b.build_counts())"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    loaded = ast.literal_eval(later.stdout.strip().splitlines()[-1])
    assert loaded == {"cache_hits": built["cache_misses"] + built["cache_hits"], "cache_misses": 0}


def test_the_row_names_the_compiler_and_the_package_version():
    common = header(measured(MODEL, "torch.compile", "bfloat16"), "ci")
    assert common["runtime"] == "torch.compile"
    assert common["software"].startswith("torch 2.")
