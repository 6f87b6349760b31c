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

from dlmark import hardware, provenance
from dlmark.measure import loadgen
from dlmark.results.records import (
    SCHEMA_VERSION,
    AccuracyRecord,
    MaxBatchRecord,
    Record,
    ResultFileError,  # noqa: F401  (readers catch it from here)
    ServingRecord,
    ThroughputRecord,
)
from dlmark.results.status import ERROR, NOISY, TRUSTED

if TYPE_CHECKING:  # pandas is imported where tables are made: job scripts need not pay for it
    import pandas as pd

# The shapes of the records and their tables live in dlmark.results.records.
THROUGHPUT_COLUMNS = ThroughputRecord.columns()
MAX_BATCH_COLUMNS = MaxBatchRecord.columns()
ACCURACY_COLUMNS = AccuracyRecord.columns()
SERVING_COLUMNS = ServingRecord.columns()


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


def write_json(path: str | Path, record: Record | dict[str, Any]) -> None:
    """Write a record whole; one with `settings` is stamped with their hash."""
    if isinstance(record, Record):
        record = record.to_dict()
    elif "settings" in record:
        record = {**record, "settings_hash": provenance.settings_hash(record["settings"])}
    _atomic_write(path, lambda f: json.dump(_clean(record), f, indent=1, allow_nan=False))


def write_csv(path: str | Path, frame: "pd.DataFrame") -> None:
    _atomic_write(path, lambda f: frame.to_csv(f, index=False))


def write_rounds(path: str | Path, records: list[ThroughputRecord]) -> None:
    """A model's points on one device, measured together (`benchmark.run_rounds`), in one file."""
    write_json(path, {"kind": "rounds", "schema_version": SCHEMA_VERSION, "points": [r.to_dict() for r in records]})


def write_point(rounds_path: str | Path, path: str | Path, runtime: str, precision: str, batch_size: int) -> None:
    """Write one point's own result file from its model's rounds file."""
    try:
        with open(rounds_path, encoding="utf-8") as f:
            data = json.load(f)
        points = data["points"] if data.get("schema_version") == SCHEMA_VERSION else None
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ResultFileError(
            f"cannot read rounds file {rounds_path}: {exc}. Delete it and rerun the workflow to measure it again."
        ) from exc
    if points is None:
        raise ResultFileError(
            f"{rounds_path} was written by another dlmark version. Delete it and rerun the workflow to measure it again."
        )
    for point in points:
        if (point["runtime"], point["precision"], point["batch_size"]) == (runtime, precision, batch_size):
            write_json(path, ThroughputRecord.validate(point, f"a point of {rounds_path}"))
            return
    raise ResultFileError(
        f"{rounds_path} has no point {runtime}/{precision} at batch {batch_size}: it was measured for "
        "another config. Rerun with --forcerun throughput to measure the model again."
    )


def read_record(path: str | Path, kind: type[Record] = ThroughputRecord) -> dict[str, Any]:
    """A raw result file of `kind`, checked (version, schema), or a ResultFileError."""
    return kind.read(path)


def table(records: Iterable[dict[str, Any]], columns: list[str], sort: bool = True) -> "pd.DataFrame":
    """Tidy table with the contract's columns first, sorted for stable diffs (else in the records' order)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(list(records))
    for column in columns:
        if column not in frame:
            frame[column] = None
    frame = frame[columns]
    if not sort:
        return frame
    keys = [c for c in ("machine", "device", "runtime", "precision", "model", "batch_size") if c in columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def throughput_table(paths: Iterable[str | Path]) -> "pd.DataFrame":
    """The rows, their intervals widened by their machine's drift (see `dlmark.measure.drift`)."""
    from dlmark.measure import drift

    return drift.with_machine_drift(table((read_record(p) for p in paths), THROUGHPUT_COLUMNS))


def comparison_tables(paths: Iterable[str | Path], throughput: "pd.DataFrame") -> dict[str, "pd.DataFrame"]:
    """Speed-ups and curve shapes from paired rounds (`dlmark.results.rounds`), trusted rows only.

    `throughput` is the table made from the same files: a point's status is
    the table's (drift can make an ok file noisy), and only ok points pair.
    """
    from dlmark.results import rounds
    from dlmark.runtimes import REFERENCE

    keys = ["machine", "device", "runtime", "precision", "model", "batch_size"]
    trusted = {tuple(row) for row in throughput.loc[throughput["status"].isin(TRUSTED), keys].itertuples(index=False)}
    records = [r for r in (read_record(p) for p in paths) if tuple(r[k] for k in keys) in trusted]
    columns = rounds.PairedRatio.columns()
    return {
        "speedup": table((vars(r) for r in rounds.speedups(records, REFERENCE)), columns),
        "scaling": table((vars(r) for r in rounds.scaling(records)), columns),
    }


