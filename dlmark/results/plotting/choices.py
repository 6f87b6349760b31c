"""Figures that help choose: the largest batch, speed against accuracy, devices, speed-ups."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from dlmark.results.plotting import style
from dlmark.results.status import OK, TRUSTED
from dlmark.runtimes import REFERENCE


@style.house_style
def max_batch_size(frame: pd.DataFrame) -> Figure:
    """A dot per model and device/variant on a log2 axis, labelled with its value."""
    frame = frame.assign(series=style.series(frame))
    series = sorted(frame["series"].unique())
    models = frame["model"].nunique()
    fig, ax = plt.subplots(figsize=(9, 0.32 * models * max(1.0, 0.6 * len(series)) + 2.2), layout="constrained")
    position = style.model_axis(ax, frame)
    palette = sns.color_palette("colorblind", len(series))
    top = max(2.0, float(frame["max_batch_size"].max() or 1))
    for offset, color, label in zip(style.offsets(len(series)), palette, series):
        part = frame[frame["series"] == label]
        for _, row in part.iterrows():
            y = position[row["model"]] + offset
            value = int(row["max_batch_size"] or 0)
            capped = bool(row["reached_upper_bound"])
            if row["status"] != OK:
                ax.text(1, y, f"  {row['status']}", color="red", va="center", fontsize=8)
                continue
            x = max(value, 1)
            ax.scatter([x], [y], color=color, marker=">" if capped else ("x" if value == 0 else "o"),
                       s=45, zorder=3, label=label)
            text = f"at least {value}" if capped else ("none fits" if value == 0 else f"{value}")
            ax.annotate(text, (x, y), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlim(0.8, top * 2.5)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("largest batch size that fits (images, log scale)")
    limits = frame.groupby("series")["memory_limit_mb"].max()
    limit = (
        f"{limits.iloc[0]:,.0f} MiB"
        if limits.nunique() == 1
        else "; ".join(f"{s}: {lim:,.0f} MiB" for s, lim in limits.items())
    )
    ax.set_title(f"Largest batch size that fits in memory (limit {limit})\n{style.where(frame)}")
    if len(series) > 1:
        style.legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def pick_batch(throughput: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per model and variant, the ok row at `batch_size`, else the largest below it."""
    ok = throughput[(throughput["status"] == OK) & (throughput["batch_size"] <= batch_size)]
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


def _accuracy_points(speed: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Each measured point with its model's top-1; measured accuracy is device independent."""
    acc = accuracy.sort_values("source").drop_duplicates(["model", "runtime", "precision"])
    points = speed.merge(
        acc[["model", "runtime", "precision", "top1", "top5", "source"]],
        on=["model", "runtime", "precision"],
    )
    return points.assign(
        top1_pct=points["top1"] * 100,
        variant=style.series(points),
        memory=points["peak_memory_mb"].round(-1),
    ).rename(columns={"memory": "peak memory (MiB)"})


@style.house_style
def throughput_vs_accuracy(throughput: pd.DataFrame, accuracy: pd.DataFrame, batch_size: int) -> Figure:
    """Top-1 against throughput: families coloured, Pareto frontier drawn, every model labelled.

    A model's variants are joined by a thin line and it is named once, and
    the names are pushed apart (adjustText) so the dense corner of large,
    accurate models stays legible with the whole zoo.
    """
    points = _accuracy_points(pick_batch(throughput, batch_size), accuracy)
    many = points["model"].nunique() > 12
    fig, ax = plt.subplots(figsize=(14, 9) if many else (10, 6.5), layout="constrained")
    if points.empty:
        ax.text(0.5, 0.5, "no model has both a throughput and an accuracy", ha="center", transform=ax.transAxes)
        return fig
    front = pareto_front(points, "throughput", "top1_pct")
    # Between two frontier points, the best accuracy at a throughput is the
    # next faster point's: the staircase steps down on the left.
    ax.step(front["throughput"], front["top1_pct"], where="pre", linestyle="--", color="black",
            linewidth=1, label="Pareto frontier", zorder=1)
    several = points["variant"].nunique() > 1
    for _, part in points.groupby(["machine", "device", "model"]):
        if len(part) > 1:
            part = part.sort_values("throughput")
            ax.plot(part["throughput"], part["top1_pct"], color="grey", linewidth=0.8, alpha=0.6, zorder=1)
    variant_markers = dict(zip(sorted(points["variant"].unique()), ["o", "s", "^", "D", "v", "P"] * 3))
    families = sorted(points["family"].unique())
    sns.scatterplot(
        data=points,
        x="throughput",
        y="top1_pct",
        hue="family",
        hue_order=families,
        size="peak memory (MiB)",
        sizes=(40, 400),
        legend="brief",
        style="variant" if several else "source",
        markers=variant_markers if several else {"published": "o", "measured": "D"},
        # colorblind's ten colours hold two blues; past eight families tab10/20 stay apart.
        palette="colorblind" if len(families) <= 8 else ("tab10" if len(families) <= 10 else "tab20"),
        alpha=0.85,
        edgecolor="black",
        ax=ax,
        zorder=2,
    )
    ax.set_xscale("log")
    style.log10_axis(ax.xaxis)
    # One name per model, at its reference point (else its fastest).
    is_reference = (points["runtime"] == REFERENCE[0]) & (points["precision"] == REFERENCE[1])
    named = (
        points.assign(first=~is_reference)
        .sort_values(["first", "throughput"], ascending=[True, False])
        .drop_duplicates(["machine", "device", "model"])
    )
    ax.set_xlabel(f"throughput (images/s, log scale) at batch {batch_size} or the largest below it")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs speed: the best trade-offs lie on the frontier\n{style.where(points)}"
                 + style.left_out(throughput[throughput["model"].isin(accuracy["model"])], points["model"]))
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False, fontsize=8)
    style.name_points(fig, ax, named["model"], named["throughput"], named["top1_pct"], points)
    return fig


