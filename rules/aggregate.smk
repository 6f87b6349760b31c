rule aggregate_throughput:
    """Merge every throughput JSON into one tidy CSV."""
    input:
        throughput_results(),
    output:
        "results/throughput.csv",
    log:
        "logs/aggregate_throughput.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_throughput.py"


rule aggregate_max_batch:
    """Merge every max-batch JSON into one tidy CSV."""
    input:
        max_batch_results(),
    output:
        "results/max_batch_size.csv",
    log:
        "logs/aggregate_max_batch.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/aggregate_max_batch.py"


rule aggregate_accuracy:
    """Measured accuracies, and published ones for every model not measured."""
    input:
        accuracy_results(),
    output:
        "results/accuracy.csv",
    log:
        "logs/aggregate_accuracy.log",
    conda:
        "../environment.yml"
    params:
        models=config["models"],
    script:
        "../scripts/aggregate_accuracy.py"
