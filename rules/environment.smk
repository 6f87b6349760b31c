# Describes the submitting host's software; cheap, so never a cluster job.
localrules:
    environment,


rule environment:
    """What the run ran on: host, devices, software, workflow commit, config."""
    input:
        throughput=TABLES["throughput"],
        max_batch=TABLES["max_batch_size"],
        accuracy=TABLES["accuracy"],
    output:
        ENVIRONMENT,
    log:
        job_log("environment"),
    conda:
        "../environment.yml"
    params:
        machine=MACHINE,
        devices=config["devices"],
        threads=dlconfig.cpu_threads(config),
        config=config,
    script:
        "../scripts/environment.py"
