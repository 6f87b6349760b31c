# Cheap steps run where Snakemake runs, never as cluster jobs.
localrules:
    plot_throughput,
    plot_memory,
    plot_max_batch,
    plot_throughput_vs_accuracy,
    plot_throughput_vs_device,
    plot_speedup,
    plot_latency_vs_load,
    plot_energy,


rule plot_throughput:
    """Throughput against batch size, one panel per model, memory on the side."""
    input:
        TABLES["throughput"],
    output:
        png=report(
            figure("throughput_vs_batch_size"),
            caption="../report/throughput_vs_batch_size.rst",
            category="Throughput",
        ),
        svg=figure("throughput_vs_batch_size", "svg"),
    log:
        job_log("plot_throughput"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_throughput.py"


rule plot_memory:
    """Peak memory against batch size, all models on one set of axes."""
    input:
        TABLES["throughput"],
    output:
        png=report(
            figure("memory_vs_batch_size"),
            caption="../report/memory_vs_batch_size.rst",
            category="Memory",
        ),
        svg=figure("memory_vs_batch_size", "svg"),
    log:
        job_log("plot_memory"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_memory.py"


rule plot_max_batch:
    """Largest batch size per model, devices side by side."""
    input:
        TABLES["max_batch_size"],
    output:
        png=report(
            figure("max_batch_size"),
            caption="../report/max_batch_size.rst",
            category="Memory",
        ),
        svg=figure("max_batch_size", "svg"),
    log:
        job_log("plot_max_batch"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_max_batch.py"


rule plot_throughput_vs_accuracy:
    """Top-1 accuracy against throughput, Pareto frontier drawn."""
    input:
        throughput=TABLES["throughput"],
        accuracy=TABLES["accuracy"],
    output:
        png=report(
            figure("throughput_vs_accuracy"),
            caption="../report/throughput_vs_accuracy.rst",
            category="Accuracy",
        ),
        svg=figure("throughput_vs_accuracy", "svg"),
    log:
        job_log("plot_throughput_vs_accuracy"),
    conda:
        "../environment.yml"
    params:
        batch_size=config["figures"]["accuracy_batch_size"],
    script:
        "../scripts/plot_throughput_vs_accuracy.py"


rule plot_throughput_vs_device:
    """Throughput per model and batch size, devices and machines side by side."""
    input:
        TABLES["throughput"],
    output:
        png=report(
            figure("throughput_vs_device"),
            caption="../report/throughput_vs_device.rst",
            category="Throughput",
        ),
        svg=figure("throughput_vs_device", "svg"),
    log:
        job_log("plot_throughput_vs_device"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_throughput_vs_device.py"


rule plot_speedup:
    """Speed-up of each runtime/precision over mxnet/float32."""
    input:
        speedup=TABLES["speedup"],
        throughput=TABLES["throughput"],
    output:
        png=report(
            figure("speedup"),
            caption="../report/speedup.rst",
            category="Throughput",
        ),
        svg=figure("speedup", "svg"),
    log:
        job_log("plot_speedup"),
    conda:
        "../environment.yml"
    params:
        batch_size=config["figures"]["speedup_batch_size"],
    script:
        "../scripts/plot_speedup.py"


rule plot_latency_vs_load:
    """Server's p50 and p99 latency against offered load, the bound and the rate sustained."""
    input:
        table=SERVING_TABLE,
        records=serving_results() + other_machines("serving"),
    output:
        png=report(
            figure(SERVING_FIGURE),
            caption="../report/latency_vs_load.rst",
            category="Serving",
        ),
        svg=figure(SERVING_FIGURE, "svg"),
    log:
        job_log("plot_latency_vs_load"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_latency_vs_load.py"


rule plot_energy:
    """Images per joule against throughput on each GPU (NVML's energy counter over the timed calls)."""
    input:
        TABLES["throughput"],
    output:
        png=report(
            figure(ENERGY_FIGURE),
            caption="../report/energy_vs_throughput.rst",
            category="Energy",
        ),
        svg=figure(ENERGY_FIGURE, "svg"),
    log:
        job_log("plot_energy"),
    conda:
        "../environment.yml"
    script:
        "../scripts/plot_energy.py"
