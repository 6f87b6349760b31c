"""Checking a workflow config and expanding it into benchmark targets.

Every mistake in a config should surface before the first benchmark
starts, with the place, the problem and the fix in one message: a typo in
a model name found after an hour of sweeping is an hour lost.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import jsonschema
import yaml

from dlmark import hardware, models, runtimes
from dlmark.measure.interference import NoisePolicy
from dlmark.measure.timing import Budget


class ConfigError(ValueError):
    """A config the workflow cannot run; the message says how to fix it."""


class Target(NamedTuple):
    device: str
    runtime: str
    precision: str
    model: str
    batch_size: int


@functools.cache
def _parsed_schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_schema(path: str | Path) -> dict[str, Any]:
    """The schema, parsed once per process and handed out as a private copy.

    Planning a run asks for its defaults about twenty times (every job's
    params read them), and parsing it each time was a third of the time
    `snakemake -n` took. The copy keeps one caller's changes from reaching
    another.
    """
    return copy.deepcopy(_parsed_schema(str(Path(path).resolve())))


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _hint(error: jsonschema.ValidationError) -> str:
    path = [p for p in error.absolute_path if isinstance(p, str)]
    if "batch_sizes" in path:
        return "batch sizes are whole numbers of at least 1, e.g. [1, 2, 4, 8]"
    if error.validator == "additionalProperties":
        return "remove or rename the unknown key (see config.yaml for the known ones)"
    if error.validator == "required":
        return "add the missing key"
    if "measure" in path:
        return "measure settings are positive numbers of seconds, iterations or a fraction"
    return "see the comments in config.yaml"


def schema_problems(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"config {_where(e)}: {e.message} (fix: {_hint(e)})"
        for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    ]


def semantic_problems(config: dict[str, Any], gpus: list[tuple[int, int]] | None = None) -> list[str]:
    """Checks a JSON schema cannot express: names, devices, variants.

    `gpus` are the compute capabilities of this machine's GPUs (gpu0
    first); None asks NVML.
    """
    problems: list[str] = []
    for name in config.get("models", []):
        try:
            models.model_info(name)
        except models.UnknownModelError as exc:
            problems.append(f"config models: {exc}")
    for name in config.get("model_overrides", {}) or {}:
        try:
            models.model_info(name)
        except models.UnknownModelError as exc:
            problems.append(f"config model_overrides: {exc}")
    devices = config.get("devices", [])
    capabilities: dict[str, tuple[int, int]] = {}
    if any(hardware.device_index(d) is not None for d in devices):
        gpus = hardware.gpu_capabilities() if gpus is None else gpus
        for device in devices:
            index = hardware.device_index(device)
            if index is not None and index < len(gpus):
                capabilities[device] = gpus[index]
            elif index is not None:
                have = "no GPU" if not gpus else f"{len(gpus)} GPU(s): gpu0..gpu{len(gpus) - 1}"
                problems.append(
                    f"config devices: '{device}' is not on this machine ({have} found by NVML); "
                    "remove it or run on a machine that has it"
                )
    for device in devices:
        if not re.fullmatch(hardware.DEVICE_PATTERN, device):
            problems.append(
                f"config devices: unknown device '{device}'; use 'cpu' or 'gpu0', 'gpu1', ..."
            )
    val_dir = (config.get("imagenet") or {}).get("val_dir")
    if val_dir and not Path(val_dir).expanduser().is_dir():
        problems.append(
            f"config imagenet.val_dir: {val_dir} does not exist or is not a folder; point it at "
            "the ILSVRC-2012 validation images, or remove it to use the published accuracies"
        )
    labels_file = (config.get("imagenet") or {}).get("labels_file")
    if val_dir and labels_file and not Path(labels_file).expanduser().is_file():
        problems.append(f"config imagenet.labels_file: {labels_file} does not exist")
    lists = [("variants", config.get("variants", []))] + [
        (f"model_overrides.{m}.variants", o["variants"])
        for m, o in (config.get("model_overrides") or {}).items()
        if o and "variants" in o and m in config.get("models", [])
    ]
    present = [d for d in devices if d == "cpu" or d in capabilities]  # missing GPUs are reported above
    for where, listed in lists:
        for variant in listed:
            for problem in runtimes.problems(variant.get("runtime"), variant.get("precision"), present, capabilities):
                problems.append(f"config {where}: {problem}")
    return problems + thread_problems(config) + serving_problems(config)


def serving_problems(config: dict[str, Any]) -> list[str]:
    """Served models must be zoo models, served variants benchmarked ones (Offline is sized from their sweep).

    A served model left out of `models`, or a served variant its model is
    not benchmarked with, is not served (a subset was asked for, as with
    model_overrides; `unserved` names them).
    """
    serving = config.get("serving") or {}
    problems = []
    for name in serving.get("models", []):
        try:
            models.model_info(name)
        except models.UnknownModelError as exc:
            problems.append(f"config serving.models: {exc}")
    for v in serving.get("variants", []):
        if (v["runtime"], v["precision"]) not in runtimes.known():
            problems.append(f"config serving.variants: {v['runtime']}/{v['precision']} is not a known variant; "
                            f"known: {', '.join(f'{r}/{p}' for r, p in runtimes.known())}")
    for model in serving.get("latency_bound_ms", {}) or {}:
        if model not in serving.get("models", []):
            problems.append(f"config serving.latency_bound_ms: '{model}' is not in serving.models")
    return problems


def thread_problems(config: dict[str, Any]) -> list[str]:
    """More framework threads than logical CPUs would time the scheduler, not the model."""
    requested = int(config.get("cpu_threads") or 0)
    try:
        hardware.resolve_threads(requested)
    except ValueError as exc:
        return [f"config cpu_threads: {exc}"]
    return []


SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def section_defaults_top(key: str) -> Any:
    """The schema's default of a top-level key (before Snakemake's validation fills it in)."""
    return load_schema(SCHEMA)["properties"][key]["default"]


def section_defaults(section: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema's defaults of one config block (the one place defaults are written)."""
    schema = schema or load_schema(SCHEMA)
    return {k: v["default"] for k, v in schema["properties"][section]["properties"].items()}


