"""Curves against the batch size: throughput with its interval and memory, per model and per family."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from dlmark.results.plotting import style
from dlmark.results.status import NOISY, OK


@style.house_style
def throughput_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """One panel per model, families on rows: throughput with its 95% CI, memory on a twin axis."""
    frame = frame.assign(series=style.series(frame))
    layout = style.panel_rows(style.by_family(frame), style.columns(frame["model"].nunique()))
    ncols = max(len(row) for row in layout)
    series = sorted(frame["series"].unique())
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    fig, axes = plt.subplots(
        len(layout), ncols, figsize=(4.4 * ncols, 3.1 * len(layout) + 1.4), squeeze=False, layout="constrained"
    )
    for row, models in zip(axes, layout):
        for ax in row[len(models):]:
            ax.set_visible(False)
        for column, (ax, model) in enumerate(zip(row, models)):
            memory_ax = _throughput_panel(ax, frame[frame["model"] == model], palette)
            # Axis names once per row: on the left and right of its panels.
            if column == 0:
                ax.set_ylabel("throughput (images/s)")
            if column == len(models) - 1:
                memory_ax.set_ylabel("peak memory (MiB)", color="grey")
    handles, labels = [], []
    for ax in fig.axes:
        more_handles, more_labels = ax.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
    handles.append(plt.Line2D([], [], color="grey", linestyle="--", marker="."))
    labels.append("peak memory (dashed, same colour; right axis)")
    style.legend_below(fig, handles, labels)
    fig.suptitle(f"Inference throughput vs batch size (95% CI shaded)\n{style.where(frame)}", fontsize=12)
    return fig


def _throughput_panel(ax: plt.Axes, rows: pd.DataFrame, palette: dict[str, Any]) -> plt.Axes:
    """Draw one model's panel; returns its memory axis."""
    ok = rows[rows["status"] == OK].sort_values("batch_size")
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
    # A busy neighbour slows a benchmark but does not change the memory it
    # needs: memory is drawn for noisy points too.
    measured = rows[rows["status"].isin([OK, NOISY])].sort_values("batch_size")
    for label, part in measured.groupby("series"):
        memory_ax.plot(
            part["batch_size"], part["peak_memory_mb"], linestyle="--", color=palette[label], alpha=0.6, marker="."
        )
    # Noisy points keep their numbers but not the line: the machine was
    # busy while they were measured, so they are drawn apart, hollow.
    for label, part in rows[rows["status"] == NOISY].groupby("series"):
        ax.scatter(
            part["batch_size"],
            part["throughput"],
            marker="o",
            s=70,
            facecolors="none",
            edgecolors=palette[label],
            linewidths=1.5,
            zorder=4,
            label="noisy: machine busy or slowed, not trusted (hollow)",
        )
    failed = rows[~rows["status"].isin([OK, NOISY])]
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
    style.log2_axis(ax, sorted(rows["batch_size"].unique()))
    # Room above the highest band or hollow point: autoscaling takes the line and band, not the
    # scattered noisy points, so a panel of noisy points alone cut its top ones in half on the frame.
    shown = pd.concat([ok["throughput_ci95_high"], ok["throughput"], rows.loc[rows["status"] == NOISY, "throughput"]])
    top = pd.to_numeric(shown, errors="coerce").replace(float("inf"), float("nan")).max()
    ax.set_ylim(0, top * 1.08 if pd.notna(top) and top > 0 else None)
    # Room above the largest peak: autoscaling from 0 put it on the frame, its marker cut in half.
    peak = measured["peak_memory_mb"].max()
    memory_ax.set_ylim(0, peak * 1.08 if pd.notna(peak) and peak > 0 else None)
    ax.set_title(f"{rows['model'].iloc[0]} ({rows['family'].iloc[0]})", fontweight="bold")
    ax.set_xlabel("batch size")
    memory_ax.tick_params(axis="y", colors="grey")
    return memory_ax


@style.house_style
def memory_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """Peak memory against batch size, one panel per family, shared log axes.

    Noisy rows count here: a busy neighbour slows a benchmark, it does not
    change the memory it needs.
    """
    kept = frame[frame["status"].isin([OK, NOISY])].assign(series=style.series(frame))
    families = style.by_family(kept if not kept.empty else frame)
    ncols = max(1, min(len(families), 3 if len(families) <= 6 else 4))
    nrows = math.ceil(len(families) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 1.2), squeeze=False, sharex=True, sharey=True,
        layout="constrained",
    )
    series = sorted(kept["series"].unique())
    styles = dict(zip(series, ["-", "--", ":", "-."] * len(series)))
    markers = dict(zip(series, ["o", "s", "^", "D", "v", "P"] * len(series)))
    for ax in axes.flat[len(families):]:
        ax.set_visible(False)
    for ax, (family, models) in zip(axes.flat, families.items()):
        colors = dict(zip(models, sns.color_palette("colorblind", len(models))))
        for (model, label), part in kept[kept["model"].isin(models)].groupby(["model", "series"]):
            part = part.sort_values("batch_size")
            ax.plot(part["batch_size"], part["peak_memory_mb"], color=colors[model], linestyle=styles[label],
                    marker=markers[label], label=model)
        style.log2_axis(ax, sorted(frame["batch_size"].unique()))
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_title(family, fontweight="bold")
        # The panel's legend names its models by colour; line styles are the figure's legend.
        ax.legend([plt.Line2D([], [], color=colors[m]) for m in models], models, frameon=False, fontsize=8,
                  loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("batch size")
    for ax in axes[:, 0]:
        ax.set_ylabel("peak memory (MiB)")
    if len(series) > 1:
        style.legend_below(
            fig,
            [plt.Line2D([], [], color="grey", linestyle=styles[s], marker=markers[s]) for s in series],
            series,
        )
    fig.suptitle(f"Memory needed for inference vs batch size\n{style.where(frame)}", fontsize=12)
    return fig
