import re
import sys
from pathlib import Path

from snakemake.utils import validate

import dlmark.config as dlconfig
import dlmark.results.tables as dlresults

# Friendly checks first (every problem, with its fix), then Snakemake's own
# validation, which also fills in the schema's defaults.
dlconfig.check(
    config, dlconfig.load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml")
)


validate(config, "../schemas/config.schema.yaml")

if dlconfig.unused_overrides(config):
    print(
        "dlmark: model_overrides of models not in this run's models are ignored: "
        + ", ".join(dlconfig.unused_overrides(config)),
        file=sys.stderr,
    )

if dlconfig.unserved(config):
    print(
        "dlmark: served models or variants this run does not benchmark are not served: "
        + ", ".join(dlconfig.unserved(config)),
        file=sys.stderr,
    )

MACHINE = config["machine"]
RAW = f"results/raw/{MACHINE}"

# Where each file lives, written once: the rule that makes a file names its
# template as output, and every rule or target list that needs the file
# fills in the same template.
GATE = "resources/variants/{model}/{runtime}-{precision}/gate.json"
# On a GPU every variant is gated again where it is measured, against the
# network as defined on the CPU (its outputs, kept per model) and, for
# float16 and bfloat16, their framework's float32 on the same GPU.
DEFINED_OUTPUTS = "resources/variants/{model}/defined_outputs.json"
DEVICE_GATES = f"{RAW}/gates/{{device}}/{{model}}.json"
WEIGHTS = "resources/weights/{model}-{short_sha1}.params"
MAX_BATCH = f"{RAW}/max_batch/{{device}}/{{runtime}}-{{precision}}/{{model}}.json"
THROUGHPUT = (
    f"{RAW}/throughput/{{device}}/{{runtime}}-{{precision}}/{{model}}/bs{{batch}}.json"
)
# A model's points on a device, measured together in interleaved rounds (one job).
ROUNDS = f"{RAW}/rounds/{{device}}/{{model}}.json"
ACCURACY = f"{RAW}/accuracy/{{runtime}}-{{precision}}/{{model}}.json"
# A served variant in one MLPerf scenario, and LoadGen's logs of its runs beside it.
SERVING = (
    f"{RAW}/serving/{{device}}/{{runtime}}-{{precision}}/{{model}}/{{scenario}}.json"
)
SERVING_LOGS = (
    f"{RAW}/serving/{{device}}/{{runtime}}-{{precision}}/{{model}}/{{scenario}}.loadgen"
)
SERVES = bool(list(dlconfig.serving_targets(config)))
# The tables and figures every run makes, and where each job logs.
TABLES = {
    name: f"results/{name}.csv"
    for name in ("throughput", "max_batch_size", "accuracy", "speedup", "scaling")
}
FIGURES = (
    "throughput_vs_batch_size",
    "memory_vs_batch_size",
    "max_batch_size",
    "throughput_vs_accuracy",
    "throughput_vs_device",
    "speedup",
)
ENVIRONMENT = "results/environment.json"
# Made when the config serves some models (serving.models).
SERVING_TABLE = "results/serving.csv"
SERVING_FIGURE = "latency_vs_load"
# Made when the config measures a GPU, whose energy counter NVML reads.
ENERGY_FIGURE = "energy_vs_throughput"
ON_GPU = any(d != "cpu" for d in config["devices"])


def figure(name, kind="png"):
    return f"results/figures/{name}.{kind}"


def job_log(name):
    return f"logs/{name}.log"


def machine_log(name):
    """A measuring job's log, under its machine's label like its result."""
    return job_log(f"{MACHINE}/{name}")


# Benchmarks must never overlap: two at once would each time the other's
# load. Every benchmark job takes a slot of this resource, and on one machine
# there is one slot, whatever --cores says. Only where each benchmark gets a
# machine of its own (the SLURM profile asks for whole nodes) may
# `--resources benchmark_slot=N` allow N at once.
if "benchmark_slot" not in workflow.global_resources:
    workflow.register_resource("benchmark_slot", 1)


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    device=_alternatives(config["devices"]),
    runtime=_alternatives({r for r, _ in dlconfig.all_variants(config)}),
    precision=_alternatives({p for _, p in dlconfig.all_variants(config)}),
    model=_alternatives(config["models"]),
    batch="[1-9][0-9]*",
    scenario="SingleStream|Offline|Server",
    short_sha1="[0-9a-f]{8}",


def throughput_results():
    return [
        THROUGHPUT.format(
            device=t.device,
            runtime=t.runtime,
            precision=t.precision,
            model=t.model,
            batch=t.batch_size,
        )
        for t in dlconfig.targets(config)
    ]


