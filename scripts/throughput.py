"""Snakemake glue: measure every point of one model on one device, in interleaved rounds."""

from pathlib import Path

from dlmark import benchmark, hardware, joblog, records, results

joblog.start(snakemake.log[0])
w = snakemake.wildcards
gates = {Path(g).parent.name: str(Path(g).parent) for g in snakemake.input.gates}  # by runtime-precision
specs = [
    benchmark.ThroughputSpec(
        model=w.model,
        device=w.device,
        runtime=runtime,
        precision=precision,
        batch_size=batch,
        machine=snakemake.params.machine,
        threads=hardware.resolve_threads(snakemake.params.threads),
        budget=snakemake.params.budget,
        noise=snakemake.params.noise,
        memory_limit_mb=snakemake.params.memory_limit_mb,
        variant_dir=gates[f"{runtime}-{precision}"],
    )
    for runtime, precision, batch in snakemake.params.points
]
max_batches = {}
for path in snakemake.input.max_batch:
    record = results.read_record(path, records.MaxBatchRecord)
    max_batches[record["runtime"], record["precision"]] = record
results.write_rounds(snakemake.output[0], benchmark.throughput_points(specs, max_batches))
