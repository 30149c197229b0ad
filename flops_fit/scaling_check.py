"""Checks of a scaling-law fit: Approach 2 against Approach 3, beside Approach 2's own bias.

`compare_approaches` fits the same runs with Approach 2
(`flops_fit.scaling.fit_isoflop`: parabolas per budget) and with Approach 3
(`flops_fit.scaling.fit_parametric`: the surface ``E + A/N**alpha + B/D**beta``)
and tables both frontier exponents with their bootstrap intervals, beside the
bias of Approach 2 for this sweep's sampling (`isoflop_bias`, from
:mod:`flops_fit.fit_bias`, re-exported here). Units: compute in FLOPs, size in
parameters, data in training samples.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
sec. 3 (Approaches 2 and 3). Open Athena (2026), "Problems with Chinchilla
Approach 2", github.com/Open-Athena/scaling-law-analysis.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from flops_fit.fit_bias import (
    CHINCHILLA,
    FlopsLaw,
    IsoFLOPBias,
    isoflop_bias,
    optimum,
    slope,
    sweep_runs,
)
from flops_fit.fit_inputs import check_min_p_interior, check_options, column
from flops_fit.fit_result import Result
from flops_fit.laws import estimate_flops_per_sample_per_param
from flops_fit.scaling import fit_isoflop, fit_parametric

NAN2 = (np.nan, np.nan)  # an interval that is not there
BIAS_ROWS = {
    "isoflop": "Approach 2 (parabolas per budget)",
    "parametric": "Approach 3 (parametric surface)",
    "bias": "Approach 2 bias (recovered - true, noise-free)",
}

__all__ = [
    "CHINCHILLA",
    "ApproachComparison",
    "IsoFLOPBias",
    "compare_approaches",
    "floor_check",
    "isoflop_bias",
]


@dataclass(frozen=True, eq=False)
class ApproachComparison:
    """Approach 2 and Approach 3 fitted to the same runs, and Approach 2's bias.

    Attributes
    ----------
    isoflop, parametric : Result or None
        The two fits (None where it failed: see `reasons`).
    bias : IsoFLOPBias or None
        `isoflop_bias` over the budgets Approach 2 used.
    frontier : dict
        Approach 3's frontier exponents ``a``, ``b`` under the runs' FLOPs
        law, with ``(low, high)`` intervals in ``frontier_ci``.
    reasons : dict
        Why a fit or the bias check is missing, by ``"isoflop"``,
        ``"parametric"``, ``"bias"``.
    notes : list of str
        The fits' warnings, kept here instead of shown a second time.
    """

    isoflop: Result | None
    parametric: Result | None
    bias: IsoFLOPBias | None
    frontier: dict[str, float]
    frontier_ci: dict[str, tuple[float, float]]
    flops_per_sample_per_param: tuple[float, float]
    ci_level: float = 0.95
    reasons: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """One row per approach and one for the bias: ``a``, ``b`` with intervals, and a note.

        ``a`` is the exponent of ``N_opt ~ C**a`` (parameters), ``b`` that of
        ``D_opt ~ C**b`` (samples); on the bias row they are recovered minus
        true, without intervals. A missing fit is a row of NaN whose note says
        why.
        """
        rows = [self._isoflop_row(), self._parametric_row(), self._bias_row()]
        return pd.DataFrame(rows, index=pd.Index(list(BIAS_ROWS.values()), name="fit"))

    @staticmethod
    def _row(a, a_ci, b, b_ci, note: str) -> dict:
        return {"a": a, "a_low": a_ci[0], "a_high": a_ci[1],
                "b": b, "b_low": b_ci[0], "b_high": b_ci[1], "note": note}

    def _missing(self, name: str) -> dict:
        return self._row(np.nan, NAN2, np.nan, NAN2, f"not available: {self.reasons[name]}")

    def _isoflop_row(self) -> dict:
        if self.isoflop is None:
            return self._missing("isoflop")
        fit, budgets = self.isoflop, self.isoflop.budgets
        kept = budgets.loc[budgets["interior"], "budget"]
        return self._row(fit.params["a"], fit.ci["a"], fit.params["b"], fit.ci["b"],
                         f"power laws over {len(kept)} of {len(budgets)} budgets "
                         f"({', '.join(f'{c:.2g}' for c in kept)} FLOPs)")

    def _parametric_row(self) -> dict:
        if self.parametric is None:
            return self._missing("parametric")
        p = self.parametric.params
        note = f"alpha={p['alpha']:.3g}, beta={p['beta']:.3g}, E={p['E']:.3g}"
        k_lo, k_hi = self.flops_per_sample_per_param
        if not np.isclose(k_lo, k_hi, rtol=1e-3):
            note += (f"; FLOPs/param/sample {k_lo:.3g} to {k_hi:.3g} over the sizes "
                     f"(with a constant k: a={self.parametric.exponents['a']:.3f})")
        if "parametric" in self.reasons:
            note += f"; {self.reasons['parametric']}"
        return self._row(self.frontier["a"], self.frontier_ci["a"], self.frontier["b"],
                         self.frontier_ci["b"], note)

    def _bias_row(self) -> dict:
        if self.bias is None:
            return self._missing("bias")
        bias, rel = self.bias, self.bias.summary()["rel_bias"]
        note = (f"truth: {bias.truth_source}; a {bias.a_true:.3f} -> {bias.a_fit:.3f} "
                f"({rel['a']:+.1%}), b {bias.b_true:.3f} -> {bias.b_fit:.3f} ({rel['b']:+.1%})")
        if bias.flops_law_residual > 0.01:
            note += (f"; runs up to {bias.flops_law_residual:.1%} off a smooth FLOPs law k(N): "
                     "the truth is approximate")
        return self._row(bias.a_bias, NAN2, bias.b_bias, NAN2, note)

    def __repr__(self) -> str:
        with pd.option_context("display.width", 250, "display.max_columns", None,
                               "display.max_colwidth", 120):
            return f"ApproachComparison ({self.ci_level:.0%} intervals)\n{self.summary()}"


def _frontier(fit: Result, law: FlopsLaw, lnC: np.ndarray, ci_level: float):
    """Exponents ``a``, ``b`` of a parametric fit's optimum along ``law`` over budgets ``lnC``.

    Returns ``(point, intervals, reason)``: ``reason`` says why the point is
    NaN (one budget, or no optimum on the surface), else it is empty.
    """
    point, ci = {"a": np.nan, "b": np.nan}, {"a": (np.nan,) * 2, "b": (np.nan,) * 2}
    if lnC.size < 2:
        return point, ci, f"a frontier needs at least 2 budgets, got {lnC.size}"
    p = fit.params
    ln_n, ln_d = optimum(lnC, law, A=p["A"], B=p["B"], alpha=p["alpha"],
                          beta=p["beta"])
    point = {"a": float(slope(lnC, ln_n)), "b": float(slope(lnC, ln_d))}
    if fit.bootstrap:
        boot = {k: np.asarray(v, float)[:, None] for k, v in fit.bootstrap.items()}  # (R, 1)
        ln_n, ln_d = optimum(lnC, law, A=boot["A"], B=boot["B"],
                              alpha=boot["alpha"], beta=boot["beta"])  # (R, budgets)
        tail = 50.0 * (1.0 - ci_level)
        for name, ly in (("a", ln_n), ("b", ln_d)):
            slopes = slope(lnC, ly)
            slopes = slopes[np.isfinite(slopes)]  # resamples without an optimum drop out
            if slopes.size:
                lo, hi = np.percentile(slopes, [tail, 100.0 - tail])
                ci[name] = (float(lo), float(hi))
    if not np.isfinite(point["a"]):
        return point, ci, (f"no compute-optimal size on the fitted surface within 100x of the "
                           f"sampled sizes (alpha={p['alpha']:.3g}, beta={p['beta']:.3g})")
    return point, ci, ""


def compare_approaches(
    df: pd.DataFrame,
    *,
    budget: str = "compute_budget",
    size: str = "model_params",
    loss: str = "final_test_loss",
    data: str | None = "train_samples",
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    truth: Literal["parametric", "chinchilla"] | Mapping[str, float] = "parametric",
    flops_per_sample_per_param: float = 6.0,
    min_p_interior: float = 0.0,
) -> ApproachComparison:
    """Fit the same runs with Approach 2 and Approach 3; table both frontiers and Approach 2's bias.

    Approach 2 is `fit_isoflop` with these options (the same numbers as a
    direct call with the same seed). Approach 3 is `fit_parametric` on the
    runs ``(N, D, loss)``; its frontier is the minimum of the fitted surface
    along the runs' FLOPs law ``C = k(N) N D`` at the sweep's budgets, so both
    rows answer the same question (with a constant ``k`` it is
    ``a = beta / (alpha + beta)``). The bias row is `isoflop_bias` over the
    budgets Approach 2 kept, with the surface chosen by ``truth``.

    A fit that cannot be made (Approach 2 with fewer than 2 interior budgets,
    Approach 3 with fewer than 6 runs, the bias check without a usable
    surface) is a row of NaN whose note says why; the other rows stand.

    Parameters
    ----------
    df : DataFrame
        One row per run (see `fit_isoflop`).
    budget, size, loss, data : str
        Columns: compute budget (FLOPs), parameters, the loss to minimise,
        training samples (None: ``D = C / (flops_per_sample_per_param N)``).
    n_bootstrap, seed, ci_level : int, int, float
        Bootstrap resamples of both fits (0: no intervals), their seed and
        the intervals' coverage.
    truth : {"parametric", "chinchilla"} or mapping
        Surface of the bias check: the Approach 3 fit of these runs (default:
        the bias of this sweep's sizes under the surface its runs imply), the
        Chinchilla fit, or a mapping ``E, A, B, alpha, beta``.
    flops_per_sample_per_param : float
        ``k``, only used when ``data`` is None.
    min_p_interior : float
        Approach 2 leaves out budgets whose optimum is resolved in fewer
        bootstrap resamples than this (see `fit_isoflop`); the Approach 3
        frontier and the bias check then use the same budgets.

    Returns
    -------
    ApproachComparison
        ``.summary()`` is the table; ``.isoflop``, ``.parametric``, ``.bias``
        hold the fits.

    References
    ----------
    Hoffmann et al. (2022), sec. 3.2-3.3; Besiroglu et al. (2024), "Chinchilla
    Scaling: A replication attempt"; Open Athena (2026), "Problems with
    Chinchilla Approach 2".
    """
    if isinstance(truth, str) and truth not in ("parametric", "chinchilla"):
        raise ValueError(f"Got truth={truth!r}, expected one of ['parametric', 'chinchilla'] "
                         "or a mapping of E, A, B, alpha, beta")
    check_options(n_bootstrap, ci_level, flops_per_sample_per_param)
    check_min_p_interior(min_p_interior, n_bootstrap)  # a bad value raises, not a NaN row
    C, N, D, L = sweep_runs(df, budget=budget, size=size, data=data, loss=loss,
                       k=flops_per_sample_per_param)
    if isinstance(df, Mapping):
        df = pd.DataFrame(dict(df))
    reasons: dict[str, str] = {}
    notes: list[str] = []

    def attempt(name, call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                out = call()
            except ValueError as err:
                reasons[name], out = str(err), None
        notes.extend(f"{name}: {w.message}" for w in caught)
        return out

    isoflop = attempt("isoflop", lambda: fit_isoflop(
        df, budget=budget, size=size, loss=loss, data=data, n_bootstrap=n_bootstrap, seed=seed,
        ci_level=ci_level, flops_per_sample_per_param=flops_per_sample_per_param,
        min_p_interior=min_p_interior))
    parametric = attempt("parametric", lambda: fit_parametric(
        N, D, L, budget=C, n_bootstrap=n_bootstrap, seed=seed, ci_level=ci_level,
        flops_per_sample_per_param=estimate_flops_per_sample_per_param(C, N, D)))

    law = FlopsLaw.fit(C, N, D)
    # Both frontiers over the budgets Approach 2 kept (all, without it): the same slope.
    kept = np.unique(C) if isoflop is None else isoflop.budgets.loc[
        isoflop.budgets["interior"], "budget"].to_numpy(float)
    frontier, frontier_ci = {"a": np.nan, "b": np.nan}, {"a": (np.nan,) * 2, "b": (np.nan,) * 2}
    if parametric is not None:
        frontier, frontier_ci, reason = _frontier(parametric, law, np.log(kept), ci_level)
        if reason:
            reasons["parametric"] = reason

    bias = None
    if isinstance(truth, str):  # None: isoflop_bias's Chinchilla surface
        surface = parametric if truth == "parametric" else None
    else:
        surface = truth
    if truth == "parametric" and parametric is None:
        reasons["bias"] = "no Approach 3 fit to take as the truth; pass truth='chinchilla'"
    else:
        try:
            bias = isoflop_bias(df, truth=surface, budget=budget, size=size, data=data, loss=loss,
                                budgets=None if isoflop is None else kept,
                                flops_per_sample_per_param=flops_per_sample_per_param)
        except ValueError as err:
            reasons["bias"] = str(err)
    return ApproachComparison(
        isoflop=isoflop, parametric=parametric, bias=bias, frontier=frontier,
        frontier_ci=frontier_ci, flops_per_sample_per_param=law.k_range,
        ci_level=ci_level, reasons=reasons, notes=notes,
    )


def floor_check(runs: pd.DataFrame, *, floor: float, budget: str = "compute_budget",
                loss: str = "final_test_loss") -> pd.DataFrame:
    """Per budget, how many runs beat a learn-nothing floor's loss.

    A budget at which most sizes have not left the floor (the loss of
    predicting the mean training target) measures optimisation noise, not a
    trade-off of size against data: its IsoFLOP minimum says nothing about the
    compute-optimal size, and a frontier fitted through it is bent by it.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run, with ``budget`` and ``loss`` columns.
    floor : float
        The floor's loss, in the units of ``loss`` (for the FNO study, the
        mean patch's ``final_test_loss`` in ``baseline.json``).
    budget, loss : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per budget, ascending: ``runs``, ``below_floor`` (runs whose
        loss is below ``floor``), ``share_below`` and ``mean_margin`` (mean
        over runs of ``floor - loss``; positive: better than the floor).
    """
    if not isinstance(floor, int | float) or isinstance(floor, bool) or not np.isfinite(floor):
        raise ValueError(f"Got floor={floor!r}, expected a finite loss")
    table = pd.DataFrame({budget: column(runs, "budget", budget), loss: column(runs, "loss", loss)}).dropna()
    grouped = table.groupby(budget)[loss]
    out = pd.DataFrame({
        "runs": grouped.size(),
        "below_floor": grouped.apply(lambda x: int((x < floor).sum())),
        "mean_margin": floor - grouped.mean(),
    })
    out.insert(2, "share_below", out["below_floor"] / out["runs"])
    return out.rename_axis(budget).reset_index()
