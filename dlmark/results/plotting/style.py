"""What every figure shares: the house style, axes, labels, legends, saving."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, ParamSpec

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from adjustText import adjust_text
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

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


def series(frame: pd.DataFrame) -> pd.Series:
    """One label per line: device, runtime and precision."""
    return frame["device"] + " " + frame["runtime"] + "/" + frame["precision"]


def log2_axis(ax: plt.Axes, batches: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def log10_axis(axis: Any) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade, so that a span under one decade still reads.

    With labels at the decades only, throughputs from 17 to 230 img/s got
    one label ("100"), and no point could be read off the axis.
    """
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def where(frame: pd.DataFrame) -> str:
    hosts = sorted(frame["machine"].astype(str).unique())
    devices = sorted(frame["device_name"].astype(str).unique())
    return f"machine {', '.join(hosts)}: {'; '.join(devices)}"


def left_out(frame: pd.DataFrame, drawn: Any) -> str:
    """A title line naming the models of `frame` a figure of trusted rows does not draw, with their rows' statuses.

    Without it a model whose every row was noisy just vanished: from the
    accuracy figure with its frontier redrawn as if it had not been
    measured. Empty when every model is drawn.
    """
    shown = set(drawn)
    missing = [m for m in dict.fromkeys(frame["model"]) if m not in shown]
    if not missing:
        return ""
    said = [f"{m} ({', '.join(sorted(frame.loc[frame['model'] == m, 'status'].astype(str).unique()))})"
            for m in missing]
    return "\nnot drawn, no trusted row: " + "; ".join(said)


def by_family(frame: pd.DataFrame) -> dict[str, list[str]]:
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


def columns(models: int) -> int:
    """Panels per row: 3 for a short list, 5 (the largest families) for the zoo."""
    return max(1, min(models, 3 if models <= 9 else 5))


def legend_below(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend for every panel, under them (constrained layout makes room); each label once."""
    unique = dict(zip(labels, handles))
    fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncol=min(3, len(unique)),
               frameon=False)


def model_axis(ax: plt.Axes, frame: pd.DataFrame) -> dict[str, int]:
    """Models down the y axis, grouped by family (named on the right); returns each model's row."""
    families = by_family(frame)
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


def offsets(count: int) -> list[float]:
    """Vertical offsets of a row's dots, one per series, inside the row."""
    width = min(0.7, 0.25 * count)
    return [0.0] if count == 1 else [-width / 2 + i * width / (count - 1) for i in range(count)]


def name_points(fig: Figure, ax: plt.Axes, names: pd.Series, x: pd.Series, y: pd.Series,
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
