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
