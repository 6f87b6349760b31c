"""Figures drawn from the result tables.

Each function takes a tidy table and returns a matplotlib Figure; saving
is separate so tests can inspect figures. Figures are meant to be read at a
glance and printed: titles say what and where, axes carry units, every
panel names its model.
"""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path
from typing import Any, Callable, ParamSpec

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from adjustText import adjust_text
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from dlmark.runtimes import REFERENCE

P = ParamSpec("P")


def house_style(draw: Callable[P, Figure]) -> Callable[P, Figure]:
    """Draw in dlmark's theme without changing the importer's matplotlib settings.

    Importing this module sets nothing: the theme applies only while a
    figure is drawn, and matplotlib picks its backend itself (Agg where
    there is no display, as in Snakemake jobs and on cluster nodes).
    """

    @functools.wraps(draw)
    def styled(*args: P.args, **kwargs: P.kwargs) -> Figure:
        theme = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.1)}
        with plt.rc_context(theme):
            return draw(*args, **kwargs)

    return styled


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


def _families(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Model names grouped by family, both in name order."""
    pairs = frame[["family", "model"]].drop_duplicates().sort_values(["family", "model"])
    return {family: list(group["model"]) for family, group in pairs.groupby("family", sort=True)}


def panel_rows(families: dict[str, list[str]], ncols: int) -> list[list[str]]:
    """Rows of model panels, a family kept on one row where it fits.

    With the whole zoo this reads family by family (the four DenseNets side
    by side); small families share a row so a short list stays compact.
    """
    rows: list[list[str]] = [[]]
    for members in families.values():
        for start in range(0, len(members), ncols):
            chunk = members[start : start + ncols]
            if len(rows[-1]) + len(chunk) > ncols:
                rows.append([])
            rows[-1].extend(chunk)
    return [row for row in rows if row]


def _columns(models: int) -> int:
    """Panels per row: 3 for a short list, 5 (the largest families) for the zoo."""
    return max(1, min(models, 3 if models <= 9 else 5))


def _legend_below(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend for every panel, under them (constrained layout makes room); each label once."""
    unique = dict(zip(labels, handles))
    fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncol=min(3, len(unique)),
               frameon=False)


@house_style
def throughput_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """One panel per model, families on rows: throughput with its 95% CI, memory on a twin axis."""
    frame = frame.assign(series=_series(frame))
    layout = panel_rows(_families(frame), _columns(frame["model"].nunique()))
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
    _legend_below(fig, handles, labels)
    fig.suptitle(f"Inference throughput vs batch size (95% CI shaded)\n{_where(frame)}", fontsize=12)
    return fig


