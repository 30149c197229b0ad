"""How many more seeds an IsoFLOP sweep needs for a given precision of its exponent.

Approach 2 (:func:`flops_fit.scaling.fit_isoflop`) fits ``ln N_opt`` against
``ln C`` by least squares over the budgets with an interior minimum, so its
exponent ``a`` (``N_opt ~ C**a``, parameters against FLOPs) is a weighted sum
of the budgets' optima: ``a = sum_b w_b ln N_opt(C_b) + const`` with
``w_b = (x_b - mean x) / sum (x - mean x)**2`` and ``x = ln C``. Each budget
resamples its own runs in the bootstrap, so the budgets' errors are
independent and (delta method)

    Var(a) = sum_b w_b**2 sigma_b**2,

with ``sigma_b`` the bootstrap spread of budget ``b``'s ``ln N_opt`` (from its
``N_opt_lo``, ``N_opt_hi`` interval). Seed noise shrinks ``sigma_b`` as one over
the square root of the runs per size, so repeating budget ``b``'s runs ``m_b``
times over divides its share of the variance by ``m_b``. :func:`seeds_for_width`
finds the ``m_b >= 1`` that reach a target interval width for the least extra
compute time (a Lagrange condition, solved in closed form with the budgets
that need no more runs held at ``m_b = 1``: no library solves this small
convex problem more plainly), and says which budgets limit the exponent.

What it cannot do: a budget whose optimum is off for a reason other than seed
noise (a parabola on an asymmetric curve, a learning rate not tuned per size,
data repeated many times) keeps that error however many seeds it gets; compare
the plan's prediction with the fit after the extra runs.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
sec. 3.2 (Approach 2). Efron & Tibshirani (1993), "An Introduction to the
Bootstrap", ch. 6 and 21 (bootstrap standard errors, the delta method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from flops_fit.checks import check_number
from flops_fit.fit_inputs import column
from flops_fit.fit_result import Result
from flops_fit.laws import log_sigma

__all__ = ["SeedPlan", "allocate_repeats", "seeds_for_width"]


def allocate_repeats(variance: np.ndarray, cost: np.ndarray, target: float) -> np.ndarray:
    """Repeat factors ``m >= 1`` with ``sum(variance / m) <= target`` at the least ``sum(cost * m)``.

    Parameters
    ----------
    variance : ndarray
        Each budget's share of the exponent's variance now (``w_b**2 sigma_b**2``,
        exponent units squared), non-negative.
    cost : ndarray
        What one more repeat of each budget's runs costs (seconds, or runs),
        positive.
    target : float
        The variance to reach, positive.

    Returns
    -------
    ndarray
        ``m_b``: 1 where a budget needs no more runs. With every ``m_b``
        free the optimum is ``m_b = sqrt(lambda variance_b / cost_b)``
        (stationarity of the Lagrangian); budgets that come out below 1 are
        held at 1 and the rest solved again, until none does.
    """
    variance, cost = np.asarray(variance, float), np.asarray(cost, float)
    m = np.ones_like(variance)
    if variance.sum() <= target:
        return m
    free = variance > 0
    while True:
        room = target - variance[~free].sum()  # what the free budgets may still contribute
        root = np.sqrt(variance[free] * cost[free])
        m_free = root.sum() / room * np.sqrt(variance[free] / cost[free])
        low = m_free < 1.0
        if not low.any():
            m[free] = m_free
            return m
        free[np.flatnonzero(free)[low]] = False


@dataclass(frozen=True, eq=False)
class SeedPlan:
    """The cheapest repeats of an IsoFLOP sweep's budgets that narrow its exponent's interval.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per budget used by the fit: ``budget`` (FLOPs), ``runs``,
        ``sizes``, ``seeds`` (runs per size now), ``sigma_ln_N_opt`` (the
        bootstrap spread of ``ln N_opt``), ``weight`` (``w_b``),
        ``variance_share`` (its share of ``Var(a)`` now), ``seconds`` (the
        compute time of its runs now, summed over runs), ``repeat`` (``m_b``),
        ``seeds_needed`` (runs per size after), ``extra_runs``,
        ``extra_seconds``.
    width_bootstrap : float
        Width of the fit's own bootstrap interval of ``a``.
    width_model : float
        The same width from the variance model (read the plan against how
        close it is to ``width_bootstrap``).
    width_planned : float
        The model's width after the plan (with whole seeds).
    target_width : float
        The width asked for.
    ci_level : float
        Coverage of the intervals.
    cost_unit : str
        ``"seconds"`` (the runs' recorded time) or ``"runs"`` (when the runs
        recorded no time, every run costs the same).
    """

    table: pd.DataFrame
    width_bootstrap: float
    width_model: float
    width_planned: float
    target_width: float
    ci_level: float
    cost_unit: str

    @property
    def extra_runs(self) -> int:
        """Runs to add over all budgets."""
        return int(self.table["extra_runs"].sum())

    @property
    def extra_seconds(self) -> float:
        """Compute time of the added runs, summed over runs (divide by the workers for wall time)."""
        return float(self.table["extra_seconds"].sum())

    def summary(self) -> str:
        """Three sentences, one a line: the interval now, what limits it, and what the plan adds."""
        level = f"{self.ci_level:.0%}"
        text = (f"The {level} interval of a is {self.width_bootstrap:.2f} wide (bootstrap; the variance "
                f"model gives {self.width_model:.2f}).\n")
        top = self.table.sort_values("variance_share", ascending=False).iloc[0]
        text += (f"The budget {top['budget']:.2g} FLOPs holds {top['variance_share']:.0%} of its "
                 f"variance (one standard deviation of its optimum: a factor "
                 f"{math.exp(top['sigma_ln_N_opt']):.2g} in parameters).\n")
        if self.extra_runs == 0:
            return text + f"It is already at most {self.target_width:.2f} wide in the model: no run to add."
        time = (f"{self.extra_seconds / 3600:.1f} h of compute (one worker; divide by the workers)"
                if self.cost_unit == "seconds" else "time not recorded")
        return text + (f"To reach {self.target_width:.2f}: {self.extra_runs} more runs, {time}, "
                       f"for a planned width of {self.width_planned:.2f} if seed noise is all that "
                       "limits it.")


def seeds_for_width(
    fit: Result,
    runs: pd.DataFrame,
    target_width: float,
    *,
    budget: str = "compute_budget",
    size: str = "model_params",
    time: str | None = "wall_time_s",
) -> SeedPlan:
    """Seeds per budget that bring Approach 2's exponent ``a`` to a target interval width.

    Parameters
    ----------
    fit : Result
        :func:`~flops_fit.scaling.fit_isoflop` of ``runs``, with a bootstrap.
    runs : pandas.DataFrame
        The runs it fitted (one row each; rows with a ``status`` other than
        "ok" are ignored).
    target_width : float
        Width of the interval of ``a`` to reach (exponent units, e.g. 0.3),
        at the fit's ``ci_level``.
    budget, size : str
        Columns of compute budget (FLOPs) and model size (parameters), as
        given to the fit.
    time : str or None
        Column of each run's compute time (seconds); None, or a column the
        runs lack, costs every run the same.

    Returns
    -------
    SeedPlan
        Per budget the seeds now, its share of the variance, and the seeds
        needed; the widths now and after.
    """
    if fit.method != "isoflop" or fit.budgets is None:
        raise ValueError(f"Got a fit with method={fit.method!r}, expected one from fit_isoflop")
    if fit.n_bootstrap == 0:
        raise ValueError("Got a fit with n_bootstrap=0, expected bootstrap resamples (n_bootstrap > 0)")
    check_number("target_width", target_width, allowed="a positive number", test=lambda v: v > 0)
    ok = runs if "status" not in runs.columns else runs[runs["status"] == "ok"]
    C, N = column(ok, "budget", budget), column(ok, "size", size)
    seconds = column(ok, "time", time) if time is not None and time in ok.columns else None
    used = fit.budgets[fit.budgets["interior"]]
    z = float(norm.ppf(0.5 + fit.ci_level / 2))
    x = np.log(used["budget"].to_numpy(float))
    weight = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    sigma = log_sigma(used["N_opt_lo"], used["N_opt_hi"], fit.ci_level)
    rows = []
    for c in used["budget"].to_numpy(float):
        mine = np.isclose(C, c, rtol=1e-9)
        n_runs, n_sizes = int(mine.sum()), int(np.unique(N[mine]).size)
        spent = float(np.nansum(seconds[mine])) if seconds is not None else np.nan
        rows.append({"budget": c, "runs": n_runs, "sizes": n_sizes, "seeds": n_runs / max(n_sizes, 1),
                     "seconds": spent})
    table = pd.DataFrame(rows)
    if not np.isfinite(sigma).all() or (table["runs"] == 0).any():
        raise ValueError(
            f"Got budgets {used['budget'].tolist()} without a bootstrap interval of N_opt or without "
            f"runs in `runs`, expected the runs the fit was made from"
        )
    variance = weight**2 * sigma**2
    z_width = 2 * z
    cost = table["seconds"] if seconds is not None else table["runs"]  # what one more repeat costs
    repeat = allocate_repeats(variance, cost.to_numpy(float), (target_width / z_width) ** 2)
    seeds_needed = np.ceil(table["seeds"].to_numpy() * repeat - 1e-9)
    actual = seeds_needed / table["seeds"].to_numpy()
    table["sigma_ln_N_opt"], table["weight"] = sigma, weight
    table["variance_share"] = variance / variance.sum()
    table["repeat"], table["seeds_needed"] = actual, seeds_needed.astype(int)
    table["extra_runs"] = np.round((actual - 1) * table["runs"]).astype(int)
    table["extra_seconds"] = (actual - 1) * table["seconds"]
    lo, hi = fit.ci["a"]
    return SeedPlan(
        table=table, width_bootstrap=float(hi - lo), width_model=float(z_width * np.sqrt(variance.sum())),
        width_planned=float(z_width * np.sqrt((variance / actual).sum())), target_width=float(target_width),
        ci_level=fit.ci_level, cost_unit="seconds" if seconds is not None else "runs",
    )
