"""The non-dominated set: `pareto_front`, a mask of the runs no other run beats on every objective.

A run is on the front when no other run is at least as good in every
objective and strictly better in one. Pure NumPy on a results table, no
plotting (:mod:`flops_fit.pareto_plot` draws it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from flops_fit.columns import Direction, require_column

__all__ = ["pareto_front"]


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
        require_column(df, column, "objective")
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
