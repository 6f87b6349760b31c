"""Figures drawn from the result tables.

Each function takes a tidy table and returns a matplotlib Figure; saving
is separate so tests can inspect figures. Figures are meant to be read at a
glance and printed: titles say what and where, axes carry units, every
panel names its model.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from dlmark.variants import REFERENCE  # noqa: E402

sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def _series(frame: pd.DataFrame) -> pd.Series:
    """One label per line: device, runtime and precision."""
    return frame["device"] + " " + frame["runtime"] + "/" + frame["precision"]


def _log2_axis(ax: plt.Axes, batches: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _where(frame: pd.DataFrame) -> str:
    hosts = sorted(frame["machine"].astype(str).unique())
    devices = sorted(frame["device_name"].astype(str).unique())
    return f"machine {', '.join(hosts)}: {'; '.join(devices)}"


def throughput_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """A grid with one panel per model: throughput with its 95% CI, memory on a twin axis."""
    frame = frame.assign(series=_series(frame))
    models = list(dict.fromkeys(frame.sort_values(["family", "model"])["model"]))
    series = sorted(frame["series"].unique())
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        rows = frame[frame["model"] == model]
        ok = rows[rows["status"] == "ok"].sort_values("batch_size")
        memory_ax = ax.twinx()
        memory_ax.grid(False)
        for label, part in ok.groupby("series"):
            color = palette[label]
            ax.plot(part["batch_size"], part["throughput"], marker="o", color=color, label=label)
            ax.fill_between(
                part["batch_size"],
                part["throughput_ci95_low"],
                part["throughput_ci95_high"],
                color=color,
                alpha=0.25,
                linewidth=0,
            )
            memory_ax.plot(
                part["batch_size"], part["peak_memory_mb"], linestyle="--", color=color, alpha=0.6, marker="."
            )
        # Noisy points keep their numbers but not the line: the machine was
        # busy while they were measured, so they are drawn apart, hollow.
        for label, part in rows[rows["status"] == "noisy"].groupby("series"):
            ax.scatter(
                part["batch_size"],
                part["throughput"],
                marker="o",
                s=70,
                facecolors="none",
                edgecolors=palette[label],
                linewidths=1.5,
                zorder=4,
                label="noisy: machine busy, not trusted (hollow)",
            )
        failed = rows[~rows["status"].isin(["ok", "noisy"])]
        if not failed.empty:
            ax.scatter(
                failed["batch_size"],
                [0] * len(failed),
                marker="x",
                color="red",
                s=60,
                zorder=5,
                clip_on=False,
                label="out of memory / failed",
            )
        _log2_axis(ax, sorted(rows["batch_size"].unique()))
        ax.set_ylim(bottom=0)
        memory_ax.set_ylim(bottom=0)
        family = rows["family"].iloc[0]
        ax.set_title(f"{model} ({family})", fontweight="bold")
        ax.set_xlabel("batch size")
        ax.set_ylabel("throughput (images/s)")
        memory_ax.set_ylabel("peak memory (MiB)", color="grey")
        memory_ax.tick_params(axis="y", colors="grey")
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    handles.append(plt.Line2D([], [], color="grey", linestyle="--", marker="."))
    labels.append("peak memory (dashed, same colour; right axis)")
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False)
    fig.suptitle(
        f"Inference throughput vs batch size (95% CI shaded)\n{_where(frame)}", fontsize=12
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def memory_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """Peak memory per model against batch size, on one set of log axes.

    Noisy rows count here: a busy neighbour slows a benchmark, it does not
    change the memory it needs.
    """
    ok = frame[frame["status"].isin(["ok", "noisy"])].assign(series=_series(frame))
    fig, ax = plt.subplots(figsize=(8, 5))
    sns.lineplot(
        data=ok.sort_values(["model", "batch_size"]),
        x="batch_size",
        y="peak_memory_mb",
        hue="model",
        style="series" if ok["series"].nunique() > 1 else None,
        marker="o",
        ax=ax,
        palette="tab10" if ok["model"].nunique() <= 10 else "husl",
    )
    _log2_axis(ax, sorted(frame["batch_size"].unique()))
    ax.set_xlabel("batch size")
    ax.set_ylabel("peak memory of the process (MiB)")
    ax.set_title(f"Memory needed for inference vs batch size\n{_where(frame)}")
    ax.legend(title="model", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def max_batch_size(frame: pd.DataFrame) -> Figure:
    """One bar per model (devices side by side), labelled with its value."""
    frame = frame.assign(series=_series(frame)).sort_values(["family", "model"])
    series = sorted(frame["series"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * frame["model"].nunique() * len(series) + 2), 4.8))
    sns.barplot(
        data=frame,
        x="model",
        y="max_batch_size",
        hue="series",
        hue_order=series,
        palette="colorblind",
        ax=ax,
    )
    for container in ax.containers:
        ax.bar_label(container, fmt="%d", padding=2, fontsize=9)
    capped = frame[frame["reached_upper_bound"].astype(bool)]
    note = f"\n(at least: {', '.join(capped['model'])} reached the search's upper bound)" if len(capped) else ""
    limits = "; ".join(
        f"{s}: {lim:,.0f} MiB" for s, lim in frame.groupby("series")["memory_limit_mb"].max().items()
    )
    ax.set_title(f"Largest batch size that fits in memory (limit {limits}){note}\n{_where(frame)}")
    ax.set_xlabel("")
    ax.set_ylabel("largest batch size (images)")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    if len(series) > 1:
        ax.legend(title="device / runtime", frameon=False)
    elif ax.get_legend() is not None:
        ax.get_legend().remove()
    fig.tight_layout()
    return fig


def pick_batch(throughput: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per model and variant, the ok row at `batch_size`, else the largest below it."""
    ok = throughput[(throughput["status"] == "ok") & (throughput["batch_size"] <= batch_size)]
    keys = ["machine", "device", "runtime", "precision", "model"]
    return ok.sort_values("batch_size").groupby(keys, as_index=False).tail(1)


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both x and y (both higher-is-better)."""
    ordered = points.sort_values([x, y], ascending=[False, False])
    best = -float("inf")
    keep = []
    for index, value in ordered[y].items():
        if value > best:
            keep.append(index)
            best = value
    return ordered.loc[keep].sort_values(x)


def throughput_vs_accuracy(throughput: pd.DataFrame, accuracy: pd.DataFrame, batch_size: int) -> Figure:
    """Top-1 against throughput: families coloured, Pareto frontier drawn, every point labelled."""
    speed = pick_batch(throughput, batch_size)
    # Measured accuracy is device independent: one row per model and variant.
    acc = accuracy.sort_values("source").drop_duplicates(["model", "runtime", "precision"])
    points = speed.merge(
        acc[["model", "runtime", "precision", "top1", "top5", "source"]],
        on=["model", "runtime", "precision"],
    )
    points = points.assign(
        top1_pct=points["top1"] * 100,
        series=_series(points),
        memory=points["peak_memory_mb"].round(-1),
    ).rename(columns={"memory": "peak memory (MiB)"})
    fig, ax = plt.subplots(figsize=(10, 6.5))
    if points.empty:
        ax.text(0.5, 0.5, "no model has both a throughput and an accuracy", ha="center", transform=ax.transAxes)
        return fig
    front = pareto_front(points, "throughput", "top1_pct")
    # Between two frontier points, the best accuracy at a throughput is the
    # next faster point's: the staircase steps down on the left.
    ax.step(front["throughput"], front["top1_pct"], where="pre", linestyle="--", color="black",
            linewidth=1, label="Pareto frontier", zorder=1)
    sns.scatterplot(
        data=points,
        x="throughput",
        y="top1_pct",
        hue="family",
        size="peak memory (MiB)",
        sizes=(40, 400),
        legend="brief",
        style="source",
        markers={"published": "o", "measured": "D"},
        palette="colorblind",
        alpha=0.85,
        edgecolor="black",
        ax=ax,
        zorder=2,
    )
    several = points["series"].nunique() > 1
    for _, row in points.iterrows():
        label = row["model"] + (f"\n{row['runtime']}/{row['precision']}" if several else "")
        ax.annotate(label, (row["throughput"], row["top1_pct"]), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(f"throughput (images/s, log scale) at batch {batch_size} or the largest below it")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs speed: the best trade-offs lie on the frontier\n{_where(points)}")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def throughput_vs_device(frame: pd.DataFrame) -> Figure:
    """One panel per model: bars of throughput per batch size, one per machine/device/variant."""
    ok = frame[frame["status"] == "ok"]
    ok = ok.assign(
        where=ok["machine"].astype(str) + ": " + ok["device_name"].astype(str) + " (" + _series(ok) + ")"
    )
    grid = sns.catplot(
        data=ok.sort_values(["family", "model", "batch_size"]),
        kind="bar",
        x="batch_size",
        y="throughput",
        hue="where",
        col="model",
        col_wrap=min(3, max(1, ok["model"].nunique())),
        palette="colorblind",
        height=3.2,
        aspect=1.4,
        sharex=False,
        sharey=False,
        legend_out=False,
    )
    grid.set_axis_labels("batch size", "throughput (images/s)")
    grid.set_titles("{col_name}", fontweight="bold")
    if grid.legend is not None:
        grid.legend.set_title("machine: device (device runtime/precision)")
        sns.move_legend(grid, "center left", bbox_to_anchor=(1.0, 0.5), ncol=1, frameon=False)
    grid.figure.suptitle("Throughput by device and machine, per model and batch size", fontsize=12)
    grid.figure.tight_layout(rect=(0, 0, 1, 0.96))
    return grid.figure


def speedup(throughput: pd.DataFrame, batch_size: int) -> Figure:
    """Speed-up of each variant over mxnet/float32 per model, with 95% intervals."""
    speed = pick_batch(throughput, batch_size)
    keys = ["machine", "device", "model", "batch_size"]
    is_reference = (speed["runtime"] == REFERENCE[0]) & (speed["precision"] == REFERENCE[1])
    reference, others = speed[is_reference], speed[~is_reference]
    both = others.merge(reference, on=keys, suffixes=("", "_ref"))
    both = both.assign(
        variant=both["runtime"] + "/" + both["precision"],
        speedup=both["throughput"] / both["throughput_ref"],
        # Interval of a ratio from the two intervals: a conservative bound.
        low=both["throughput_ci95_low"] / both["throughput_ci95_high_ref"],
        high=both["throughput_ci95_high"] / both["throughput_ci95_low_ref"],
    )
    fig, ax = plt.subplots(figsize=(max(7.0, 1.4 * both["model"].nunique() + 3), 4.8))
    if both.empty:
        ax.text(0.5, 0.5, "no variant besides mxnet/float32 was measured", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    models_ = sorted(both["model"].unique())
    variants_ = sorted(both["variant"].unique())
    width = 0.8 / len(variants_)
    palette = sns.color_palette("colorblind", len(variants_))
    for i, variant in enumerate(variants_):
        part = both[both["variant"] == variant].set_index("model").reindex(models_)
        x = [m + (i - (len(variants_) - 1) / 2) * width for m in range(len(models_))]
        ax.bar(x, part["speedup"], width, label=variant, color=palette[i])
        ax.errorbar(x, part["speedup"], yerr=[part["speedup"] - part["low"], part["high"] - part["speedup"]],
                    fmt="none", ecolor="black", capsize=3)
        for xi, value in zip(x, part["speedup"]):
            if pd.notna(value):
                ax.annotate(f"{value:.2f}x", (xi, value), xytext=(0, 3), textcoords="offset points",
                            ha="center", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_xticks(range(len(models_)), models_, rotation=30, ha="right")
    ax.set_ylabel("speed-up over mxnet/float32 (x)")
    ax.set_title(
        f"Speed-up over mxnet/float32 at batch {batch_size} (or the largest below)\n"
        f"95% intervals; {_where(both)}"
    )
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def save(fig: Figure, png: str | Path, svg: str | Path | None = None) -> None:
    """Write the figure whole or not at all; PNG at print resolution, SVG for editing."""
    for path, options in ((png, {"dpi": 150}), (svg, {})):
        if not path:
            continue
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp{path.suffix}")
        # "tight" keeps legends placed outside the axes inside the image.
        fig.savefig(partial, bbox_inches="tight", **options)
        partial.replace(path)
    plt.close(fig)
