# Describes the submitting host's software; cheap, so never a cluster job.
localrules:
    environment,


rule environment:
    """What the run ran on: host, devices, software, workflow commit, config."""
    input:
        throughput="results/throughput.csv",
        max_batch="results/max_batch_size.csv",
        accuracy="results/accuracy.csv",
    output:
        "results/environment.json",
    log:
        "logs/environment.log",
    conda:
        "../environment.yml"
    params:
        machine=MACHINE,
        devices=config["devices"],
        threads=dlconfig.cpu_threads(config),
        config=config,
    script:
        "../scripts/environment.py"
