"""dlmark: inference benchmarks of the MXNet Gluon model zoo.

Reading order: rules/common.smk (config checks, targets), then one file per
stage: variants.smk (fused reference, ONNX, INT8, each gated), max_batch.smk
(largest batch), throughput.smk (measure), accuracy.smk (weights, ImageNet),
serving.smk (MLPerf LoadGen scenarios), aggregate.smk (JSON -> CSV),
plot.smk, environment.smk (what it ran on).
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


include: "rules/variants.smk"
include: "rules/max_batch.smk"
include: "rules/throughput.smk"
include: "rules/accuracy.smk"
include: "rules/serving.smk"
include: "rules/aggregate.smk"
include: "rules/plot.smk"
include: "rules/environment.smk"


onsuccess:
    summary = run_summary()
    if summary:
        print(summary)