def _throughput_panel(ax: plt.Axes, rows: pd.DataFrame, palette: dict[str, Any]) -> plt.Axes:
    """Draw one model's panel; returns its memory axis."""
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
    # A busy neighbour slows a benchmark but does not change the memory it
    # needs: memory is drawn for noisy points too.
    measured = rows[rows["status"].isin(["ok", "noisy"])].sort_values("batch_size")
    for label, part in measured.groupby("series"):
        memory_ax.plot(
            part["batch_size"], part["peak_memory_mb"], linestyle="--", color=palette[label], alpha=0.6, marker="."
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
    ax.set_title(f"{rows['model'].iloc[0]} ({rows['family'].iloc[0]})", fontweight="bold")
    ax.set_xlabel("batch size")
    memory_ax.tick_params(axis="y", colors="grey")
    return memory_ax


@house_style
def memory_vs_batch_size(frame: pd.DataFrame) -> Figure:
    """Peak memory against batch size, one panel per family, shared log axes.

    Noisy rows count here: a busy neighbour slows a benchmark, it does not
    change the memory it needs.
    """
    kept = frame[frame["status"].isin(["ok", "noisy"])].assign(series=_series(frame))
    families = _families(kept if not kept.empty else frame)
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
        _log2_axis(ax, sorted(frame["batch_size"].unique()))
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
        _legend_below(
            fig,
            [plt.Line2D([], [], color="grey", linestyle=styles[s], marker=markers[s]) for s in series],
            series,
        )
    fig.suptitle(f"Memory needed for inference vs batch size\n{_where(frame)}", fontsize=12)
    return fig


def _model_axis(ax: plt.Axes, frame: pd.DataFrame) -> dict[str, int]:
    """Models down the y axis, grouped by family (named on the right); returns each model's row."""
    families = _families(frame)
    order = [m for members in families.values() for m in members]
    position = {model: i for i, model in enumerate(order)}
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    for row in range(1, len(order), 2):  # every other model shaded: its dots stay on its band
        ax.axhspan(row - 0.5, row + 0.5, color="0.94", zorder=0, linewidth=0)
    first = 0
    for family, members in families.items():
        last = first + len(members) - 1
        if first:
            ax.axhline(first - 0.5, color="grey", linewidth=0.6)
        ax.text(1.01, (first + last) / 2, family, transform=ax.get_yaxis_transform(), va="center",
                fontsize=8, color="dimgrey", style="italic")
        first = last + 1
    return position


def _offsets(count: int) -> list[float]:
    """Vertical offsets of a row's dots, one per series, inside the row."""
    width = min(0.7, 0.25 * count)
    return [0.0] if count == 1 else [-width / 2 + i * width / (count - 1) for i in range(count)]


@house_style
def max_batch_size(frame: pd.DataFrame) -> Figure:
    """A dot per model and device/variant on a log2 axis, labelled with its value."""
    frame = frame.assign(series=_series(frame))
    series = sorted(frame["series"].unique())
    models = frame["model"].nunique()
    fig, ax = plt.subplots(figsize=(9, 0.32 * models * max(1.0, 0.6 * len(series)) + 2.2), layout="constrained")
    position = _model_axis(ax, frame)
    palette = sns.color_palette("colorblind", len(series))
    top = max(2.0, float(frame["max_batch_size"].max() or 1))
    for offset, color, label in zip(_offsets(len(series)), palette, series):
        part = frame[frame["series"] == label]
        for _, row in part.iterrows():
            y = position[row["model"]] + offset
            value = int(row["max_batch_size"] or 0)
            capped = bool(row["reached_upper_bound"])
            if row["status"] != "ok":
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
    ax.set_title(f"Largest batch size that fits in memory (limit {limit})\n{_where(frame)}")
    if len(series) > 1:
        _legend_below(fig, *ax.get_legend_handles_labels())
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


@house_style
def throughput_vs_accuracy(throughput: pd.DataFrame, accuracy: pd.DataFrame, batch_size: int) -> Figure:
    """Top-1 against throughput: families coloured, Pareto frontier drawn, every model labelled.

    A model's variants are joined by a thin line and it is named once, and
    the names are pushed apart (adjustText) so the dense corner of large,
    accurate models stays legible with the whole zoo.
    """
    speed = pick_batch(throughput, batch_size)
    # Measured accuracy is device independent: one row per model and variant.
    acc = accuracy.sort_values("source").drop_duplicates(["model", "runtime", "precision"])
    points = speed.merge(
        acc[["model", "runtime", "precision", "top1", "top5", "source"]],
        on=["model", "runtime", "precision"],
    )
    points = points.assign(
        top1_pct=points["top1"] * 100,
        variant=_series(points),
        memory=points["peak_memory_mb"].round(-1),
    ).rename(columns={"memory": "peak memory (MiB)"})
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
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # One name per model, at its reference point (else its fastest).
    is_reference = (points["runtime"] == REFERENCE[0]) & (points["precision"] == REFERENCE[1])
    named = (
        points.assign(first=~is_reference)
        .sort_values(["first", "throughput"], ascending=[True, False])
        .drop_duplicates(["machine", "device", "model"])
    )
    ax.set_xlabel(f"throughput (images/s, log scale) at batch {batch_size} or the largest below it")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs speed: the best trade-offs lie on the frontier\n{_where(points)}")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False, fontsize=8)
    _name_points(fig, ax, named["model"], named["throughput"], named["top1_pct"], points)
    return fig


@house_style
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
        col_wrap=_columns(ok["model"].nunique()),
        palette="colorblind",
        height=3.0,
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
    # Room for the title in inches, not a fraction: a tall grid would
    # otherwise push the title onto its first row of panels.
    grid.figure.tight_layout(rect=(0, 0, 1, 1 - 0.6 / grid.figure.get_figheight()))
    return grid.figure


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


@house_style
def speedup(speedups: pd.DataFrame, throughput: pd.DataFrame, batch_size: int) -> Figure:
    """Speed-up of each variant over mxnet/float32 from paired rounds, a dot per model with its 95% interval."""
    both = pick_speedups(speedups, batch_size)
    both = both.assign(
        variant=_series(both),
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
    position = _model_axis(ax, both)
    palette = sns.color_palette("colorblind", len(variants_))
    for offset, color, variant in zip(_offsets(len(variants_)), palette, variants_):
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
        f"(here {batches})\n95% intervals from paired blocks; {_where(both)}"
    )
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def _name_points(fig: Figure, ax: plt.Axes, names: pd.Series, x: pd.Series, y: pd.Series,
                 points: pd.DataFrame) -> None:
    """Name points so that no two names overlap, each tied to its point by a thin line.

    adjustText pushes names off each other and off the markers (a fixed
    number of rounds, so the figure is the same on every machine); names it
    leaves touching are then stacked upward until none does.
    """
    texts = [ax.text(xi, yi, name, fontsize=8) for name, xi, yi in zip(names, x, y)]
    for text in texts:
        text.set_in_layout(False)  # names never resize the axes they are placed in
    fig.canvas.draw()  # names are placed in display space: the layout must be final
    adjust_text(texts, x=points["throughput"].to_numpy(), y=points["top1_pct"].to_numpy(), ax=ax,
                expand=(1.2, 1.6), force_text=(0.3, 0.6), iter_lim=150)
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text in sorted(texts, key=lambda t: t.get_window_extent(renderer).y0):
        for _ in range(len(texts)):
            box = text.get_window_extent(renderer)
            hit = next((other for other in placed if box.overlaps(other)), None)
            if hit is None:
                break
            at = ax.transData.transform(text.get_position())
            text.set_position(ax.transData.inverted().transform((at[0], at[1] + hit.y1 - box.y0 + 1)))
        placed.append(text.get_window_extent(renderer))
    for text, xi, yi in zip(texts, x, y):
        ax.annotate("", xy=(xi, yi), xytext=text.get_position(), zorder=1,
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5, "shrinkA": 0, "shrinkB": 4})


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