def budget_problems(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Measure settings that contradict each other (min above max), globally or per model."""
    defaults = section_defaults("measure", schema)
    blocks = [("measure", {})] + [
        (f"model_overrides.{m}.measure", o.get("measure") or {})
        for m, o in (config.get("model_overrides") or {}).items()
        if o and o.get("measure") and m in config.get("models", [])
    ]
    problems = []
    for where, override in blocks:
        try:
            Budget(**{**defaults, **(config.get("measure") or {}), **override})
        except ValueError as exc:
            problems.append(f"config {where}: {exc}")
    return problems


def check(config: dict[str, Any], schema: dict[str, Any], gpus: list[tuple[int, int]] | None = None) -> None:
    """Raise ConfigError listing every problem, or return quietly (`gpus`: see semantic_problems)."""
    problems = schema_problems(config, schema)
    if not problems:
        problems = semantic_problems(config, gpus) + budget_problems(config, schema)
    if problems:
        raise ConfigError(
            "the config has {} problem(s):\n  - {}".format(len(problems), "\n  - ".join(problems))
        )


def unused_overrides(config: dict[str, Any]) -> list[str]:
    """Zoo models with overrides that this run does not benchmark (a subset was asked for).

    `snakemake --config 'models=[squeezenet1.1]'` merges into config.yaml,
    whose overrides name other models: they are ignored, not an error.
    """
    return [m for m in (config.get("model_overrides") or {}) if m not in config.get("models", [])]


def _override(config: dict[str, Any], model: str) -> dict[str, Any]:
    return (config.get("model_overrides") or {}).get(model) or {}


def batch_sizes(config: dict[str, Any], model: str) -> list[int]:
    return sorted(_override(config, model).get("batch_sizes", config["batch_sizes"]))


def measure_settings(config: dict[str, Any], model: str) -> dict[str, float]:
    """The measurement budget for `model`: the global block, then its overrides."""
    settings = {**section_defaults("measure"), **(config.get("measure") or {})}
    settings.update(_override(config, model).get("measure", {}))
    return Budget(**settings).to_dict()


def noise_settings(config: dict[str, Any]) -> dict[str, float]:
    """When a measurement counts as disturbed, and how often to measure it again."""
    return asdict(noise_policy(config))


def budget(config: dict[str, Any], model: str) -> Budget:
    """`measure_settings`, typed: what a job's params hold as a dict, its spec holds as this."""
    return Budget(**measure_settings(config, model))


def noise_policy(config: dict[str, Any]) -> NoisePolicy:
    return NoisePolicy(**{**section_defaults("noise"), **(config.get("noise") or {})})


def memory_limit_mb(config: dict[str, Any], model: str) -> float:
    return float(_override(config, model).get("cpu_memory_limit_mb", config["cpu_memory_limit_mb"]))


def measures_accuracy(config: dict[str, Any]) -> bool:
    return bool((config.get("imagenet") or {}).get("val_dir"))


def weights_sha1(config: dict[str, Any], model: str) -> str:
    """The checksum a model's weights must have: the config's, else MXNet's."""
    from dlmark import weights

    custom = (config.get("weights") or {}).get("checksums") or {}
    return custom.get(model) or weights.model_store_sha1(model)


def max_batch_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {**section_defaults("max_batch"), **(config.get("max_batch") or {})}


def cpu_threads(config: dict[str, Any]) -> int:
    """Threads on this host (0 in the config: all its physical cores)."""
    return hardware.resolve_threads(int(config.get("cpu_threads") or 0))


def model_variants(config: dict[str, Any], model: str) -> list[tuple[str, str]]:
    """Runtime/precision pairs of a model: its override, else the global list."""
    listed = _override(config, model).get("variants", config["variants"])
    return [(v["runtime"], v["precision"]) for v in listed]


def gated_variants(config: dict[str, Any], model: str) -> list[tuple[str, str]]:
    """A model's variants, and on a GPU the float32 ones its others are gated against there (`variants.device_gates`)."""
    listed = model_variants(config, model)
    if all(device == "cpu" for device in config["devices"]):
        return listed
    references = [runtimes.device_reference(*variant) for variant in listed]
    return list(dict.fromkeys(listed + [r for r in references if r is not None]))


def all_variants(config: dict[str, Any]) -> set[tuple[str, str]]:
    """Every variant a run prepares, gate references included."""
    return {pair for model in config["models"] for pair in gated_variants(config, model)}


def targets(config: dict[str, Any]) -> Iterator[Target]:
    for device in config["devices"]:
        for model in config["models"]:
            for runtime, precision in model_variants(config, model):
                for batch in batch_sizes(config, model):
                    yield Target(device, runtime, precision, model, batch)


class ServingTarget(NamedTuple):
    device: str
    runtime: str
    precision: str
    model: str
    scenario: str


def serving_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {**section_defaults("serving"), **(config.get("serving") or {})}


def unserved(config: dict[str, Any]) -> list[str]:
    """What serving names that this run does not benchmark, so does not serve: models, or a model's variants."""
    serving = serving_settings(config)
    found = []
    for model in serving["models"]:
        if model not in config.get("models", []):
            found.append(model)
            continue
        have = model_variants(config, model)
        found += [f"{model} {v['runtime']}/{v['precision']}" for v in serving["variants"]
                  if (v["runtime"], v["precision"]) not in have]
    return found


def serving_targets(config: dict[str, Any]) -> Iterator[ServingTarget]:
    serving = serving_settings(config)
    for device in config["devices"]:
        for model in (m for m in serving["models"] if m in config["models"]):
            for v in serving["variants"]:
                if (v["runtime"], v["precision"]) not in model_variants(config, model):
                    continue
                for scenario in serving["scenarios"]:
                    yield ServingTarget(device, v["runtime"], v["precision"], model, scenario)
