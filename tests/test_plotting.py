"""Figures treat untrusted rows as untrusted."""

import itertools
import math
import subprocess
import sys

import matplotlib
import pandas as pd
import pytest

from dlmark import models
from dlmark.measure import timing
from dlmark.results import plotting, rounds, tables
from dlmark.results.records import MaxBatchRecord, ProcessResult, ThroughputRecord


def rows():
    common = dict(family="ResNet", device="cpu", device_name="CPU", machine="m", software="mxnet 1.9.1")
    out = []
    for runtime, precision, factor in [("mxnet", "float32", 1.0), ("onnxruntime", "float32", 2.0)]:
        for batch, status in [(1, "ok"), (2, "noisy"), (4, "ok")]:
            throughput = 10.0 * batch * factor
            out.append(dict(common, model="resnet18_v1", runtime=runtime, precision=precision, batch_size=batch,
                            status=status, throughput=throughput, throughput_ci95_low=throughput * 0.9,
                            throughput_ci95_high=throughput * 1.1, peak_memory_mb=100.0 + batch))
    frame = pd.DataFrame(out)
    for column in ThroughputRecord.columns():
        if column not in frame:
            frame[column] = None
    return frame


def test_noisy_points_are_drawn_apart_from_the_line():
    fig = plotting.throughput_vs_batch_size(rows())
    ax = fig.axes[0]
    line = next(l for l in ax.get_lines() if l.get_label() == "cpu mxnet/float32")
    assert list(line.get_xdata()) == [1, 4]  # the noisy batch 2 is not on the line
    labels = [h.get_label() for h in ax.collections]
    assert any(label.startswith("noisy") for label in labels)


def test_a_model_measured_in_one_variant_has_its_bars_centred_and_colours_match_across_panels():
    """Bars dodge within a panel only: resnet18_v1 has two variants, squeezenet1.1 (as in the default run) one."""
    one = rows()
    one = one[one["runtime"] == "mxnet"].assign(model="squeezenet1.1", family="SqueezeNet")
    fig = plotting.throughput_vs_device(pd.concat([rows(), one]))
    both, alone = (ax for ax in fig.axes if ax.get_visible() and ax.get_title())
    assert (both.get_title(), alone.get_title()) == ("resnet18_v1", "squeezenet1.1")
    centres = sorted(bar.get_x() + bar.get_width() / 2 for bar in alone.patches if bar.get_height() > 0)
    assert centres == pytest.approx([0, 1])  # batch 1 and 4 (2 is noisy): on their ticks, not beside them
    reference = {tuple(bar.get_facecolor()) for bar in alone.patches if bar.get_height() > 0}
    assert reference < {tuple(bar.get_facecolor()) for bar in both.patches if bar.get_height() > 0}


def test_energy_draws_images_per_joule_per_gpu_and_says_why_a_gpu_has_none(tmp_path):
    measured = rows().assign(device="gpu0", device_name="NVIDIA H200")
    measured["energy_j_per_image"] = 0.5 / measured["batch_size"]  # batching halves the energy of an image
    silent = rows().assign(device="gpu1", device_name="NVIDIA H200", energy_note="energy not given: 0.50 s of timed "
                           "calls is shorter than the 1 s the nvml counter's resolution needs")
    fig = plotting.energy_vs_throughput(pd.concat([measured, silent, rows()]))  # the CPU rows are left out
    drawn, empty = (ax for ax in fig.axes if ax.get_title())
    assert drawn.get_title() == "gpu0: NVIDIA H200" and empty.get_title() == "gpu1: NVIDIA H200"
    line = next(l for l in drawn.get_lines() if l.get_label() == "gpu0 mxnet/float32")
    assert list(line.get_ydata()) == [2.0, 8.0]  # ok rows only (batch 2 is noisy): 1 / (0.5 / batch)
    assert "0.50 s of timed calls" in " ".join(t.get_text() for t in empty.texts).replace("\n", " ")
    plotting.save(fig, tmp_path / "energy.png")


