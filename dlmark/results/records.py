"""The result records: one class per kind, the single definition of its shape.

A record is what one job measured (a throughput point, a largest-batch
search, an accuracy pass). Its class owns everything other code needs to
know about that shape, so no list of columns or schema is written twice:
- its fields, typed;
- its CSV columns (`columns()`: fields marked `csv`, in order);
- its JSON schema (`json_schema()`, generated from the fields' types);
- its failed or skipped form (fields a failed measurement lacks default
  to null, so `Cls(**common, status=..., error=...)` is complete);
- its schema version, checked on read: a raw file written by another
  version is refused with a message that says to remeasure, never misread.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jsonschema

from dlmark import provenance
from dlmark.measure.timing import Summary
from dlmark.results.status import OK, STATUSES

# Version 2: several processes per throughput point, interference, `noisy`.
# Version 3: CPU memory is the process's own (mapped files' pages beside it), points measured in
# interleaved rounds.
SCHEMA_VERSION = 3


class ResultFileError(ValueError):
    """A result file that cannot be used; the message names it and the fix."""


def col(default: Any = None, *, csv: bool = True, required: bool = False, **schema: Any) -> Any:
    """A record field: in the CSV unless `csv=False`; extra JSON-schema keywords in `schema`."""
    return field(default=default, metadata={"csv": csv, "required": required, "schema": schema})


def extra(default_factory: Any = dict) -> Any:
    """A JSON-only field (lists, nested facts): kept in the raw file, not in the CSV."""
    return field(default_factory=default_factory, metadata={"csv": False, "required": False, "schema": {}})


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _json_type(hint: Any) -> list[str]:
    """JSON-schema types of a field's annotation (`float | None` -> number, null)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return [t for arg in typing.get_args(hint) for t in _json_type(arg)]
    if hint is type(None):
        return ["null"]
    origin = typing.get_origin(hint) or hint
    return [_JSON_TYPES[origin]]


