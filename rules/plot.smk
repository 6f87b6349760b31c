# Cheap steps run where Snakemake runs, never as cluster jobs.
localrules:
    plot_throughput,
    plot_memory,
    plot_max_batch,
    plot_throughput_vs_accuracy,
    plot_throughput_vs_device,
    plot_speedup,


rule plot_throughput:
    """Throughput against batch size, one panel per model, memory on the side."""
    input:
        "results/throughput.csv",
    output:
        png=report(
            "results/figures/throughput_vs_batch_size.png",
            caption="../report/throughput_vs_batch_size.rst",
            category="Throughput",
        ),
        svg="results/figures/throughput_vs_batch_size.svg",
    log:
        "logs/plot_throughput.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_throughput.py"


rule plot_memory:
    """Peak memory against batch size, all models on one set of axes."""
    input:
        "results/throughput.csv",
    output:
        png=report(
            "results/figures/memory_vs_batch_size.png",
            caption="../report/memory_vs_batch_size.rst",
            category="Memory",
        ),
        svg="results/figures/memory_vs_batch_size.svg",
    log:
        "logs/plot_memory.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_memory.py"


rule plot_max_batch:
    """Largest batch size per model, devices side by side."""
    input:
        "results/max_batch_size.csv",
    output:
        png=report(
            "results/figures/max_batch_size.png",
            caption="../report/max_batch_size.rst",
            category="Memory",
        ),
        svg="results/figures/max_batch_size.svg",
    log:
        "logs/plot_max_batch.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_max_batch.py"


rule plot_throughput_vs_accuracy:
    """Top-1 accuracy against throughput, Pareto frontier drawn."""
    input:
        throughput="results/throughput.csv",
        accuracy="results/accuracy.csv",
    output:
        png=report(
            "results/figures/throughput_vs_accuracy.png",
            caption="../report/throughput_vs_accuracy.rst",
            category="Accuracy",
        ),
        svg="results/figures/throughput_vs_accuracy.svg",
    log:
        "logs/plot_throughput_vs_accuracy.log",
    conda:
        "../environment.yml"
    params:
        batch_size=config["figures"]["accuracy_batch_size"],
    script:
        "../scripts/plot_throughput_vs_accuracy.py"


rule plot_throughput_vs_device:
    """Throughput per model and batch size, devices and machines side by side."""
    input:
        "results/throughput.csv",
    output:
        png=report(
            "results/figures/throughput_vs_device.png",
            caption="../report/throughput_vs_device.rst",
            category="Throughput",
        ),
        svg="results/figures/throughput_vs_device.svg",
    log:
        "logs/plot_throughput_vs_device.log",
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_throughput_vs_device.py"


rule plot_speedup:
    """Speed-up of each runtime/precision over mxnet/float32."""
    input:
        speedup="results/speedup.csv",
        throughput="results/throughput.csv",
    output:
        png=report(
            "results/figures/speedup.png",
            caption="../report/speedup.rst",
            category="Throughput",
        ),
        svg="results/figures/speedup.svg",
    log:
        "logs/plot_speedup.log",
    conda:
        "../environment.yml"
    params:
        batch_size=config["figures"]["speedup_batch_size"],
    script:
        "../scripts/plot_speedup.py"