def as_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """The speed-up table a run with these rows makes, from the rows alone (no rounds): trusted pairs only."""
    ok = frame[frame["status"] == "ok"]
    is_reference = (ok["runtime"] == "mxnet") & (ok["precision"] == "float32")
    both = ok[~is_reference].merge(ok[is_reference], on=["machine", "device", "model", "batch_size"],
                                   suffixes=("", "_ref"))
    return both.assign(
        against_runtime="mxnet", against_precision="float32", against_batch_size=both["batch_size"],
        ratio=both["throughput"] / both["throughput_ref"],
        ratio_ci95_low=both["throughput_ci95_low"] / both["throughput_ci95_high_ref"],
        ratio_ci95_high=both["throughput_ci95_high"] / both["throughput_ci95_low_ref"], processes=3,
    )[rounds.PairedRatio.columns()]


def test_speedups_use_trusted_rows_only():
    chosen = plotting.pick_speedups(as_speedups(rows()), batch_size=2)
    assert set(chosen["batch_size"]) == {1}  # batch 2 is noisy: the largest trusted below it


def test_speedup_figure_says_which_device_lacks_the_reference():
    # A Hopper GPU measures torch but never MXNet: no reference there.
    frame = rows().assign(device="gpu0", runtime="torch")
    fig = plotting.speedup(as_speedups(frame), frame, batch_size=4)
    (text,) = fig.axes[0].texts
    assert text.get_text().replace("\n", " ") == (
        "no speed-ups to draw: mxnet/float32, the reference, was not measured on gpu0")
    assert max(len(line) for line in text.get_text().splitlines()) <= 60  # wrapped, not cut off


def process_result(generation, block_ms, batch):
    """One timing process of a job whose every call took its block's mean latency."""
    latencies = [ms / 1e3 for ms in block_ms for _ in range(3)]
    return ProcessResult(
        summary=timing.summarize(latencies, batch, 0.02), block_ms=block_ms, interference={"disturbed": None},
        memory_bandwidth_gbs=None, process_peak_mb=None, launcher="forked", session="job", generation=generation,
        began_at=0.0, process_seconds=1.0,
    )


def point_record(runtime, precision, batch, status, speed, drift_by_round):
    """A raw point timed in three processes of one job, whose blocks the machine's drift slowed alike."""
    blocks = [1e3 * batch / (speed * d) for d in drift_by_round] if status == "ok" else []
    processes = [process_result(g, blocks, batch) for g in range(3)] if blocks else []
    throughput = batch / (sum(blocks) / len(blocks) / 1e3) if processes else None
    return ThroughputRecord(
        model="resnet18_v1", family="ResNet", device="cpu", device_name="CPU", machine="m", runtime=runtime,
        precision=precision, software="mxnet 1.9.1", batch_size=batch, status=status, throughput=throughput,
        throughput_ci95_low=throughput and throughput * 0.8, throughput_ci95_high=throughput and throughput * 1.2,
        peak_memory_mb=None, process_results=processes)


def test_speedups_of_the_default_run_shape_come_from_the_largest_batch_where_both_are_ok(tmp_path):
    """The reference is out of memory at the comparison batch (32), the variants are not: batch 16 is drawn,
    and the paired blocks cancel a 20% drift that independent intervals would carry into every ratio."""
    drift = (1.0, 0.8, 0.9)
    records = [point_record("mxnet", "float32", 16, "ok", 100.0, drift),
               point_record("mxnet", "float32", 32, "out_of_memory", 0, drift)]
    for runtime, precision, factor in [("onnxruntime", "float32", 1.1), ("mxnet", "int8", 3.0)]:
        records += [point_record(runtime, precision, b, "ok", 100.0 * factor, drift) for b in (16, 32)]
    paths = []
    for i, record in enumerate(records):
        tables.write_json(tmp_path / f"{i}.json", record)
        paths.append(tmp_path / f"{i}.json")
    throughput = tables.table((r.to_dict() for r in records), tables.THROUGHPUT_COLUMNS)
    speedups = tables.comparison_tables(paths, throughput)["speedup"]
    assert sorted(speedups["batch_size"]) == [16, 16]  # no reference at 32: nothing to pair there
    by_variant = speedups.set_index("precision")
    assert by_variant.loc["int8", "ratio"] == pytest.approx(3.0)
    assert by_variant.loc["int8", "ratio_ci95_high"] / by_variant.loc["int8", "ratio_ci95_low"] == pytest.approx(1.0)
    fig = plotting.speedup(speedups, throughput, batch_size=32)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "3.00x (batch 16)" in texts and "1.10x (batch 16)" in texts
    assert "(here 16)" in fig.axes[0].get_title()


