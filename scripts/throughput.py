"""Snakemake glue: measure every point of one model on one device, in interleaved rounds."""

import json
from pathlib import Path

from dlmark import joblog, specs
from dlmark.measure.interference import NoisePolicy
from dlmark.measure.timing import Budget
from dlmark.results import records, tables
from dlmark.scenarios import throughput

joblog.start(snakemake.log[0])
params = snakemake.params
gates = {Path(g).parent.name: str(Path(g).parent) for g in snakemake.input.gates}  # by runtime-precision
points = [
    throughput.ThroughputSpec(
        **specs.from_job(
            snakemake.wildcards, params.threads, gates[f"{runtime}-{precision}"], runtime=runtime, precision=precision
        ),
        batch_size=batch,
        machine=params.machine,
        budget=Budget(**params.budget),
        noise=NoisePolicy(**params.noise),
        memory_limit_mb=params.memory_limit_mb,
    )
    for runtime, precision, batch in params.points
]
max_batches = {}
for path in snakemake.input.max_batch:
    record = tables.read_record(path, records.MaxBatchRecord)
    max_batches[record["runtime"], record["precision"]] = record
# On a GPU: the gates made there, by "runtime/precision" (rule device_gates).
device_gates = {k: v for path in snakemake.input.device_gates for k, v in json.loads(Path(path).read_text())["gates"].items()}
tables.write_rounds(snakemake.output[0], throughput.throughput_points(points, max_batches, device_gates))
