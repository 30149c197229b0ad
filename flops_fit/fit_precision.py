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

from flops_fit.checks import check_int, check_number
from flops_fit.fit_inputs import column
from flops_fit.fit_result import Result
from flops_fit.laws import log_sigma, two_sided_z

__all__ = ["BudgetPlan", "SeedPlan", "allocate_repeats", "plan_new_budget", "seeds_for_width"]


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
        ``seeds_needed`` (runs per size after; ``seeds`` unchanged, fractional
        where sizes have different seeds, for a budget the plan does not add
        to), ``extra_runs``,
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


def _slope_weights(ln_budgets: np.ndarray) -> np.ndarray:
    """``w_b`` with ``a = sum_b w_b ln N_opt(C_b) + const``: least-squares slope weights over ``ln C``."""
    centred = ln_budgets - ln_budgets.mean()
    return centred / (centred**2).sum()


def _model_width(weight: np.ndarray, sigma: np.ndarray, ci_level: float) -> float:
    """Width of the ``ci_level`` interval of ``a`` from ``Var(a) = sum w_b**2 sigma_b**2`` (normal)."""
    return 2 * two_sided_z(ci_level) * math.sqrt(float((weight**2 * sigma**2).sum()))


def _budget_table(fit: Result, runs: pd.DataFrame, budget: str, size: str,
                  time: str | None) -> tuple[pd.DataFrame, bool]:
    """Per budget the fit used: runs, sizes, seeds, seconds, ``sigma_ln_N_opt`` and ``weight``; and whether timed."""
    if fit.method != "isoflop" or fit.budgets is None:
        raise ValueError(f"Got a fit with method={fit.method!r}, expected one from fit_isoflop")
    if fit.n_bootstrap == 0:
        raise ValueError("Got a fit with n_bootstrap=0, expected bootstrap resamples (n_bootstrap > 0)")
    ok = runs if "status" not in runs.columns else runs[runs["status"] == "ok"]
    C, N = column(ok, "budget", budget), column(ok, "size", size)
    seconds = column(ok, "time", time) if time is not None and time in ok.columns else None
    used = fit.budgets[fit.budgets["interior"]]
    rows = []
    for c in used["budget"].to_numpy(float):
        mine = np.isclose(C, c, rtol=1e-9)
        n_runs, n_sizes = int(mine.sum()), int(np.unique(N[mine]).size)
        spent = float(np.nansum(seconds[mine])) if seconds is not None else np.nan
        rows.append({"budget": c, "runs": n_runs, "sizes": n_sizes, "seeds": n_runs / max(n_sizes, 1),
                     "seconds": spent})
    table = pd.DataFrame(rows)
    sigma = log_sigma(used["N_opt_lo"], used["N_opt_hi"], fit.ci_level)
    if not np.isfinite(sigma).all() or (table["runs"] == 0).any():
        raise ValueError(
            f"Got budgets {used['budget'].tolist()} without a bootstrap interval of N_opt or without "
            f"runs in `runs`, expected the runs the fit was made from"
        )
    table["sigma_ln_N_opt"], table["weight"] = sigma, _slope_weights(np.log(table["budget"].to_numpy(float)))
    return table, seconds is not None


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
    check_number("target_width", target_width, allowed="a positive number", test=lambda v: v > 0)
    table, timed = _budget_table(fit, runs, budget, size, time)
    weight, sigma = table["weight"].to_numpy(), table["sigma_ln_N_opt"].to_numpy()
    variance = weight**2 * sigma**2
    z_width = 2 * two_sided_z(fit.ci_level)
    cost = table["seconds"] if timed else table["runs"]  # what one more repeat costs
    repeat = allocate_repeats(variance, cost.to_numpy(float), (target_width / z_width) ** 2)
    seeds = table["seeds"].to_numpy()  # mean seeds per size: fractional where sizes differ
    # Round up only where seeds are added: a budget the plan leaves alone keeps its runs.
    seeds_needed = np.where(repeat > 1 + 1e-9, np.ceil(seeds * repeat - 1e-9), seeds)
    actual = seeds_needed / seeds
    table["variance_share"] = variance / variance.sum()
    table["repeat"], table["seeds_needed"] = actual, seeds_needed
    table["extra_runs"] = np.round((actual - 1) * table["runs"]).astype(int)
    table["extra_seconds"] = (actual - 1) * table["seconds"]
    lo, hi = fit.ci["a"]
    return SeedPlan(
        table=table, width_bootstrap=float(hi - lo), width_model=_model_width(weight, sigma, fit.ci_level),
        width_planned=_model_width(weight, sigma / np.sqrt(actual), fit.ci_level), target_width=float(target_width),
        ci_level=fit.ci_level, cost_unit="seconds" if timed else "runs",
    )