# The whole zoo, as a full run fills the tables: 34 models, four variants
# (one on a second device), throughput from each model's GFLOPs so the
# dense corner of large accurate models is as crowded as in a real run
# (resnet34_v1 and _v2 land on the same point, vgg11 next to vgg11_bn).
VARIANTS = [("cpu", "mxnet", "float32", 1.0), ("cpu", "onnxruntime", "float32", 1.2),
            ("cpu", "mxnet", "int8", 1.9), ("gpu0", "mxnet", "float32", 30.0)]


def zoo_throughput(batches=(1, 2, 4, 8, 16)):
    out = []
    for name, info in models.zoo().items():
        per_image = 120.0 / models.gflops_per_image(name)
        for device, runtime, precision, factor in VARIANTS:
            for batch in batches:
                fits = batch < 16 or not name.startswith("vgg")
                speed = per_image * factor * (1 + 0.2 * math.log2(batch))
                out.append(dict(model=name, family=info.family, device=device, runtime=runtime,
                                precision=precision, device_name="CPU" if device == "cpu" else "GPU",
                                machine="m", batch_size=batch, status="ok" if fits else "out_of_memory",
                                throughput=speed if fits else None, throughput_ci95_low=speed * 0.97,
                                throughput_ci95_high=speed * 1.03, peak_memory_mb=150 + 20 * batch))
    return frame_of(out, ThroughputRecord)


def zoo_max_batch():
    out = [dict(model=name, family=info.family, device=device, runtime=runtime, precision=precision,
                device_name="CPU", machine="m", status="ok", memory_limit_mb=640.0,
                max_batch_size=int(600 / models.gflops_per_image(name)) % 512, reached_upper_bound=False)
           for name, info in models.zoo().items() for device, runtime, precision, _ in VARIANTS]
    return frame_of(out, MaxBatchRecord)


def frame_of(rows, record):
    frame = pd.DataFrame(rows)
    for column in record.columns():
        if column not in frame:
            frame[column] = None
    return frame


def text_boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def overlapping(boxes):
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def test_importing_plotting_changes_no_matplotlib_setting():
    # _get reads a setting without resolving the backend (plain reads would pick one).
    code = (
        "import matplotlib; rc = matplotlib.rcParams; settings = lambda: {k: rc._get(k) for k in rc}; "
        "before = settings(); import dlmark.results.plotting; after = settings(); "
        "assert before == after, [k for k in before if before[k] != after[k]]; "
        "assert rc._get('backend') is matplotlib.rcsetup._auto_backend_sentinel"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_drawing_a_figure_leaves_the_callers_settings_alone():
    before = dict(matplotlib.rcParams)
    fig = plotting.memory_vs_batch_size(rows())
    assert fig.axes[0].get_facecolor()[:3] == pytest.approx((1, 1, 1))  # the theme applied inside
    assert dict(matplotlib.rcParams) == before


def test_families_stay_on_one_row_where_they_fit():
    families = {"A": ["a1"], "B": ["b1", "b2", "b3", "b4"], "C": ["c1", "c2", "c3", "c4", "c5"], "D": ["d1"]}
    assert plotting.panel_rows(families, 5) == [
        ["a1", "b1", "b2", "b3", "b4"], ["c1", "c2", "c3", "c4", "c5"], ["d1"]
    ]
    assert plotting.panel_rows({"A": ["a1"], "B": ["b1"], "C": ["c1"], "D": ["d1"]}, 3) == [
        ["a1", "b1", "c1"], ["d1"]
    ]


def test_whole_zoo_grid_keeps_its_title_and_legend_off_the_panels():
    fig = plotting.throughput_vs_batch_size(zoo_throughput())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len({ax.get_title() for ax in panels if ax.get_title()}) == len(models.zoo())
    title = fig._suptitle.get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in panels:
        assert not title.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
        assert not legend.overlaps(ax.get_tightbbox(renderer)), ax.get_title()
    assert not overlapping(text_boxes(fig, [ax.title for ax in panels if ax.get_title()]))


def test_whole_zoo_accuracy_names_every_model_once_without_overlap():
    accuracy = tables.published_accuracy(list(models.zoo()))
    measured = pd.concat([accuracy.assign(runtime=r, precision=p, source="measured")
                          for _, r, p, _ in VARIANTS[:3]])
    for table in (accuracy, measured):
        fig = plotting.throughput_vs_accuracy(zoo_throughput(), table, batch_size=8)
        fig.canvas.draw()
        ax = fig.axes[0]
        names = [t for t in ax.texts if t.get_text() in models.zoo()]
        # Two devices: each model is named once per device it ran on.
        assert sorted(t.get_text() for t in names) == sorted(list(models.zoo()) * 2)
        assert not overlapping(text_boxes(fig, names))


@pytest.mark.parametrize("draw", [
    lambda: plotting.max_batch_size(zoo_max_batch()),
    lambda: plotting.speedup(as_speedups(zoo_throughput()), zoo_throughput(), batch_size=8),
])
def test_whole_zoo_rows_of_models_are_legible(draw):
    fig = draw()
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == len(models.zoo())
    assert not overlapping(text_boxes(fig, labels))
    assert fig.get_figwidth() <= 12  # grows down the page, not sideways


def test_an_interval_without_upper_bound_is_an_arrow_to_the_edge():
    frame = zoo_throughput(batches=(1,))
    unbounded = (frame["model"] == "resnet18_v1") & (frame["precision"] == "int8")
    frame.loc[unbounded, "throughput_ci95_high"] = float("nan")
    speedups = as_speedups(frame)
    speedups.loc[speedups["ratio_ci95_high"].isna(), "ratio_ci95_high"] = math.inf  # one round: no upper bound
    fig = plotting.speedup(speedups, frame, batch_size=1)
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None and not t.get_text()]
    assert len(arrows) == 1
    assert fig.axes[0].get_xscale() == "log"


