"""Snakemake glue: every variant of one model gated again on the GPU it is measured on."""

from pathlib import Path

from dlmark import hardware, joblog, variants
from dlmark.measure.child import limit_threads
from dlmark.results import tables

joblog.start(snakemake.log[0])
w = snakemake.wildcards
threads = hardware.resolve_threads(snakemake.params.threads)
limit_threads(threads)
# Each gate.json sits in its variant's folder, named runtime-precision.
folders = {tuple(Path(g).parent.name.split("-", 1)): str(Path(g).parent) for g in snakemake.input.gates}
gates = variants.device_gates(w.model, folders, w.device, threads, variants.read_defined_outputs(snakemake.input.defined))
for name, gate in gates.items():
    verdict = "passed" if gate["passed"] else "FAILED"
    detail = gate.get("error") or f"top-1 agreement {gate['top1_agreement']:.2f}"
    print(f"{w.model} {name} on {w.device}: gate {verdict} against {gate['against']}: {detail}")
tables.write_json(snakemake.output[0], {"model": w.model, "device": w.device,
                                        "device_name": hardware.device_name(w.device), "gates": gates})
