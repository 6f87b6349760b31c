# Serving scenarios through MLPerf's LoadGen: one job per variant, model, device and
# scenario. Offline is sized from the variant's throughput points; Server starts its
# search from Offline's throughput and takes its bound from SingleStream's p99.


rule serving_single_stream:
    """One request at a time through the serving loop: its latency percentiles."""
    input:
        gate=GATE,
    output:
        record=serving_file("SingleStream"),
        logs=directory(serving_file("SingleStream", SERVING_LOGS)),
    log:
        machine_log("serving/{device}/{runtime}-{precision}/{model}/SingleStream"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        scenario="SingleStream",
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
        budget=measure_settings,
        noise=noise_settings,
        serving=serving_settings("min_duration_s", "official_length", "omp_wait_policy"),
    script:
        "../scripts/serving.py"


rule serving_offline:
    """Every sample at once, batched at the sweep's best batch size: samples per second."""
    input:
        gate=GATE,
        points=variant_points,
    output:
        record=serving_file("Offline"),
        logs=directory(serving_file("Offline", SERVING_LOGS)),
    log:
        machine_log("serving/{device}/{runtime}-{precision}/{model}/Offline"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        scenario="Offline",
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
        budget=measure_settings,
        noise=noise_settings,
        serving=serving_settings(
            "min_duration_s",
            "official_length",
            "omp_wait_policy",
            "offline_batch_size",
            "max_queue_delay_ms",
            "workers",
        ),
    script:
        "../scripts/serving.py"


rule serving_server:
    """Poisson arrivals: the largest rate whose p99 latency LoadGen judges within the bound."""
    input:
        gate=GATE,
        offline=serving_file("Offline"),
        single_stream=serving_file("SingleStream"),
    output:
        record=serving_file("Server"),
        logs=directory(serving_file("Server", SERVING_LOGS)),
    log:
        machine_log("serving/{device}/{runtime}-{precision}/{model}/Server"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        scenario="Server",
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
        budget=measure_settings,
        noise=noise_settings,
        latency_bound_ms=latency_bound_ms,
        serving=serving_settings(
            "min_duration_s",
            "official_length",
            "omp_wait_policy",
            "latency_bound_factor",
            "max_batch_size",
            "max_queue_delay_ms",
            "workers",
            "server_min_queries",
            "server_max_runs",
        ),
    script:
        "../scripts/serving.py"
