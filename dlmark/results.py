"""Result files: written whole or not at all, read back with clear errors.

Snakemake decides what to rerun from which outputs exist, so a result file
that exists must be complete: every write goes to a temporary name in the
same folder and is renamed into place only once flushed to disk.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import jsonschema

from dlmark import provenance
from dlmark.runner import STATUSES

if TYPE_CHECKING:  # pandas is imported where tables are made: job scripts need not pay for it
    import pandas as pd

COMMON_COLUMNS = [
    "model",
    "family",
    "device",
    "device_name",
    "machine",
    "runtime",
    "precision",
    "software",
]

THROUGHPUT_COLUMNS = COMMON_COLUMNS + [
    "batch_size",
    "status",
    "throughput",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "throughput_ci95_low",
    "throughput_ci95_high",
    "iterations",
    "measure_seconds",
    "peak_memory_mb",
    "gflops_per_image",
    # Beyond the contract: what a reader needs to judge a row.
    "baseline_memory_mb",
    "rel_ci95",
    "converged",
    "threads",
    "top1_agreement",
    "gate_max_abs_diff",
    "error",
    "settings_hash",
    "git_commit",
]

MAX_BATCH_COLUMNS = COMMON_COLUMNS + [
    "max_batch_size",
    "memory_limit_mb",
    "memory_at_max_mb",
    "trials",
    # Beyond the contract:
    "status",
    "reached_upper_bound",
    "step",
    "search_seconds",
    "error",
    "settings_hash",
    "git_commit",
]

ACCURACY_COLUMNS = COMMON_COLUMNS + [
    "top1",
    "top5",
    "num_images",
    "source",
    # Beyond the contract: speed of the whole pass (decode included) and of inference alone.
    "images_per_second",
    "inference_images_per_second",
    "settings_hash",
    "git_commit",
]

_NUMBER_OR_NULL = {"type": ["number", "null"]}

THROUGHPUT_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": THROUGHPUT_COLUMNS[: THROUGHPUT_COLUMNS.index("gflops_per_image") + 1],
    "properties": {
        **{c: {"type": "string"} for c in COMMON_COLUMNS},
        "batch_size": {"type": "integer", "minimum": 1},
        "status": {"enum": list(STATUSES)},
        "throughput": _NUMBER_OR_NULL,
        "iterations": {"type": "integer", "minimum": 0},
        "peak_memory_mb": _NUMBER_OR_NULL,
    },
}


MAX_BATCH_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": MAX_BATCH_COLUMNS[: MAX_BATCH_COLUMNS.index("trials") + 1] + ["status"],
    "properties": {
        **{c: {"type": "string"} for c in COMMON_COLUMNS},
        "max_batch_size": {"type": "integer", "minimum": 0},
        "memory_limit_mb": {"type": "number"},
        "memory_at_max_mb": _NUMBER_OR_NULL,
        "trials": {"type": "integer", "minimum": 0},
        "status": {"enum": list(STATUSES)},
    },
}


ACCURACY_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ACCURACY_COLUMNS[: ACCURACY_COLUMNS.index("source") + 1],
    "properties": {
        **{c: {"type": "string"} for c in COMMON_COLUMNS},
        "top1": {"type": "number", "minimum": 0, "maximum": 1},
        "top5": {"type": "number", "minimum": 0, "maximum": 1},
        "num_images": {"type": "integer", "minimum": 1},
        "source": {"enum": ["measured", "published"]},
    },
}


class ResultFileError(ValueError):
    """A result file that cannot be used; the message names it and the fix."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _atomic_write(path: str | Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, record: dict[str, Any]) -> None:
    """Write a record whole; one with `settings` is stamped with their hash."""
    if "settings" in record:
        record = {**record, "settings_hash": provenance.settings_hash(record["settings"])}
    _atomic_write(path, lambda f: json.dump(_clean(record), f, indent=1, allow_nan=False))


def write_csv(path: str | Path, frame: "pd.DataFrame") -> None:
    _atomic_write(path, lambda f: frame.to_csv(f, index=False))


def read_record(path: str | Path, schema: dict[str, Any] = THROUGHPUT_RECORD_SCHEMA) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultFileError(
            f"cannot read result file {path}: {exc}. Delete it and rerun the workflow to measure it again."
        ) from exc
    try:
        jsonschema.validate(record, schema)
    except jsonschema.ValidationError as exc:
        raise ResultFileError(
            f"result file {path} is not a dlmark result ({exc.message}). "
            "Delete it and rerun the workflow to measure it again."
        ) from exc
    return record


def table(records: Iterable[dict[str, Any]], columns: list[str]) -> "pd.DataFrame":
    """Tidy table with the contract's columns first, sorted for stable diffs."""
    import pandas as pd

    frame = pd.DataFrame.from_records(list(records))
    for column in columns:
        if column not in frame:
            frame[column] = None
    frame = frame[columns]
    keys = [c for c in ("machine", "device", "runtime", "precision", "model", "batch_size") if c in columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def throughput_table(paths: Iterable[str | Path]) -> "pd.DataFrame":
    return table((read_record(p) for p in paths), THROUGHPUT_COLUMNS)


def max_batch_table(paths: Iterable[str | Path]) -> "pd.DataFrame":
    return table((read_record(p, MAX_BATCH_RECORD_SCHEMA) for p in paths), MAX_BATCH_COLUMNS)


def published_accuracy(models: Iterable[str]) -> "pd.DataFrame":
    """Published ImageNet accuracies of `models` as accuracy rows (source=published)."""
    from dlmark import models as zoo

    rows = []
    for name in models:
        info = zoo.model_info(name)
        rows.append(
            {
                "model": name,
                "family": info.family,
                "device": "any",
                "device_name": "",
                "machine": "published",
                "runtime": "mxnet",
                "precision": "float32",
                "software": "mxnet model zoo",
                "top1": info.top1,
                "top5": info.top5,
                "num_images": 50000,
                "source": "published",
            }
        )
    return table(rows, ACCURACY_COLUMNS)


def accuracy_table(measured: Iterable[str | Path], models: Iterable[str]) -> "pd.DataFrame":
    """Measured rows, plus published rows for model/runtime/precision not measured."""
    import pandas as pd

    found = table((read_record(p, ACCURACY_RECORD_SCHEMA) for p in measured), ACCURACY_COLUMNS)
    published = published_accuracy(models)
    done = set(zip(found["model"], found["runtime"], found["precision"]))
    keep = [
        (m, r, p) not in done
        for m, r, p in zip(published["model"], published["runtime"], published["precision"])
    ]
    return table(pd.concat([found, published[keep]]).to_dict("records"), ACCURACY_COLUMNS)
