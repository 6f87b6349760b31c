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