@dataclass(kw_only=True)
class Record:
    """The columns every table starts with (the contract), and the provenance."""

    KIND: ClassVar[str] = "record"

    model: str = col(required=True)
    family: str = col(required=True)
    device: str = col(required=True)
    device_name: str = col(required=True)
    machine: str = col(required=True)
    runtime: str = col(required=True)
    precision: str = col(required=True)
    software: str = col(required=True)
    schema_version: int = col(SCHEMA_VERSION, csv=False, required=True)
    host: dict = extra()
    git_dirty: bool | None = col(csv=False)
    settings: dict = extra()
    settings_hash: str | None = col()
    git_commit: str | None = col()

    # The contract's columns, first in every table; each kind adds its own.
    CONTRACT: ClassVar[tuple[str, ...]] = (
        "model", "family", "device", "device_name", "machine", "runtime", "precision", "software",
    )
    COLUMN_ORDER: ClassVar[tuple[str, ...]] = CONTRACT
    LAST_COLUMNS: ClassVar[tuple[str, ...]] = ("error", "settings_hash", "git_commit")

    @classmethod
    def columns(cls) -> list[str]:
        """CSV columns: the contract's first, then what helps judge a row, provenance last."""
        names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("csv")]
        first = [n for n in cls.COLUMN_ORDER if n in names]
        last = [n for n in cls.LAST_COLUMNS if n in names]
        return first + [n for n in names if n not in first and n not in last] + last

    @classmethod
    @functools.cache
    def json_schema(cls) -> dict[str, Any]:
        """Generated once per class from its fields (read on every record validated)."""
        hints = typing.get_type_hints(cls)
        properties = {}
        for f in dataclasses.fields(cls):
            prop = {"type": _json_type(hints[f.name])}
            prop.update(f.metadata.get("schema", {}))
            properties[f.name] = prop
        properties["schema_version"] = {"const": SCHEMA_VERSION}
        return {
            "type": "object",
            "required": [f.name for f in dataclasses.fields(cls) if f.metadata.get("required")],
            "properties": properties,
            "additionalProperties": False,
        }

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.settings:
            data["settings_hash"] = provenance.settings_hash(self.settings)
        return data

    @classmethod
    def validate(cls, data: dict[str, Any], source: str = "record") -> dict[str, Any]:
        """`data` if it is a record of this kind and version, else a ResultFileError saying why."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ResultFileError(
                f"{source} was written by another dlmark version (record schema {version}, this one "
                f"reads {SCHEMA_VERSION}). Delete it and rerun the workflow to measure it again."
            )
        try:
            jsonschema.validate(data, cls.json_schema())
        except jsonschema.ValidationError as exc:
            where = "/".join(map(str, exc.absolute_path)) or "top level"
            raise ResultFileError(
                f"{source} is not a dlmark {cls.KIND} record ({where}: {exc.message}). "
                "Delete it and rerun the workflow to measure it again."
            ) from exc
        return data

    @classmethod
    def read(cls, path: str | Path) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultFileError(
                f"cannot read result file {path}: {exc}. Delete it and rerun the workflow to measure it again."
            ) from exc
        return cls.validate(data, f"result file {path}")


_STATUS = {"enum": list(STATUSES)}


@dataclass(frozen=True, kw_only=True)
class ProcessResult:
    """One point's result from one timing process: the unit every interval rests on.

    Made once, in the process that timed the point (as pyperf's `Run` is
    made by its worker), and carried unchanged to the record, so what a
    process measured cannot be edited on its way into a table. In the raw
    JSON it is one flat object: the timing summary's fields beside the rest.
    """

    summary: Summary  # the calls' latencies and their statistics
    block_ms: list[float]  # each block's mean latency, a block per round: what ratios pair
    interference: dict  # what the rest of the machine did meanwhile (interference.WatchResult)
    memory_bandwidth_gbs: float | None  # the drift canary timed just before the process (CPU)
    process_peak_mb: float | None  # the timing process's own peak memory, every point of the model in it
    launcher: str  # how the process was started: "forked" from the warm process
    session: str  # the job that measured it: ratios pair blocks of one session only
    generation: int  # which of the job's timing processes it was
    began_at: float  # Unix time
    process_seconds: float  # from its start to its answer
    # The core-speed canary timed beside the memory one (CPU; absent in files from before it).
    compute_gflops: float | None = None
    # The device's energy counter over this point's timed blocks (dlmark.measure.energy), where it has one.
    energy_j: float | None = None
    energy_seconds: float | None = None
    energy_source: str | None = None  # "nvml" or "rapl"
    # Building the point in this process, before warm-up: loading, and compiling or capturing where the
    # variant does; and what the build's compiler counted (torch.compile: Inductor's cache hits and misses).
    build_seconds: float | None = None
    build_counts: dict[str, int] | None = None

    @property
    def disturbed(self) -> str | None:
        return self.interference.get("disturbed")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "summary"}
        return {**dataclasses.asdict(self.summary), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessResult:
        own = {f.name for f in dataclasses.fields(cls)}
        summary = Summary(**{k: v for k, v in data.items() if k in Summary.__dataclass_fields__})
        return cls(summary=summary, **{k: v for k, v in data.items() if k in own and k != "summary"})


@dataclass(kw_only=True)
class ThroughputRecord(Record):
    """One model x device x runtime x precision x batch size.

    The numbers combine several fresh processes: `processes` holds each
    one's own result, and the interval spans them.
    """

    KIND: ClassVar[str] = "throughput"
    COLUMN_ORDER: ClassVar[tuple[str, ...]] = (
        *Record.CONTRACT,
        "batch_size", "status", "throughput", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90",
        "latency_ms_p99", "throughput_ci95_low", "throughput_ci95_high", "iterations", "measure_seconds",
        "peak_memory_mb", "gflops_per_image", "processes", "cpu_share", "interference",
        "machine_speed", "machine_drift",
    )

    batch_size: int = col(required=True, minimum=1)
    status: str = col(required=True, **_STATUS)
    throughput: float | None = col(required=True)
    latency_ms_mean: float | None = col()
    latency_ms_p50: float | None = col()
    latency_ms_p90: float | None = col()
    latency_ms_p99: float | None = col()
    throughput_ci95_low: float | None = col()
    throughput_ci95_high: float | None = col()
    iterations: int = col(0, required=True, minimum=0)  # timed calls, all processes together
    measure_seconds: float = col(0.0)
    peak_memory_mb: float | None = col(required=True)
    gflops_per_image: float | None = col()
    processes: int = col(0, minimum=0)  # fresh processes the numbers rest on
    cpu_share: float | None = col()  # the lowest of the processes
    interference: float | None = col()  # the highest share of the machine other processes used
    # The machine's own drift (dlmark.measure.drift): the canary before each process, its median here;
    # speed and drift are filled when the table is made, from all rows of the machine.
    memory_bandwidth_gbs: float | None = col()
    compute_gflops: float | None = col()  # the core-speed canary beside it, its median; `compare` reads both
    machine_speed: float | None = col()  # this row's canary / the machine's median
    machine_drift: float | None = col()  # the canary's relative spread over the machine's rows
    remeasured: int = col(0)  # processes discarded as disturbed and measured again
    disturbance: str | None = col()  # why the row is noisy
    baseline_memory_mb: float | None = col()
    mapped_files_mb: float | None = col()  # pages of mapped files beside the peak (CPU), not in it
    memory_note: str | None = col()  # how memory was measured, where not as timed (e.g. an allocator setting)
    # From the device's energy counter over the timed calls (NVML on a GPU, RAPL on a CPU), where readable.
    energy_j_per_image: float | None = col()
    power_w_mean: float | None = col()
    energy_note: str | None = col()  # where the window was too short for the counter
    rel_ci95: float | None = col()
    converged: bool | None = col()
    threads: int | None = col()
    top1_agreement: float | None = col()
    gate_max_abs_diff: float | None = col()
    gate_device: str | None = col()  # where the gate ran: "cpu", or the GPU itself (variants.device_gates)
    error: str | None = col()
    warmup_seconds: float = col(0.0, csv=False)
    started_at: str | None = col(csv=False)
    finished_at: str | None = col(csv=False)
    process_results: list[ProcessResult] = extra(list)  # each timing process's own result
    memory_trial: dict = extra()  # the process that measured its memory: peak, baseline, resident set

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["process_results"] = [p.to_dict() for p in self.process_results]
        return data


@dataclass(kw_only=True)
class MaxBatchRecord(Record):
    """The largest batch size of one model that fits a device's memory limit."""

    KIND: ClassVar[str] = "max_batch"
    COLUMN_ORDER: ClassVar[tuple[str, ...]] = (
        *Record.CONTRACT,
        "max_batch_size", "memory_limit_mb", "memory_at_max_mb", "trials",
    )

    max_batch_size: int = col(0, required=True, minimum=0)
    memory_limit_mb: float = col(0.0, required=True)
    memory_at_max_mb: float | None = col(required=True)
    trials: int = col(0, required=True, minimum=0)
    status: str = col(OK, required=True, **_STATUS)
    reached_upper_bound: bool = col(False)
    step: int = col(1)
    method: str | None = col()  # how the search chose its trials
    memory_note: str | None = col()  # how memory was measured, where not as timed
    search_seconds: float = col(0.0)
    error: str | None = col()
    trial_log: list = extra(list)


