import re
from pathlib import Path

from snakemake.utils import validate

import dlmark.config as dlconfig

# Friendly checks first (every problem, with its fix), then Snakemake's own
# validation, which also fills in the schema's defaults.
dlconfig.check(
    config, dlconfig.load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml")
)


validate(config, "../schemas/config.schema.yaml")

MACHINE = config["machine"]
RAW = f"results/raw/{MACHINE}"

# Benchmarks must never overlap: two at once would each time the other's
# load. Every benchmark job takes the one slot of this resource, whatever
# --cores or --resources say.
workflow.register_resource("benchmark_slot", 1)


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    machine=_alternatives([MACHINE]),
    device=_alternatives(config["devices"]),
    runtime=_alternatives({v["runtime"] for v in config["variants"]}),
    precision=_alternatives({v["precision"] for v in config["variants"]}),
    model=_alternatives(config["models"]),
    batch="[1-9][0-9]*",
    short_sha1="[0-9a-f]{8}",


def throughput_results():
    return [
        f"{RAW}/throughput/{t.device}/{t.runtime}-{t.precision}/{t.model}/bs{t.batch_size}.json"
        for t in dlconfig.targets(config)
    ]


def max_batch_results():
    return sorted(
        {
            f"{RAW}/max_batch/{t.device}/{t.runtime}-{t.precision}/{t.model}.json"
            for t in dlconfig.targets(config)
        }
    )


def final_outputs():
    return [
        "results/throughput.csv",
        "results/max_batch_size.csv",
        "results/figures/throughput_vs_batch_size.png",
        "results/figures/memory_vs_batch_size.png",
        "results/figures/max_batch_size.png",
        "results/accuracy.csv",
        "results/figures/throughput_vs_accuracy.png",
    ]


def accuracy_results():
    """Measured accuracy targets; none without validation data (published values are used)."""
    if not dlconfig.measures_accuracy(config):
        return []
    return [
        f"{RAW}/accuracy/{v['runtime']}-{v['precision']}/{model}.json"
        for v in config["variants"]
        for model in config["models"]
    ]


def weights_file(wildcards):
    sha1 = dlconfig.weights_sha1(config, wildcards.model)
    return f"resources/weights/{wildcards.model}-{sha1[:8]}.params"


def measure_settings(wildcards):
    return dlconfig.measure_settings(config, wildcards.model)


def memory_limit_mb(wildcards):
    """The CPU memory budget of a model; GPUs are limited by their memory."""
    if wildcards.device != "cpu":
        return None
    return dlconfig.memory_limit_mb(config, wildcards.model)


def benchmark_threads(wildcards):
    return dlconfig.cpu_threads(config)