def other_machines(stage):
    """Raw results of other machine labels copied into results/raw (see `dlmark merge`).

    They are inputs of the aggregation, so adding another machine's results
    redoes the tables and figures, never its measurements.
    """
    return sorted(
        str(path)
        for path in Path("results/raw").glob(f"*/{stage}/**/*.json")
        if path.parts[2] != MACHINE
    )


def max_batch_results():
    return sorted(
        {
            MAX_BATCH.format(
                device=t.device, runtime=t.runtime, precision=t.precision, model=t.model
            )
            for t in dlconfig.targets(config)
        }
    )


def final_outputs():
    serving = [SERVING_TABLE, figure(SERVING_FIGURE)] if SERVES else []
    energy = [figure(ENERGY_FIGURE)] if ON_GPU else []
    return [
        *TABLES.values(),
        *(figure(name) for name in FIGURES),
        ENVIRONMENT,
        *serving,
        *energy,
    ]


def serving_file(scenario, template=SERVING):
    """A serving path with its scenario filled in and the other wildcards left."""
    return template.replace("{scenario}", scenario)


def serving_results():
    return [SERVING.format(**t._asdict()) for t in dlconfig.serving_targets(config)]


def variant_points(wildcards):
    """The throughput points of one variant of a model on a device (Offline is sized from them)."""
    return [
        THROUGHPUT.format(
            device=t.device,
            runtime=t.runtime,
            precision=t.precision,
            model=t.model,
            batch=t.batch_size,
        )
        for t in dlconfig.targets(config)
        if (t.model, t.device, t.runtime, t.precision)
        == (wildcards.model, wildcards.device, wildcards.runtime, wildcards.precision)
    ]


def serving_settings(*keys):
    """The serving settings a scenario's job depends on (a change reruns that scenario only)."""
    settings = dlconfig.serving_settings(config)
    return {key: settings[key] for key in keys}


def latency_bound_ms(wildcards):
    """The Server bound set for this model in config, else None (from SingleStream's p99)."""
    return dlconfig.serving_settings(config)["latency_bound_ms"].get(wildcards.model)


def accuracy_results():
    """Measured accuracy targets; none without validation data (published values are used)."""
    if not dlconfig.measures_accuracy(config):
        return []
    return [
        ACCURACY.format(runtime=runtime, precision=precision, model=model)
        for model in config["models"]
        for runtime, precision in dlconfig.model_variants(config, model)
    ]


def weights_file(wildcards):
    sha1 = dlconfig.weights_sha1(config, wildcards.model)
    return WEIGHTS.format(model=wildcards.model, short_sha1=sha1[:8])


def model_points(wildcards):
    """The [runtime, precision, batch] of every point of one model on one device."""
    return [
        [t.runtime, t.precision, t.batch_size]
        for t in dlconfig.targets(config)
        if t.model == wildcards.model and t.device == wildcards.device
    ]


def model_gates(wildcards):
    return [
        GATE.format(model=wildcards.model, runtime=r, precision=p)
        for r, p in dlconfig.model_variants(config, wildcards.model)
    ]


def gated_variant_gates(wildcards):
    """The CPU gates (and prepared folders) a device gate needs: the model's variants and their references."""
    return [
        GATE.format(model=wildcards.model, runtime=r, precision=p)
        for r, p in dlconfig.gated_variants(config, wildcards.model)
    ]


def model_device_gates(wildcards):
    """On a GPU, the gates made there replace the CPU's; a CPU's gate is the one made with the variant."""
    if wildcards.device == "cpu":
        return []
    return [DEVICE_GATES.format(device=wildcards.device, model=wildcards.model)]


def model_max_batches(wildcards):
    return [
        MAX_BATCH.format(
            device=wildcards.device, runtime=r, precision=p, model=wildcards.model
        )
        for r, p in dlconfig.model_variants(config, wildcards.model)
    ]


def measure_settings(wildcards):
    return dlconfig.measure_settings(config, wildcards.model)


def noise_settings(wildcards):
    return dlconfig.noise_settings(config)


def memory_limit_mb(wildcards):
    """The CPU memory budget of a model; GPUs are limited by their memory."""
    if wildcards.device != "cpu":
        return None
    return dlconfig.memory_limit_mb(config, wildcards.model)


def benchmark_threads(wildcards):
    """As configured: 0 (every physical core) is resolved where the job runs."""
    return config["cpu_threads"]


def variant_weights(wildcards):
    """Variants are built from the pretrained weights when accuracy is measured."""
    return weights_file(wildcards) if dlconfig.measures_accuracy(config) else []


def run_summary():
    """What the end of a run says about noisy or failed points."""
    return dlresults.run_summary("results", MACHINE)
