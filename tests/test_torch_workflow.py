"""The torch runtime on a CPU, end to end through Snakemake, gated against MXNet."""

import json

import pandas as pd
import pytest
from conftest import snakemake, write_config

MODEL = "mobilenet0.25"


@pytest.mark.workflow
def test_torch_variants_are_gated_and_measured_beside_mxnet(tmp_path, tiny_config):
    tiny_config.update(
        models=[MODEL],
        batch_sizes=[1, 4],
        variants=[
            {"runtime": "mxnet", "precision": "float32"},
            {"runtime": "torch", "precision": "float32"},
            {"runtime": "torch", "precision": "bfloat16"},
        ],
    )
    tiny_config["measure"].update(min_processes=2, max_processes=2)
    tiny_config["cpu_memory_limit_mb"] = 1024  # torch and its libraries hold about 250 MiB before any batch
    write_config(tmp_path, tiny_config)
    snakemake(tmp_path)

    frame = pd.read_csv(tmp_path / "results/throughput.csv")
    rows = frame.set_index(["runtime", "precision", "batch_size"])
    assert len(frame) == 6 and set(frame["status"]) <= {"ok", "noisy"}
    assert (frame["throughput"] > 0).all()
    # float32 must agree with MXNet's network as defined; bfloat16 records how well it does.
    assert rows.loc[("torch", "float32", 1), "top1_agreement"] == 1.0
    assert rows.loc[("torch", "float32", 1), "gate_max_abs_diff"] < 1e-3
    gate = json.loads((tmp_path / f"resources/variants/{MODEL}/torch-bfloat16/gate.json").read_text())
    assert gate["passed"] and gate["tolerance"] is None
    assert rows.loc[("torch", "bfloat16", 4), "top1_agreement"] == gate["top1_agreement"]
    speedups = pd.read_csv(tmp_path / "results/max_batch_size.csv")
    assert set(zip(speedups["runtime"], speedups["precision"])) == {
        ("mxnet", "float32"), ("torch", "float32"), ("torch", "bfloat16")
    }
