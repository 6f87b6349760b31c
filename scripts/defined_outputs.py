"""Snakemake glue: the network as defined on the gate batch, for the gates made on a GPU."""

from dlmark import hardware, joblog, variants
from dlmark.measure.child import limit_threads

joblog.start(snakemake.log[0])
limit_threads(hardware.resolve_threads(snakemake.params.threads))
model = snakemake.wildcards.model
variants.write_defined_outputs(model, snakemake.output[0], snakemake.input.weights or None)
print(f"{model}: the network as defined on the gate batch, in {snakemake.output[0]}")
