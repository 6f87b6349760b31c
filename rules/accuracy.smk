# Downloads run where Snakemake runs: cluster nodes often have no internet.
localrules:
    fetch_weights,


rule fetch_weights:
    """Pretrained weights of one model, named and verified as MXNet's model store does."""
    output:
        WEIGHTS,
    log:
        job_log("fetch_weights/{model}-{short_sha1}"),
    conda:
        "../environment.yml"
    params:
        sha1=lambda wildcards: dlconfig.weights_sha1(config, wildcards.model),
        local_dirs=config["weights"]["local_dirs"],
        repo_url=config["weights"]["repo_url"],
    script:
        "../scripts/fetch_weights.py"


rule accuracy:
    """Top-1/top-5 of one model on the ImageNet validation images."""
    input:
        weights=weights_file,
        gate=GATE,
    output:
        ACCURACY,
    log:
        machine_log("accuracy/{runtime}-{precision}/{model}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
    params:
        machine=MACHINE,
        imagenet=config["imagenet"],
        threads=benchmark_threads,
    script:
        "../scripts/accuracy.py"
