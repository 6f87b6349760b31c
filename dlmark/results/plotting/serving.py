"""The serving figure: latency against offered load, the curve serving engineers read."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dlmark.results.plotting import style
from dlmark.results.status import TRUSTED


@style.house_style
def latency_vs_load(runs: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """One panel per model: Server's p50 and p99 against the Poisson rate offered, the bound, the rate sustained.

    `runs` holds every Server run (`tables.serving_runs`), `table` the
    serving rows (Offline's throughput is drawn as the ceiling).
    """
    runs = runs.assign(series=style.series(runs))
    table = table.assign(series=style.series(table))
    served = sorted(set(runs["model"]) | set(table["model"]))
    ncols = style.columns(len(served))
    nrows = -(-len(served) // ncols)
    series = sorted(set(runs["series"]) | set(table["series"]))
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows + 1.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(served):]:
        ax.set_visible(False)
    for index, (ax, model) in enumerate(zip(axes.flat, served)):
        _panel(ax, runs[runs["model"] == model], table[table["model"] == model], palette)
        ax.set_title(model)
        if index % ncols == 0:
            ax.set_ylabel("latency (ms, log)")
        ax.set_xlabel("offered load (queries/s, Poisson)")
    handles = [plt.Line2D([], [], color=palette[s], marker="o") for s in series] + [
        plt.Line2D([], [], color="black", marker="o"),
        plt.Line2D([], [], color="black", linestyle="--", marker="."),
        plt.Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle=""),
        plt.Line2D([], [], color="black", marker="s", markerfacecolor="white", linestyle=""),
        plt.Line2D([], [], color="black", linestyle=":"),
        plt.Line2D([], [], color="black", marker="*", markersize=12, linestyle=""),
        plt.Line2D([], [], color="grey", linestyle="-.", linewidth=1),
    ]
    labels = [*series, "p99 latency", "p50 latency", "INVALID: p99 over the bound",
              "INVALID: too few queries to vouch for the p99 (early stopping)", "p99 bound",
              "sustained rate (largest VALID)", "Offline throughput"]
    style.legend_below(fig, handles, labels)
    fig.suptitle(f"Serving (MLPerf LoadGen, Server scenario): latency vs load\n{style.where(table)}",
                 fontsize=12)
    return fig


def _panel(ax: plt.Axes, runs: pd.DataFrame, rows: pd.DataFrame, palette: dict) -> None:
    ax.set_yscale("log")
    style.log10_axis(ax.yaxis)
    for label, part in runs.groupby("series"):
        color = palette[label]
        part = part.sort_values("offered_qps")
        ax.plot(part["offered_qps"], part["latency_ms_p99"], color=color, marker="", linewidth=1.5)
        ax.plot(part["offered_qps"], part["latency_ms_p50"], color=color, linestyle="--", marker=".", alpha=0.8)
        valid = part["validity"] == "VALID"
        ax.scatter(part.loc[valid, "offered_qps"], part.loc[valid, "latency_ms_p99"], color=color, zorder=3)
        # A run can be INVALID with its p99 under the bound: from a few hundred queries LoadGen's early
        # stopping could not vouch for a p99 that close to it. Drawn apart, so that it is not read as a
        # latency over the bound.
        for over, marker in ((True, "o"), (False, "s")):
            these = ~valid & (part["latency_met"] != over)
            ax.scatter(part.loc[these, "offered_qps"], part.loc[these, "latency_ms_p99"], marker=marker,
                       facecolors="white", edgecolors=color, zorder=3)
        bound = part["latency_bound_ms"].dropna()
        if len(bound):
            ax.axhline(bound.iloc[0], color=color, linestyle=":", linewidth=1.2)
        sustained = part["sustained_qps"].dropna()
        if len(sustained):
            at = part.loc[(part["offered_qps"] - sustained.iloc[0]).abs().idxmin()]
            ax.scatter([at["offered_qps"]], [at["latency_ms_p99"]], marker="*", s=160, color=color,
                       edgecolors="black", linewidths=0.5, zorder=4)
    for label, row in rows[(rows["scenario"] == "Offline") & rows["status"].isin(TRUSTED)].set_index("series").iterrows():
        ax.axvline(row["qps"], color=palette[label], linestyle="-.", linewidth=1, alpha=0.7)
    if runs.empty:
        ax.text(0.5, 0.5, "no Server runs", transform=ax.transAxes, ha="center", va="center", color="grey")
    else:
        # The axis ends on labelled values (1, 2, 5 of a decade), so that the lowest latencies can be read.
        low = runs[["latency_ms_p50", "latency_ms_p99"]].min().min()
        high = max(runs[["latency_ms_p50", "latency_ms_p99"]].max().max(), runs["latency_bound_ms"].max())
        ax.set_ylim(_nice(low, down=True), _nice(high, down=False))
    ax.set_xlim(left=0)


def _nice(value: float, down: bool) -> float:
    """The nearest 1, 2 or 5 times a power of ten below (or above) `value`."""
    steps = [m * 10.0**e for e in range(-3, 7) for m in (1, 2, 5)]
    return max(v for v in steps if v <= value) if down else min(v for v in steps if v >= value)
