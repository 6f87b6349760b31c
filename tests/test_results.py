import json
import math

import pytest

from dlmark.results import records, tables
from dlmark.results.records import AccuracyRecord, MaxBatchRecord, ThroughputRecord

COMMON = {c: "x" for c in records.Record.CONTRACT}


def record(**changes) -> ThroughputRecord:
    fields = dict(COMMON, batch_size=2, status="ok", throughput=10.0, iterations=5, peak_memory_mb=100.0)
    fields.update(changes)
    return ThroughputRecord(**fields)


def test_json_is_written_whole_and_nan_becomes_null(tmp_path):
    path = tmp_path / "a" / "b.json"
    tables.write_json(path, record(throughput=math.nan))
    assert json.loads(path.read_text())["throughput"] is None
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temp file left


def test_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(TypeError):
        tables.write_json(path, {"not serialisable": object()})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "bs1.json"
    path.write_text('{"model": "resnet')
    with pytest.raises(tables.ResultFileError, match="bs1.json.*Delete it and rerun"):
        tables.read_record(path)


def test_foreign_json_is_rejected(tmp_path):
    path = tmp_path / "bs1.json"
    path.write_text(json.dumps({"hello": 1, "schema_version": records.SCHEMA_VERSION}))
    with pytest.raises(tables.ResultFileError, match="not a dlmark throughput record"):
        tables.read_record(path)


def test_a_raw_file_of_the_old_schema_is_refused_with_the_fix(tmp_path):
    # Version 1 (one process per point, no interference, no noisy status).
    old = dict(COMMON, schema_version=1, batch_size=2, status="ok", throughput=10.0, latency_ms_mean=200.0,
               iterations=5, peak_memory_mb=100.0, gflops_per_image=0.5, measure_seconds=1.0,
               latencies_ms=[200.0] * 5)
    path = tmp_path / "bs2.json"
    path.write_text(json.dumps(old))
    with pytest.raises(tables.ResultFileError, match=r"record schema 1, this one reads 3.*measure it again"):
        tables.read_record(path)


def test_records_of_every_kind_round_trip_through_their_schema(tmp_path):
    for kind, fields in [
        (ThroughputRecord, dict(batch_size=1, status="noisy", throughput=3.0, peak_memory_mb=9.0,
                                processes=2, cpu_share=0.6, interference=0.4, disturbance="busy")),
        (MaxBatchRecord, dict(max_batch_size=8, memory_limit_mb=640.0, memory_at_max_mb=600.0, trials=4)),
        (AccuracyRecord, dict(top1=0.7, top5=0.9, num_images=50)),
    ]:
        path = tmp_path / f"{kind.KIND}.json"
        tables.write_json(path, kind(**COMMON, **fields, settings={"a": 1}))
        data = tables.read_record(path, kind)
        assert data["settings_hash"] and data["schema_version"] == records.SCHEMA_VERSION
        assert set(kind.columns()) <= set(data)


def test_a_failed_point_is_a_complete_record_of_nulls():
    failed = ThroughputRecord(**COMMON, batch_size=4, status="error", error="crashed", throughput=None,
                              peak_memory_mb=None)
    data = ThroughputRecord.validate(failed.to_dict())
    assert data["throughput"] is None and data["iterations"] == 0 and data["processes"] == 0


def test_the_schema_refuses_fields_the_class_does_not_have():
    data = record().to_dict()
    data["throughput_typo"] = 1.0
    with pytest.raises(tables.ResultFileError, match="throughput_typo"):
        ThroughputRecord.validate(data)


def test_columns_come_from_the_class_contract_first():
    columns = ThroughputRecord.columns()
    assert columns[: len(records.Record.CONTRACT)] == list(records.Record.CONTRACT)
    contract = ["batch_size", "status", "throughput", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90",
                "latency_ms_p99", "throughput_ci95_low", "throughput_ci95_high", "iterations",
                "measure_seconds", "peak_memory_mb", "gflops_per_image", "processes", "cpu_share",
                "interference"]
    assert columns[len(records.Record.CONTRACT): len(records.Record.CONTRACT) + len(contract)] == contract
    assert columns[-3:] == ["error", "settings_hash", "git_commit"]
    assert "process_results" not in columns and "host" not in columns


def test_table_has_the_contract_columns_in_order(tmp_path):
    paths = []
    for batch in (4, 1, 2):
        path = tmp_path / f"bs{batch}.json"
        tables.write_json(path, record(batch_size=batch))
        paths.append(path)
    frame = tables.throughput_table(paths)
    assert list(frame.columns) == tables.THROUGHPUT_COLUMNS
    assert list(frame["batch_size"]) == [1, 2, 4]


def test_a_process_result_is_frozen_and_reads_back_from_its_flat_raw_form(tmp_path):
    from dataclasses import FrozenInstanceError

    from dlmark.measure import timing

    made = records.ProcessResult(
        summary=timing.summarize([0.010, 0.011, 0.012], 2, 0.05), block_ms=[10.0, 12.0],
        interference={"disturbed": None, "cpu_share": 0.99}, memory_bandwidth_gbs=9.5, process_peak_mb=321.0,
        launcher="forked", session="abc", generation=1, began_at=1.0, process_seconds=2.5,
    )
    with pytest.raises(FrozenInstanceError):
        made.generation = 2
    tables.write_json(tmp_path / "bs2.json", record(process_results=[made]))
    raw = tables.read_record(tmp_path / "bs2.json")["process_results"][0]
    # One flat object in the raw file: the summary's fields beside the process's own.
    assert raw["throughput"] == pytest.approx(made.summary.throughput) and raw["launcher"] == "forked"
    assert "summary" not in raw
    assert records.ProcessResult.from_dict(raw) == made