@dataclass(kw_only=True)
class AccuracyRecord(Record):
    """ImageNet top-1/top-5 of one model and variant, measured or published."""

    KIND: ClassVar[str] = "accuracy"
    COLUMN_ORDER: ClassVar[tuple[str, ...]] = (
        *Record.CONTRACT,
        "top1", "top5", "num_images", "source",
    )

    top1: float = col(required=True, minimum=0, maximum=1)
    top5: float = col(required=True, minimum=0, maximum=1)
    num_images: int = col(required=True, minimum=1)
    source: str = col("measured", required=True, enum=["measured", "published"])
    # The speed of the whole pass (decoding included) and of inference alone.
    images_per_second: float | None = col()
    inference_images_per_second: float | None = col()
    seconds_total: float | None = col(csv=False)
    seconds_inference: float | None = col(csv=False)


@dataclass(kw_only=True)
class ServingRecord(Record):
    """One model x device x runtime x precision in one MLPerf scenario, as LoadGen judged it.

    `qps` is the scenario's answer: SingleStream's queries per second (one
    sample each, one after another), Offline's samples per second, and
    Server's sustained Poisson rate, the largest LoadGen judged VALID
    (`proof_qps` the one within 10% above it that was INVALID).
    `loop_overhead_pct` is the serving loop's cost in the same minute:
    Offline's samples per second below, or SingleStream's p90 above, the
    same call timed bare just before and after the run
    (`direct_samples_per_second`, `direct_latency_ms_p90`). `runs`
    keeps every LoadGen run: its settings, verdict, reasons, latencies,
    the batches formed and the machine's state over it.
    """

    KIND: ClassVar[str] = "serving"
    COLUMN_ORDER: ClassVar[tuple[str, ...]] = (
        *Record.CONTRACT,
        "scenario", "status", "loadgen_result", "qps", "samples_per_second", "latency_ms_p50", "latency_ms_p90",
        "latency_ms_p99", "latency_bound_ms", "max_batch_size", "max_queue_delay_ms", "workers", "duration_s",
        "queries", "official_length",
    )

    scenario: str = col(required=True, enum=["SingleStream", "Offline", "Server"])
    status: str = col(required=True, **_STATUS)
    loadgen_result: str | None = col(enum=["VALID", "INVALID", None])
    qps: float | None = col()
    samples_per_second: float | None = col()
    latency_ms_p50: float | None = col()
    latency_ms_p90: float | None = col()
    latency_ms_p99: float | None = col()
    latency_bound_ms: float | None = col()  # Server: the bound on its p99
    latency_bound_rule: str | None = col()  # where the bound came from
    max_batch_size: int | None = col()
    max_queue_delay_ms: float | None = col()
    workers: int | None = col()
    duration_s: float | None = col()
    queries: int | None = col()
    official_length: bool = col(False)
    loadgen_runs: int = col(0)  # LoadGen runs behind the row (Server: its search; Offline: 1 to 3)
    direct_samples_per_second: float | None = col()  # Offline, SingleStream: the call timed bare beside the run
    direct_latency_ms_p90: float | None = col()
    loop_overhead_pct: float | None = col()  # what the serving loop cost against that bare call
    proof_qps: float | None = col()  # Server: the rate above `qps` that was INVALID
    search: str | None = col()  # Server: why the search stopped; Offline: why it was asked twice
    reasons: str | None = col()  # why LoadGen said INVALID, in its words
    threads: int | None = col()
    omp_wait_policy: str | None = col()  # OMP_WAIT_POLICY as the serving process ran with it
    disturbance: str | None = col()  # why the row is noisy
    error: str | None = col()
    runs: list = extra(list)