@style.house_style
def throughput_vs_device(frame: pd.DataFrame) -> Figure:
    """One panel per model: bars of throughput per batch size, one per machine/device/variant.

    Each panel dodges only the bars it has, so a model measured in one
    variant has its bars centred on their batch size, and every series
    keeps one colour across the panels.
    """
    ok = frame[frame["status"] == OK]
    ok = ok.assign(
        where=ok["machine"].astype(str) + ": " + ok["device_name"].astype(str) + " (" + style.series(ok) + ")"
    ).sort_values(["family", "model", "batch_size"])
    series = sorted(ok["where"].unique())
    colours = dict(zip(series, sns.color_palette("colorblind", max(len(series), 1))))
    models = list(dict.fromkeys(ok["model"]))
    ncols = style.columns(len(models))
    nrows = max(1, math.ceil(len(models) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 1.0), layout="constrained",
                             squeeze=False)
    for ax, model in zip(axes.flat, models):
        part = ok[ok["model"] == model]
        sns.barplot(data=part, x="batch_size", y="throughput", hue="where", palette=colours, saturation=1,
                    hue_order=[s for s in series if s in set(part["where"])], ax=ax)
        ax.set_title(model, fontweight="bold")
        ax.set_xlabel("batch size")
        ax.set_ylabel("throughput (images/s)")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[s]) for s in series]
    style.legend_below(fig, handles, series)
    fig.suptitle("Throughput by device and machine, per model and batch size" + style.left_out(frame, models),
                 fontsize=12)
    return fig