def test_a_run_invalid_only_for_early_stopping_is_drawn_apart_from_one_over_the_bound():
    """Both are INVALID; one had its p99 within the bound, and must not read as a latency over it."""
    common = dict(machine="m", device="cpu", runtime="mxnet", precision="float32", model="mobilenet1.0",
                  latency_bound_ms=70.0, sustained_qps=30.0)
    runs = pd.DataFrame([
        dict(common, offered_qps=30.0, latency_ms_p50=15.0, latency_ms_p99=50.0, validity="VALID", latency_met=True),
        dict(common, offered_qps=33.0, latency_ms_p50=16.0, latency_ms_p99=48.0, validity="INVALID", latency_met=True),
        dict(common, offered_qps=55.0, latency_ms_p50=21.0, latency_ms_p99=80.0, validity="INVALID",
             latency_met=False),
    ])
    table = pd.DataFrame([dict(common, scenario="Offline", status="ok", qps=110.0, device_name="CPU")])
    fig = plotting.latency_vs_load(runs, table)
    ax = fig.axes[0]
    hollow = {}
    for collection in ax.collections:
        offsets = [tuple(xy) for xy in collection.get_offsets()]
        if offsets and collection.get_facecolor()[0][:3].tolist() == [1.0, 1.0, 1.0]:
            hollow[collection.get_paths()[0].vertices.shape[0]] = offsets
    assert sorted(hollow.values()) == [[(33.0, 48.0)], [(55.0, 80.0)]]  # two markers, one run each
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "INVALID: p99 over the bound" in labels
    assert any(label.startswith("INVALID: too few queries") for label in labels)


def test_a_panel_of_noisy_points_alone_keeps_them_inside_the_frame():
    """In a default run every mobilenet1.0 point came out noisy: its hollow points must not sit on the top edge."""
    frame = rows()
    frame["status"] = "noisy"
    ax = plotting.throughput_vs_batch_size(frame).axes[0]
    top = frame["throughput"].max()
    assert ax.get_ylim()[1] >= top * 1.05
    assert ax.get_ylim()[0] == 0


def test_a_model_without_a_trusted_row_is_named_not_dropped_silently():
    """Every point of one model noisy: the accuracy and device figures say it was measured and why it is missing."""
    frame = rows()
    noisy = rows().assign(model="mobilenet1.0", family="MobileNet", status="noisy")
    both = pd.concat([frame, noisy], ignore_index=True)
    accuracy = tables.published_accuracy(["resnet18_v1", "mobilenet1.0"])
    title = plotting.throughput_vs_accuracy(both, accuracy, batch_size=4).axes[0].get_title()
    assert "not drawn, no trusted row: mobilenet1.0 (noisy)" in title
    assert "resnet18_v1" not in title.split("not drawn")[1]
    assert "not drawn, no trusted row: mobilenet1.0 (noisy)" in plotting.throughput_vs_device(both)._suptitle.get_text()
    assert "not drawn" not in plotting.throughput_vs_device(frame)._suptitle.get_text()
