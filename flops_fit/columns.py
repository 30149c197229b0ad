"""What the columns of a results table are: costs, qualities, what tells runs apart.

Their axis labels with units (`LABELS`), which way is better
(`metric_direction`), which a table measured (`cost_columns`,
`quality_columns`, `category_columns`) and which (cost, quality) fronts it
can draw (`pareto_pairs`). Pure functions of a DataFrame, no plotting: the
vocabulary :mod:`flops_fit.front`, :mod:`flops_fit.pareto` and
:mod:`flops_fit.explorer` share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "COSTS",
    "ID_COLUMNS",
    "LABELS",
    "TABLE_QUALITIES",
    "Direction",
    "axis_label",
    "category_columns",
    "cost_columns",
    "finite_rows",
    "has_values",
    "metric_direction",
    "pareto_pairs",
    "quality_columns",
    "require_column",
]

Direction = Literal["min", "max"]

# Axis labels with units for the results-table columns.
LABELS = {
    "model_params": "parameters (real numbers)",
    "inference_time_s": "inference time (s / sample)",
    "train_flops": "training FLOPs",
    "flops_per_sample": "forward FLOPs per sample",
    "train_time_s": "training time (s)",
    "trained_together": "seeds trained together (one stacked model)",
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
_NOT_QUALITY = (*COSTS, "flops_per_sample", "train_time_s", "trained_together", "compute_budget", "train_samples")
# The qualities a results table shows first, when measured.
TABLE_QUALITIES = ("ssim_phase", "psnr_phase", "mae_phase", "ssim_amp", "final_test_loss")
# Columns that tell the study's runs apart (also what points are coloured by).
ID_COLUMNS = ("architecture", "fno_input_transform", "fno_modes", "fno_width", "epochs")


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


def has_values(df: pd.DataFrame, column: str) -> bool:
    """A numeric column of ``df`` with at least one finite value."""
    return (column in df.columns and pd.api.types.is_numeric_dtype(df[column])
            and bool(np.isfinite(df[column].to_numpy(float)).any()))


def cost_columns(df: pd.DataFrame) -> list[str]:
    """The costs of `COSTS` that ``df`` measured (numeric, a finite value somewhere)."""
    return [c for c in COSTS if has_values(df, c)]


def quality_columns(df: pd.DataFrame) -> list[str]:
    """Measured qualities of ``df``: the known metrics first (in `LABELS` order),
    then any other numeric column whose name gives a direction (``final_loss``).

    Costs and sizes (`COSTS`, FLOPs, budgets, samples) are left out, and so is
    a column with no finite value (a metric every run failed to record).
    """
    known = [c for c in LABELS if c not in _NOT_QUALITY]
    other = [c for c in df.columns if c not in LABELS and str(c).startswith(_QUALITY_PREFIXES)]
    return [c for c in (*known, *other) if has_values(df, c)]


def category_columns(df: pd.DataFrame) -> list[str]:
    """Columns that tell runs apart, to colour points by: the study's
    architecture, input transform, modes, width and epochs, and the budget of
    an IsoFLOP sweep; those with at least one value."""
    return [c for c in (*ID_COLUMNS, "compute_budget")
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
    cost = [c for c in costs if has_values(df, c)] or cost_columns(df)
    quality = [q for q in qualities if has_values(df, q)] or quality_columns(df)
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


def require_column(df: pd.DataFrame, column: str, role: str) -> None:
    if column not in df.columns:
        raise ValueError(f"Got {role}={column!r}, expected a column of df: {list(df.columns)}")
