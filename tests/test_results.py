import json
import math

import pytest

from dlmark import results


def record(**changes):
    base = {c: "x" for c in results.COMMON_COLUMNS}
    base.update(batch_size=2, status="ok", throughput=10.0, iterations=5, peak_memory_mb=100.0)
    for column in results.THROUGHPUT_COLUMNS:
        base.setdefault(column, None)
    base.update(changes)
    return base


def test_json_is_written_whole_and_nan_becomes_null(tmp_path):
    path = tmp_path / "a" / "b.json"
    results.write_json(path, record(throughput=math.nan))
    assert json.loads(path.read_text())["throughput"] is None
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temp file left


def test_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(TypeError):
        results.write_json(path, {"not serialisable": object()})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "bs1.json"
    path.write_text('{"model": "resnet')
    with pytest.raises(results.ResultFileError, match="bs1.json.*Delete it and rerun"):
        results.read_record(path)


def test_foreign_json_is_rejected(tmp_path):
    path = tmp_path / "bs1.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(results.ResultFileError, match="not a dlmark result"):
        results.read_record(path)


def test_table_has_the_contract_columns_in_order(tmp_path):
    paths = []
    for batch in (4, 1, 2):
        path = tmp_path / f"bs{batch}.json"
        results.write_json(path, record(batch_size=batch))
        paths.append(path)
    frame = results.throughput_table(paths)
    assert list(frame.columns) == results.THROUGHPUT_COLUMNS
    assert list(frame["batch_size"]) == [1, 2, 4]