def pick_speedups(speedups: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per model, device and variant, the ratio at the largest batch <= `batch_size` it has.

    The table holds ratios of trusted pairs only (both points ok), so where
    the reference ran out of memory or was noisy at the comparison batch,
    the largest batch below where both are trusted is used instead.
    """
    below = speedups[speedups["batch_size"] <= batch_size]
    keys = ["machine", "device", "model", "runtime", "precision"]
    return below.loc[below.groupby(keys)["batch_size"].idxmax()] if len(below) else below


def _no_speedups_reason(throughput: pd.DataFrame, batch_size: int) -> str:
    """Why there is nothing to draw, naming the devices."""
    is_reference = (throughput["runtime"] == REFERENCE[0]) & (throughput["precision"] == REFERENCE[1])
    others = throughput[~is_reference]
    if others.empty:
        return "no variant besides mxnet/float32 was measured"
    alone = sorted(set(others["device"]) - set(throughput.loc[is_reference, "device"]))
    if alone:
        # On a GPU MXNet cannot run on (Hopper and later), the other variants have no reference.
        return f"mxnet/float32, the reference, was not measured on {', '.join(alone)}"
    devices = ", ".join(sorted(set(others["device"])))
    return (f"on {devices}, no batch size up to {batch_size} has trusted (ok) rows of both "
            "mxnet/float32 and another variant")


@style.house_style
def speedup(speedups: pd.DataFrame, throughput: pd.DataFrame, batch_size: int) -> Figure:
    """Speed-up of each variant over mxnet/float32 from paired rounds, a dot per model with its 95% interval."""
    both = pick_speedups(speedups, batch_size)
    both = both.assign(
        variant=style.series(both),
        speedup=both["ratio"],
        low=both["ratio_ci95_low"],
        high=both["ratio_ci95_high"].where(np.isfinite(both["ratio_ci95_high"].astype(float))),
    )
    variants_ = sorted(both["variant"].unique())
    models = both["model"].nunique()
    fig, ax = plt.subplots(
        figsize=(9, 0.32 * models * max(1.0, 0.6 * len(variants_)) + 2.2), layout="constrained"
    )
    if both.empty:
        why = textwrap.fill(f"no speed-ups to draw: {_no_speedups_reason(throughput, batch_size)}", 60)
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    position = style.model_axis(ax, both)
    # Colours by the series of every row, the reference's included, as the other figures give them: a
    # variant keeps its colour from figure to figure.
    every = sorted(set(style.series(throughput)) | set(variants_))
    colours = dict(zip(every, sns.color_palette("colorblind", len(every))))
    for offset, variant in zip(style.offsets(len(variants_)), variants_):
        color = colours[variant]
        part = both[both["variant"] == variant]
        y = [position[m] + offset for m in part["model"]]
        # An interval with no upper bound (too few processes for its spread)
        # gets a dotted arrow to the edge instead of a whisker.
        open_ended = part["high"].isna()
        upper = (part["high"] - part["speedup"]).where(~open_ended, 0.0)
        ax.errorbar(part["speedup"], y, xerr=[part["speedup"] - part["low"], upper],
                    fmt="o", color=color, ecolor=color, elinewidth=1, capsize=2, label=variant)
        for x, yi in zip(part["speedup"][open_ended], [v for v, o in zip(y, open_ended) if o]):
            ax.annotate("", xy=(1.0, yi), xycoords=("axes fraction", "data"), xytext=(x, yi), textcoords="data",
                        arrowprops={"arrowstyle": "->", "color": color, "linestyle": ":", "linewidth": 1})
        for x, yi, batch in zip(part["speedup"], y, part["batch_size"]):
            at = "" if batch == batch_size else f" (batch {batch})"  # a smaller batch says so
            ax.annotate(f"{x:.2f}x{at}", (x, yi), xytext=(0, 5), textcoords="offset points", ha="center",
                        fontsize=7)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    # Ratios on a log axis: 2x faster and 2x slower sit equally far from 1x,
    # and one wide interval does not squash every other row.
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("speed-up over mxnet/float32 (log scale; right of the dashed line is faster)")
    batches = ", ".join(str(b) for b in sorted(both["batch_size"].unique()))
    ax.set_title(
        f"Speed-up over mxnet/float32 at batch {batch_size} or the largest below where both are ok "
        f"(here {batches})\n95% intervals from paired blocks; {style.where(both)}"
    )
    style.legend_below(fig, *ax.get_legend_handles_labels())
    return fig


@style.house_style
def energy_vs_throughput(frame: pd.DataFrame) -> Figure:
    """Images per joule against throughput, a panel per GPU, a colour per variant, a marker per model.

    Up and right is better: more images per second for each joule. A
    model's batch sizes are joined, smallest batch first, so the curve
    shows what batching buys in energy as well as in speed.
    """
    frame = frame[frame["device"].astype(str).str.startswith("gpu")]
    rows = frame[frame["status"].isin(TRUSTED) & frame["energy_j_per_image"].notna()]
    rows = rows.assign(images_per_joule=1.0 / rows["energy_j_per_image"], series=style.series(rows))
    devices = sorted(frame["device"].astype(str).unique())
    fig, axes = plt.subplots(1, len(devices), figsize=(6.2 * len(devices), 5.2), squeeze=False, layout="constrained")
    series = sorted(rows["series"].unique())
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    markers = dict(zip(sorted(frame["model"].unique()), ["o", "s", "^", "D", "v", "P", "X", "*"] * 4))
    for ax, device in zip(axes[0], devices):
        part = rows[rows["device"].astype(str) == device]
        name = frame.loc[frame["device"].astype(str) == device, "device_name"].iloc[0]
        ax.set_title(f"{device}: {name}")
        if part.empty:
            notes = frame.loc[frame["device"].astype(str) == device, "energy_note"].dropna()
            why = notes.iloc[0] if len(notes) else "no energy counter was readable for this device"
            ax.text(0.5, 0.5, "no energy measured:\n" + textwrap.fill(why, 45), ha="center", va="center",
                    transform=ax.transAxes, color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for (label, model), line in part.sort_values("batch_size").groupby(["series", "model"]):
            ax.plot(line["throughput"], line["images_per_joule"], color=palette[label], marker=markers[model],
                    linewidth=1, label=label)
            last = line.iloc[-1]
            ax.annotate(f"{model} b{last['batch_size']}", (last["throughput"], last["images_per_joule"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        style.log10_axis(ax.xaxis)
        style.log10_axis(ax.yaxis)
        ax.set_xlabel("throughput (images/s, log)")
        ax.set_ylabel("images per joule (log)")
    handles = [plt.Line2D([], [], color=palette[s], marker="o") for s in series]
    handles += [plt.Line2D([], [], color="grey", marker=m, linestyle="") for m in markers.values()][: len(markers)]
    style.legend_below(fig, handles, [*series, *markers])
    fig.suptitle(f"Energy: images per joule vs throughput, each batch size a point (NVML's counter over the "
                 f"timed calls)\n{style.where(frame)}", fontsize=12)
    return fig
