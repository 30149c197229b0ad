"""Pareto fronts of quality against cost: the non-dominated set, a plot, filters.

A run is on the front when no other run is at least as good in every
objective and strictly better in one. `pareto_front` finds it, `plot_pareto`
draws it (this is ``pareto_plot.png``), `filter_results` narrows a results
table, and `cost_columns` / `quality_columns` / `pareto_pairs` say which
fronts a table allows, and `run_table` lists the runs best first. The
interactive explorer built on them is :mod:`flops_fit.explorer`.

The public face of the analysis stage; the work is split by job:
:mod:`flops_fit.columns` (what a results column is), :mod:`flops_fit.front`
(the non-dominated set), :mod:`flops_fit.pareto_plot` (the figures). Their
public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from flops_fit.columns import (
    COSTS,
    ID_COLUMNS,
    LABELS,
    TABLE_QUALITIES,
    axis_label,
    category_columns,
    cost_columns,
    finite_rows,
    metric_direction,
    pareto_pairs,
    quality_columns,
    require_column,
)
from flops_fit.front import pareto_front
from flops_fit.pareto_plot import plot_fronts, plot_pareto
from flops_fit.records import BOOKKEEPING_COLUMNS

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

# The study's categorical columns filter_results narrows by.
_ARCH, _TRANSFORM = "architecture", "fno_input_transform"


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
            require_column(df, column, f"{name} on column")
            keep &= (df[column] <= limit).to_numpy()
    if min_quality is not None:
        require_column(df, quality, "quality")
        better = df[quality] >= min_quality if metric_direction(quality) == "max" \
            else df[quality] <= min_quality
        keep &= better.to_numpy()
    for names, column, name in ((architectures, _ARCH, "architectures"),
                                (transforms, _TRANSFORM, "transforms")):
        if names is not None:
            require_column(df, column, f"{name} on column")
            keep &= df[column].astype("string").isin(_names(names)).fillna(False).to_numpy()
    return df[keep]


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
        [q for q in TABLE_QUALITIES if q in df.columns] or quality_columns(df))
    known = [*ID_COLUMNS, "compute_budget", *COSTS, "train_samples", *quals]
    columns = [c for c in dict.fromkeys(known) if c in df.columns]
    if not columns:
        columns = [c for c in df.columns if c not in ("status", *BOOKKEEPING_COLUMNS)
                   and not str(c).startswith("version_")]
    table = df[[*columns, *(["experiment_id"] if "experiment_id" in df.columns else [])]]
    key = sort_by or next(iter(quals), None)
    if key is None or key not in table.columns:
        return table
    return table.sort_values(key, ascending=metric_direction(key) == "min", kind="stable")