def max_batch_table(paths: Iterable[str | Path]) -> "pd.DataFrame":
    return table((read_record(p, MaxBatchRecord) for p in paths), MAX_BATCH_COLUMNS)


def serving_table(paths: Iterable[str | Path]) -> "pd.DataFrame":
    frame = table((read_record(p, ServingRecord) for p in paths), SERVING_COLUMNS, sort=False)
    order = {"SingleStream": 0, "Offline": 1, "Server": 2}
    keys = ["machine", "device", "runtime", "precision", "model"]
    frame = frame.assign(_order=frame["scenario"].map(order)).sort_values([*keys, "_order"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def serving_runs(paths: Iterable[str | Path]) -> "pd.DataFrame":
    """Every Server run of every serving record, one row each: the latency-versus-load curve's points."""
    import pandas as pd

    rows = []
    for path in paths:
        record = read_record(path, ServingRecord)
        if record["scenario"] != "Server":
            continue
        for run in record["runs"]:
            rows.append({
                **{k: record[k] for k in ("machine", "device", "runtime", "precision", "model")},
                "offered_qps": run["settings"]["target_qps"],
                "latency_ms_p50": run["latency_ms"].get("p50"),
                "latency_ms_p99": run["latency_ms"].get("p99"),
                "validity": run["validity"],
                # INVALID for its latency, or only because early stopping could not yet vouch for it
                "latency_met": not loadgen.over_the_bound(run.get("reasons") or []),
                "latency_bound_ms": record["latency_bound_ms"],
                "sustained_qps": record["qps"] if record["status"] in TRUSTED else None,
            })
    return pd.DataFrame(rows, columns=[
        "machine", "device", "runtime", "precision", "model", "offered_qps", "latency_ms_p50", "latency_ms_p99",
        "validity", "latency_met", "latency_bound_ms", "sustained_qps",
    ])


# The model zoo's published figures are over the whole ImageNet validation set.
IMAGENET_VAL_IMAGES = 50000


def published_accuracy(models: Iterable[str]) -> "pd.DataFrame":
    """Published ImageNet accuracies of `models` as accuracy rows (source=published)."""
    from dlmark import models as zoo

    rows = []
    for name in models:
        info = zoo.model_info(name)
        record = AccuracyRecord(
            model=name, family=info.family, device="any", device_name="", machine="published", runtime="mxnet",
            precision="float32", software="mxnet model zoo", top1=info.top1, top5=info.top5,
            num_images=IMAGENET_VAL_IMAGES, source="published",
        )
        rows.append(record.to_dict())
    return table(rows, ACCURACY_COLUMNS)


def accuracy_table(measured: Iterable[str | Path], models: Iterable[str]) -> "pd.DataFrame":
    """Measured rows, plus published rows for model/runtime/precision not measured."""
    import pandas as pd

    found = table((read_record(p, AccuracyRecord) for p in measured), ACCURACY_COLUMNS)
    published = published_accuracy(models)
    done = set(zip(found["model"], found["runtime"], found["precision"]))
    keep = [
        (m, r, p) not in done
        for m, r, p in zip(published["model"], published["runtime"], published["precision"])
    ]
    return table(pd.concat([found, published[keep]]).to_dict("records"), ACCURACY_COLUMNS)


def raw_points(results_dir: str | Path, statuses: Iterable[str], machine: str | None = None) -> list[Path]:
    """Raw throughput files whose status in the table is one of `statuses` (to measure them again).

    The status is the table's: a point its file calls ok is noisy when the
    machine's drift canary shows it measured on a slowed machine (see
    `dlmark.measure.drift`), which only all of a machine's rows together tell.
    """
    from dlmark.measure import drift

    wanted = set(statuses)
    pattern = f"{machine or '*'}/throughput/**/*.json"
    paths, rows, found = [], [], []
    for path in sorted(Path(results_dir, "raw").glob(pattern)):
        try:
            rows.append(json.loads(path.read_text(encoding="utf-8")))
            paths.append(path)
        except (OSError, json.JSONDecodeError):
            if ERROR in wanted:
                found.append(path)
    if rows:
        judged = drift.with_machine_drift(table(rows, THROUGHPUT_COLUMNS, sort=False))  # in the order of `paths`
        found += [path for path, status in zip(paths, judged["status"]) if status in wanted]
    return sorted(found)


def rounds_file(point: str | Path) -> Path:
    """The rounds file a point's file was written from: the target that measures it again.

    results/raw/<machine>/throughput/<device>/<variant>/<model>/bs<N>.json
    comes from results/raw/<machine>/rounds/<device>/<model>.json.
    """
    point = Path(point)
    model, device, raw_machine = point.parent.name, point.parents[2].name, point.parents[4]
    return raw_machine / "rounds" / device / f"{model}.json"


def rerun_targets(results_dir: str | Path, statuses: Iterable[str], machine: str | None = None) -> list[Path]:
    """The rounds files of the models that have points of these statuses (for --forcerun)."""
    return sorted({rounds_file(p) for p in raw_points(results_dir, statuses, machine)})


def run_summary(results_dir: str | Path, machine: str) -> str | None:
    """A closing line when some points or serving targets are not plain ok: how many, and how to remeasure them."""
    noisy = raw_points(results_dir, [NOISY], machine)
    failed = raw_points(results_dir, [ERROR], machine)
    lines = []
    if noisy:
        lines.append(
            f"dlmark: {len(noisy)} throughput point(s) are noisy: the machine was busy while they were "
            "measured and stayed busy through the retries, or was slowed from outside (its memory "
            "bandwidth canary; see the disturbance column). Their numbers are kept but not trusted "
            "(figures draw them hollow; compare and speed-ups leave them out). On a quiet machine, "
            "measure them again with:\n"
            "  snakemake --cores 1 --resources gpu=1 --forcerun $(dlmark points --status noisy)"
        )
    if failed:
        lines.append(
            f"dlmark: {len(failed)} throughput point(s) failed (status error; see the error column). "
            "After fixing the cause: snakemake --cores 1 --resources gpu=1 "
            "--forcerun $(dlmark points --status error)"
        )
    if unserved := not_served(results_dir, machine):
        lines.append(
            f"dlmark: {len(unserved)} serving target(s) are not ok (see status, reasons and error in "
            "results/serving.csv): " + ", ".join(f"{p.parent.name} {p.stem} {status}" for p, status in unserved)
            + ". To measure them again: snakemake --cores 1 --resources gpu=1 --forcerun "
            + " ".join(str(p) for p, _ in unserved)
        )
    return "\n".join(lines) or None


def not_served(results_dir: str | Path, machine: str) -> list[tuple[Path, str]]:
    """Serving targets whose status is not ok (an unreadable file counts as error), with that status."""
    found = []
    for path in sorted(Path(results_dir, "raw", machine, "serving").glob("**/*.json")):
        try:
            status = json.loads(path.read_text(encoding="utf-8")).get("status", ERROR)
        except (OSError, json.JSONDecodeError):
            status = ERROR
        if status not in TRUSTED:
            found.append((path, status))
    return found


def energy_sources(devices: list[str]) -> dict[str, str]:
    """Where each device's energy columns come from, or why they are empty (said once, here, not per row).

    Read where the run was started; on a cluster the compute nodes' counters may differ (each row's
    raw file names the source its processes read).
    """
    from dlmark.measure import energy

    found = {}
    for device in devices:
        counter, why = energy.meter(hardware.device_index(device))
        found[device] = f"measured: {counter.source}" if counter is not None else f"not measured: {why}"
    return found


def environment_summary(
    machine: str, devices: list[str], threads: int, config: dict[str, Any], tables: dict[str, Path | str]
) -> dict[str, Any]:
    """What a run ran on and what it produced, for results/environment.json.

    The tables are summarised (rows, machines, statuses) so a reader sees at
    once whether results from other machines were merged in and how many
    points failed, without opening them.
    """
    import datetime as dt

    import pandas as pd

    frames = {name: pd.read_csv(path) for name, path in tables.items()}
    return {
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "machine": machine,
        "host": hardware.host_facts(),
        "devices": {d: hardware.device_name(d) for d in devices},
        "energy": energy_sources(devices),
        "cpu_threads": threads,
        "workflow": provenance.workflow_version(),
        "config": config,
        "config_hash": provenance.settings_hash(config),
        "tables": {
            name: {
                "rows": len(frame),
                "machines": sorted(frame["machine"].astype(str).unique()),
                "status": frame["status"].value_counts().to_dict() if "status" in frame else None,
            }
            for name, frame in frames.items()
        },
    }
