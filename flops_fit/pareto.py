"""Pareto fronts of quality against cost: the non-dominated set, a plot, filters.

A run is on the front when no other run is at least as good in every
objective and strictly better in one. `pareto_front` finds it, `plot_pareto`
draws it (this is ``pareto_plot.png``), `filter_results` narrows a results
table, and `cost_columns` / `quality_columns` / `pareto_pairs` say which
fronts a table allows. The interactive explorer built on them is
:mod:`flops_fit.explorer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from flops_fit.results import BOOKKEEPING_COLUMNS

__all__ = [
    "COSTS",
    "LABELS",
    "axis_label",
    "category_columns",
    "cost_columns",
    "filter_results",
    "finite_rows",
    "metric_direction",
    "pareto_front",
    "pareto_pairs",
    "plot_fronts",
    "plot_pareto",
    "quality_columns",
    "run_table",
]

Direction = Literal["min", "max"]

# Axis labels with units for the results-table columns.
LABELS = {
    "model_params": "parameters (real numbers)",
    "inference_time_s": "inference time (s / sample)",
    "train_flops": "training FLOPs",
    "flops_per_sample": "forward FLOPs per sample",
    "train_time_s": "training time (s)",
    "compute_budget": "compute budget (FLOPs)",
    "train_samples": "training samples",
    "ssim_phase": "phase SSIM", "ssim_amp": "amplitude SSIM",
    "ms_ssim_phase": "phase MS-SSIM", "ms_ssim_amp": "amplitude MS-SSIM",
    "psnr_phase": "phase PSNR (dB)", "psnr_amp": "amplitude PSNR (dB)",
    "mae_phase": "phase MAE (rad)", "mae_amp": "amplitude MAE",
    "mse_phase": "phase MSE (rad²)", "mse_amp": "amplitude MSE",
    "frc50_phase": "phase FRC, 0.5 threshold", "frc50_amp": "amplitude FRC, 0.5 threshold",
    "frc1over7_phase": "phase FRC, 1/7 threshold", "frc1over7_amp": "amplitude FRC, 1/7 threshold",
    "final_train_loss": "final training loss", "final_test_loss": "final test loss",
}
# Which way is better, by column-name prefix (first match wins).
_BETTER: tuple[tuple[str, Direction], ...] = (
    ("ssim", "max"), ("ms_ssim", "max"), ("psnr", "max"), ("frc", "max"),
    ("mae", "min"), ("mse", "min"), ("final_", "min"), ("loss", "min"),
    ("model_params", "min"), ("inference_time", "min"), ("train_time", "min"),
    ("train_flops", "min"), ("flops", "min"),
)
# Costs a front is drawn against: memory, latency, training compute.
COSTS = ("model_params", "inference_time_s", "train_flops")
_QUALITY_PREFIXES = ("ssim", "ms_ssim", "psnr", "frc", "mae", "mse", "final_", "loss")
# Measured, with a direction, yet a cost or a size rather than a quality.
_NOT_QUALITY = (*COSTS, "flops_per_sample", "train_time_s", "compute_budget", "train_samples")
# The qualities a results table shows first, when measured.
_TABLE_QUALITIES = ("ssim_phase", "psnr_phase", "mae_phase", "ssim_amp", "final_test_loss")
_ARCH, _TRANSFORM = "architecture", "fno_input_transform"
# Columns that tell the study's runs apart (also what points are coloured by).
_ID_COLUMNS = ("architecture", "fno_input_transform", "fno_modes", "fno_width", "epochs")


def axis_label(column: str) -> str:
    """Human label with units for a results column (the name itself if unknown)."""
    return LABELS.get(column, column)


def metric_direction(column: str) -> Direction:
    """Whether larger ("max") or smaller ("min") values of ``column`` are better."""
    for prefix, direction in _BETTER:
        if column.startswith(prefix):
            return direction
    raise ValueError(
        f"Got column {column!r} with no known direction, expected one starting with "
        f"{[p for p, _ in _BETTER]}; pass the direction ('min' or 'max') explicitly"
    )


def _has_values(df: pd.DataFrame, column: str) -> bool:
    """A numeric column of ``df`` with at least one finite value."""
    return (column in df.columns and pd.api.types.is_numeric_dtype(df[column])
            and bool(np.isfinite(df[column].to_numpy(float)).any()))


def cost_columns(df: pd.DataFrame) -> list[str]:
    """The costs of `COSTS` that ``df`` measured (numeric, a finite value somewhere)."""
    return [c for c in COSTS if _has_values(df, c)]


def quality_columns(df: pd.DataFrame) -> list[str]:
    """Measured qualities of ``df``: the known metrics first (in `LABELS` order),
    then any other numeric column whose name gives a direction (``final_loss``).

    Costs and sizes (`COSTS`, FLOPs, budgets, samples) are left out, and so is
    a column with no finite value (a metric every run failed to record).
    """
    known = [c for c in LABELS if c not in _NOT_QUALITY]
    other = [c for c in df.columns if c not in LABELS and str(c).startswith(_QUALITY_PREFIXES)]
    return [c for c in (*known, *other) if _has_values(df, c)]


def category_columns(df: pd.DataFrame) -> list[str]:
    """Columns that tell runs apart, to colour points by: the study's
    architecture, input transform, modes, width and epochs, and the budget of
    an IsoFLOP sweep; those with at least one value."""
    return [c for c in (*_ID_COLUMNS, "compute_budget")
            if c in df.columns and df[c].notna().any()]


def pareto_pairs(
    df: pd.DataFrame,
    costs: Sequence[str] = ("model_params", "inference_time_s"),
    qualities: Sequence[str] = ("ssim_phase", "psnr_phase"),
    *,
    limit: int = 4,
) -> list[tuple[str, str]]:
    """(cost, quality) pairs that ``df`` can draw a front for.

    Parameters
    ----------
    df : DataFrame
        Results table (failed runs may be in it: they have no metrics).
    costs, qualities : sequence of str
        Preferred columns; when none of them was measured, the table's own
        (`cost_columns`, `quality_columns`) stand in, so a ``run_sweep`` folder
        with other metrics still gets its fronts.
    limit : int
        At most this many pairs, costs varying fastest.

    Returns
    -------
    list of (str, str)
        Pairs with at least one run that has both values.

    Raises
    ------
    ValueError
        With a one-line reason when no pair applies (no run, no cost column,
        no quality column, or no run with both).
    """
    if len(df) == 0:
        raise ValueError("Got 0 runs, expected at least 1 to draw a front")
    cost = [c for c in costs if _has_values(df, c)] or cost_columns(df)
    quality = [q for q in qualities if _has_values(df, q)] or quality_columns(df)
    if not cost:
        raise ValueError(f"Got no cost column, expected one of {list(COSTS)} with values")
    if not quality:
        raise ValueError("Got no quality column, expected a metric such as 'ssim_phase' or "
                         "a column named like one (ssim*, psnr*, mae*, mse*, *loss) with values")
    pairs = [(c, q) for q in quality for c in cost if len(finite_rows(df, c, q))]
    if not pairs:
        raise ValueError(f"Got no run with both a cost ({cost}) and a quality ({quality}), "
                         "expected at least 1")
    return pairs[:limit]


def finite_rows(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows with finite ``x`` and ``y``: the runs a plot of y against x shows
    (failed runs have NaN metrics)."""
    return df[np.isfinite(df[x].to_numpy(float)) & np.isfinite(df[y].to_numpy(float))]


