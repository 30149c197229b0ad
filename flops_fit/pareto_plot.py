"""Pareto plots: `plot_pareto` (one front, the study's ``pareto_plot.png``) and `plot_fronts` (a grid of them).

Matplotlib only; the front itself is :func:`flops_fit.front.pareto_front`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from flops_fit.columns import (
    Direction,
    axis_label,
    category_columns,
    finite_rows,
    metric_direction,
    require_column,
)
from flops_fit.front import pareto_front

__all__ = ["plot_fronts", "plot_pareto"]


def _log_ticks(axis: Any) -> None:
    """Tick labels that do not overlap on a narrow log axis.

    Matplotlib labels minor ticks (2x10^5, 3x10^5, 4x10^5, ...) when few
    decade ticks are in view, and they run into each other in a 576-px plot.
    Two or more decade ticks: those alone; one: 2x and 5x beside it; none
    (less than a decade): matplotlib's own choice.
    """
    lo, hi = sorted(np.log10(axis.get_view_interval()))
    decades = int(np.floor(hi) - np.ceil(lo)) + 1
    if decades >= 2:
        axis.set_minor_formatter(NullFormatter())
    elif decades == 1:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False,
                                                         minor_thresholds=(np.inf, np.inf)))


def plot_pareto(
    df: pd.DataFrame,
    x: str,
    y: str,
    *,
    hue: str | None = None,
    logx: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    x_direction: Direction | None = None,
    y_direction: Direction | None = None,
    categories: Sequence[str] | None = None,
) -> Axes:
    """Scatter of ``y`` against ``x`` with the Pareto front drawn as a step line.

    Dominated runs are faded, front runs solid; colours follow ``hue``. Runs
    with NaN in ``x`` or ``y`` (failed) are counted in a note, not drawn. The
    front's scatter collections carry ``gid="front"``, the others
    ``gid="dominated"`` (for tests and post-processing).

    Parameters
    ----------
    df : DataFrame
        Results table.
    x, y : str
        Columns for the axes, typically a cost and a quality.
    hue : str, optional
        Column coloured by category (e.g. ``"fno_input_transform"``).
    logx : bool
        Log-scaled x axis (costs span decades).
    ax : Axes, optional
        Where to draw; a new figure otherwise.
    title : str, optional
        Axes title; default says how many runs are on the front.
    x_direction, y_direction : {"min", "max"}, optional
        Which way is better; inferred from the column name when omitted.
    categories : sequence of str, optional
        Every value of ``hue`` in a fixed order, so that a category keeps its
        colour when filtering removes others (default: those in ``df``, sorted).

    Returns
    -------
    Axes
    """
    if x == y:
        raise ValueError(f"Got x=y={x!r}, expected two different columns")
    for column, role in ((x, "x"), (y, "y")) + (((hue, "hue"),) if hue else ()):
        require_column(df, column, role)
    xd, yd = x_direction or metric_direction(x), y_direction or metric_direction(y)
    valid = finite_rows(df, x, y)
    if logx and (valid[x] <= 0).any():
        raise ValueError(f"Got logx=True but {x!r} has values <= 0; pass logx=False")
    front = pareto_front(valid, {x: xd, y: yd})
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot only here, so notebooks display the figure

        ax = plt.subplots(figsize=(7.0, 4.5), layout="constrained")[1]
    cats = valid[hue].astype("string").fillna("n/a") if hue else pd.Series("all", valid.index)
    order = [str(c) for c in categories] if categories is not None else sorted(cats.unique())
    order += sorted(set(cats.unique()) - set(order))
    for i, cat in enumerate(order):
        if not (cats == cat).any():
            continue
        color, label = f"C{i % 10}", (str(cat) if hue else None)
        sel = (cats == cat).to_numpy()
        d, f = valid[sel & ~front], valid[sel & front]
        ax.scatter(d[x], d[y], s=22, color=color, alpha=0.3, lw=0, gid="dominated")
        ax.scatter(f[x], f[y], s=40, color=color, edgecolor="k", zorder=3, gid="front",
                   label=label)
    f = valid[front].sort_values([x, y])
    # Best quality reachable at a given cost: constant until the next front point.
    ax.step(f[x], f[y], where="post" if xd == "min" else "pre", color="k", lw=1.2,
            zorder=2, gid="front_line", label="Pareto front")
    if logx:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
    ax.set(xlabel=axis_label(x), ylabel=axis_label(y),
           title=title or f"{int(front.sum())} of {len(valid)} runs on the Pareto front")
    hidden = len(df) - len(valid)
    if hidden:
        ax.text(0.99, 0.01, f"{hidden} run(s) without {x}/{y} not shown",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.4")
    ax.legend(fontsize=8, title=hue, title_fontsize=8)
    return ax


def plot_fronts(
    df: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    hue: str | None = "auto",
    fig: Figure | None = None,
) -> Figure:
    """One `plot_pareto` panel per (cost, quality) pair, two per row.

    Parameters
    ----------
    df : DataFrame
        Results table.
    pairs : sequence of (str, str)
        (x, y) columns per panel, e.g. from `pareto_pairs`.
    hue : str or None
        Colour column; "auto" takes the first of `category_columns` (the
        architecture for the FNO study), None colours nothing.
    fig : Figure, optional
        Where to draw; a new pyplot figure otherwise (so that a notebook's
        inline backend shows it: a bare ``Figure`` displays as text until
        pyplot has drawn once).

    Returns
    -------
    Figure
    """
    if not pairs:
        raise ValueError("Got no (cost, quality) pair, expected at least 1 (see pareto_pairs)")
    if hue == "auto":
        hue = next(iter(category_columns(df)), None)
    rows, cols = (len(pairs) + 1) // 2, min(len(pairs), 2)
    if fig is None:
        import matplotlib.pyplot as plt  # pyplot only here, so notebooks display the figure

        fig = plt.figure(figsize=(6.0 * cols, 4.0 * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    categories = sorted(df[hue].dropna().astype(str).unique()) if hue else None
    for ax, (x, y) in zip(axes, pairs, strict=False):
        plot_pareto(df, x, y, hue=hue, ax=ax, categories=categories)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    return fig