@dataclass(frozen=True)
class BudgetPlan:
    """What one more budget would do to Approach 2's exponent: its interval width before and after.

    Attributes
    ----------
    budget : float
        The new budget (FLOPs).
    seeds : int
        Runs per size planned there.
    like : float
        The fitted budget whose precision per seed and time per seed are borrowed (FLOPs).
    sigma_ln_N_opt : float
        Assumed spread of the new budget's ``ln N_opt``:
        ``like``'s times ``sqrt(seeds at like / seeds)``.
    width_model, width_planned : float
        Interval width of ``a`` from the variance model, now and with the new budget.
    seconds : float
        Estimated compute time of its runs (summed over runs; NaN when the runs
        recorded no time).
    ci_level : float
        Coverage of the intervals.
    """

    budget: float
    seeds: int
    like: float
    sigma_ln_N_opt: float
    width_model: float
    width_planned: float
    seconds: float
    ci_level: float

    def summary(self) -> str:
        """One sentence: the new budget, what it would do to the interval, and its cost."""
        cost = ("time not recorded" if not math.isfinite(self.seconds) else
                f"about {self.seconds / 3600:.1f} h of compute (one worker; divide by the workers)")
        return (f"A budget of {self.budget:.2g} FLOPs with {self.seeds} seed(s) per size, pinning its optimum "
                f"as {self.like:.2g} does per seed, would take the {self.ci_level:.0%} interval of a from "
                f"{self.width_model:.2f} to {self.width_planned:.2f} wide (variance model), for {cost}.")


def plan_new_budget(
    fit: Result,
    runs: pd.DataFrame,
    new_budget: float,
    seeds: int | None = None,
    *,
    like: float | None = None,
    budget: str = "compute_budget",
    size: str = "model_params",
    time: str | None = "wall_time_s",
) -> BudgetPlan:
    """Approach 2's exponent interval with one more budget, the alternative to more seeds.

    The exponent is a least-squares slope in ``ln C``: a budget beyond the
    fitted range lengthens the lever arm and lowers the weight of every other
    budget, which more seeds at the old budgets cannot do (and a flat curve
    does not narrow with seeds at all; see `seeds_for_width`). The new
    budget's optimum is assumed as well pinned per seed as ``like``'s (its
    ``sigma_ln_N_opt`` times ``sqrt(seeds_like / seeds)``), and it costs
    ``like``'s time per seed times ``new_budget / like`` (every size trains on
    the FLOPs its budget buys, at ``like``'s throughput; a CPU runs the larger
    models of a larger budget faster per FLOP, so this errs high above
    ``like``). Both are guesses to check against the budget once run.

    Parameters
    ----------
    fit, runs, budget, size, time
        As for `seeds_for_width`.
    new_budget : float
        Training compute of the budget to add (FLOPs), not one the fit used.
    seeds : int, optional
        Runs per size planned at it, at least 1; default as many as ``like``
        has (rounded up).
    like : float, optional
        A budget the fit used, to borrow from; default the one nearest
        ``new_budget`` in ``ln C``.

    Returns
    -------
    BudgetPlan
    """
    table, timed = _budget_table(fit, runs, budget, size, time)
    fitted = table["budget"].to_numpy(float)
    check_number("new_budget", new_budget, allowed="a positive number of FLOPs not fitted yet",
                 test=lambda v: v > 0 and not np.isclose(fitted, v, rtol=1e-9).any())
    if seeds is not None:
        check_int("seeds", seeds, minimum=1)
    if like is None:
        like = float(fitted[np.argmin(np.abs(np.log(fitted) - math.log(new_budget)))])
    mine = np.isclose(fitted, like, rtol=1e-9) if isinstance(like, int | float) else np.zeros(0, bool)
    if not mine.any():
        raise ValueError(f"Got like={like!r}, expected one of the fitted budgets {fitted.tolist()}")
    ref = table[mine].iloc[0]
    seeds = math.ceil(ref["seeds"] - 1e-9) if seeds is None else seeds
    sigma_new = float(ref["sigma_ln_N_opt"] * math.sqrt(ref["seeds"] / seeds))
    weight = _slope_weights(np.log(np.append(fitted, new_budget)))
    sigma = np.append(table["sigma_ln_N_opt"].to_numpy(), sigma_new)
    seconds = float(ref["seconds"] / ref["seeds"] * seeds * new_budget / ref["budget"]) if timed else math.nan
    return BudgetPlan(budget=float(new_budget), seeds=int(seeds), like=float(ref["budget"]),
                      sigma_ln_N_opt=sigma_new,
                      width_model=_model_width(table["weight"].to_numpy(), table["sigma_ln_N_opt"].to_numpy(),
                                               fit.ci_level),
                      width_planned=_model_width(weight, sigma, fit.ci_level),
                      seconds=seconds, ci_level=fit.ci_level)