def _require(df: pd.DataFrame, column: str, role: str) -> None:
    if column not in df.columns:
        raise ValueError(f"Got {role}={column!r}, expected a column of df: {list(df.columns)}")


def _objective_matrix(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> np.ndarray:
    """(n, m) float matrix in which smaller is better; NaN kept."""
    if not isinstance(objectives, Mapping):
        raise TypeError(f"Got objectives={objectives!r}, expected a mapping like "
                        "{'model_params': 'min', 'ssim_phase': 'max'}")
    if len(objectives) < 2:
        raise ValueError(f"Got {len(objectives)} objective(s) {list(objectives)}, "
                         "expected at least 2")
    cols = []
    for column, direction in objectives.items():
        _require(df, column, "objective")
        if direction not in ("min", "max"):
            raise ValueError(f"Got direction {direction!r} for {column!r}, "
                             "expected 'min' or 'max'")
        if not pd.api.types.is_numeric_dtype(df[column]):
            raise ValueError(f"Got objective {column!r} of dtype {df[column].dtype}, "
                             "expected a numeric column")
        values = df[column].to_numpy(dtype=float)
        cols.append(values if direction == "min" else -values)
    return np.stack(cols, axis=1) if cols else np.empty((len(df), 0))


def _front_2d(F: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, 2) minimisation matrix, O(n log n)."""
    order = np.lexsort((F[:, 1], F[:, 0]))  # by f0, then f1
    f0, f1 = F[order, 0], F[order, 1]
    first = np.r_[True, f0[1:] != f0[:-1]]  # first row of each equal-f0 group
    group = np.cumsum(first) - 1
    gmin = f1[first]  # smallest f1 per group (sorted)
    # A group's best rows survive iff they beat every row with a strictly smaller f0.
    ok = np.r_[True, gmin[1:] < np.minimum.accumulate(gmin)[:-1]]
    on = ok[group] & (f1 == gmin[group])
    out = np.empty(len(F), dtype=bool)
    out[order] = on
    return out


def _front_nd(F: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, m) minimisation matrix, O(n * front size).

    In lexicographic order no row is dominated by a later one, and every
    dominated row is dominated by a front row, so checking the front suffices.
    """
    front: list[int] = []
    for i in np.lexsort(F.T[::-1]):
        P = F[front]
        if not np.any(np.all(P <= F[i], axis=1) & np.any(P < F[i], axis=1)):
            front.append(i)
    out = np.zeros(len(F), dtype=bool)
    out[front] = True
    return out


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> np.ndarray:
    """Mask of the non-dominated rows of ``df``.

    Parameters
    ----------
    df : DataFrame
        One row per run.
    objectives : mapping of str to {"min", "max"}
        Two or more numeric columns and which way is better, e.g.
        ``{"model_params": "min", "ssim_phase": "max"}``.

    Returns
    -------
    ndarray of bool, shape (len(df),)
        True for rows no other row dominates (at least as good everywhere,
        strictly better somewhere). Rows with NaN in an objective (failed
        runs) are never on the front; exact ties are all kept.

    Examples
    --------
    >>> df = pd.DataFrame({"cost": [1, 2, 3], "quality": [0.5, 0.4, 0.9]})
    >>> pareto_front(df, {"cost": "min", "quality": "max"}).tolist()
    [True, False, True]
    """
    F = _objective_matrix(df, objectives)
    valid = np.flatnonzero(~np.isnan(F).any(axis=1))
    mask = np.zeros(len(df), dtype=bool)
    if valid.size == 0:
        return mask
    finder = _front_2d if F.shape[1] == 2 else _front_nd
    mask[valid[finder(F[valid])]] = True
    return mask


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
        _require(df, column, role)
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


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def filter_results(
    df: pd.DataFrame,
    *,
    max_params: float | None = None,
    max_inference_time: float | None = None,
    min_quality: float | None = None,
    quality: str = "ssim_phase",
    architectures: str | Iterable[str] | None = None,
    transforms: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows of a results table that meet every given limit (None: no limit).

    Parameters
    ----------
    df : DataFrame
        Results table (``model_params``, ``inference_time_s``,
        ``architecture``, ``fno_input_transform``, quality columns).
    max_params : float, optional
        Largest ``model_params`` (real numbers) kept.
    max_inference_time : float, optional
        Largest ``inference_time_s`` (s / sample) kept.
    min_quality : float, optional
        Worst acceptable ``quality``: rows at least this good are kept
        (``>=`` for SSIM/PSNR/FRC, ``<=`` for MAE/MSE/losses).
    quality : str
        Column `min_quality` applies to.
    architectures, transforms : str or iterable of str, optional
        Values of ``architecture`` / ``fno_input_transform`` kept.

    Returns
    -------
    DataFrame
        The kept rows, original index. A limit excludes rows with NaN in its column.
    """
    keep = np.ones(len(df), dtype=bool)
    limits = (
        (max_params, "model_params", "max_params"),
        (max_inference_time, "inference_time_s", "max_inference_time"),
    )
    for limit, column, name in limits:
        if limit is not None:
            _require(df, column, f"{name} on column")
            keep &= (df[column] <= limit).to_numpy()
    if min_quality is not None:
        _require(df, quality, "quality")
        better = df[quality] >= min_quality if metric_direction(quality) == "max" \
            else df[quality] <= min_quality
        keep &= better.to_numpy()
    for names, column, name in ((architectures, _ARCH, "architectures"),
                                (transforms, _TRANSFORM, "transforms")):
        if names is not None:
            _require(df, column, f"{name} on column")
            keep &= df[column].astype("string").isin(_names(names)).fillna(False).to_numpy()
    return df[keep]


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


def run_table(
    df: pd.DataFrame, *, qualities: Sequence[str] | None = None, sort_by: str | None = None
) -> pd.DataFrame:
    """The columns to compare runs by, best run first.

    Parameters
    ----------
    df : DataFrame
        Results table.
    qualities : sequence of str, optional
        Quality columns shown; default: phase SSIM, PSNR, MAE, amplitude SSIM
        and the final test loss where measured, else every `quality_columns`.
    sort_by : str, optional
        Column sorted on, best first by `metric_direction` (default: the
        first quality; no sorting when there is none).

    Returns
    -------
    DataFrame
        What tells the runs apart (architecture, transform, modes, width,
        epochs, budget), costs, training samples, the qualities and the
        ``experiment_id`` (the run's folder in ``runs/``), those present.
        A table with none of these known columns keeps all its config and
        measurement columns (no bookkeeping or versions).
    """
    quals = list(qualities) if qualities is not None else (
        [q for q in _TABLE_QUALITIES if q in df.columns] or quality_columns(df))
    known = [*_ID_COLUMNS, "compute_budget", *COSTS, "train_samples", *quals]
    columns = [c for c in dict.fromkeys(known) if c in df.columns]
    if not columns:
        columns = [c for c in df.columns if c not in ("status", *BOOKKEEPING_COLUMNS)
                   and not str(c).startswith("version_")]
    table = df[[*columns, *(["experiment_id"] if "experiment_id" in df.columns else [])]]
    key = sort_by or next(iter(quals), None)
    if key is None or key not in table.columns:
        return table
    return table.sort_values(key, ascending=metric_direction(key) == "min", kind="stable")
