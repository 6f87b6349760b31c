"""Figures treat untrusted rows as untrusted."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from dlmark import plotting  # noqa: E402
from dlmark.records import ThroughputRecord  # noqa: E402


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


def test_speedups_use_trusted_rows_only():
    frame = rows()
    chosen = plotting.pick_batch(frame, batch_size=2)
    assert set(chosen["batch_size"]) == {1}  # batch 2 is noisy: the largest trusted below it
