# Cheap steps run where Snakemake runs, never as cluster jobs.
localrules:
    aggregate_throughput,
    aggregate_comparisons,
    aggregate_max_batch,
    aggregate_accuracy,
    aggregate_serving,


rule aggregate_throughput:
    """Merge every throughput JSON into one tidy CSV."""
    input:
        throughput_results() + other_machines("throughput"),
    output:
        report(
            TABLES["throughput"],
            caption="../report/throughput_table.rst",
            category="Tables",
        ),
    log:
        job_log("aggregate_throughput"),
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_throughput.py"


rule aggregate_comparisons:
    """Speed-ups and curve shapes, each a ratio taken within the rounds that measured both points."""
    input:
        table=TABLES["throughput"],
        points=throughput_results() + other_machines("throughput"),
    output:
        speedup=report(
            TABLES["speedup"],
            caption="../report/speedup_table.rst",
            category="Tables",
        ),
        scaling=report(
            TABLES["scaling"],
            caption="../report/scaling_table.rst",
            category="Tables",
        ),
    log:
        job_log("aggregate_comparisons"),
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_comparisons.py"


rule aggregate_max_batch:
    """Merge every max-batch JSON into one tidy CSV."""
    input:
        max_batch_results() + other_machines("max_batch"),
    output:
        report(
            TABLES["max_batch_size"],
            caption="../report/max_batch_table.rst",
            category="Tables",
        ),
    log:
        job_log("aggregate_max_batch"),
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_max_batch.py"


rule aggregate_accuracy:
    """Measured accuracies, and published ones for every model not measured."""
    input:
        accuracy_results() + other_machines("accuracy"),
    output:
        report(
            TABLES["accuracy"],
            caption="../report/accuracy_table.rst",
            category="Tables",
        ),
    log:
        job_log("aggregate_accuracy"),
    conda:
        "../environment.yml"
    params:
        models=config["models"],
    script:
        "../scripts/aggregate_accuracy.py"


rule aggregate_serving:
    """Merge every serving JSON into one tidy CSV, a row per scenario."""
    input:
        serving_results() + other_machines("serving"),
    output:
        report(
            SERVING_TABLE,
            caption="../report/serving_table.rst",
            category="Tables",
        ),
    log:
        job_log("aggregate_serving"),
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_serving.py"
