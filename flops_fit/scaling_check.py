"""Checks of a scaling-law fit: Approach 2's bias on a noise-free surface, and Approach 2 against 3.

Approach 2 (`flops_fit.scaling.fit_isoflop`: a parabola of loss in ``ln N``
per budget, then power laws across budgets) is biased even on data without
noise, because an IsoFLOP curve is not a parabola and a sweep rarely samples
its sizes symmetrically around each budget's optimum. `isoflop_bias` measures
that bias for one sweep's sampling: it puts a known loss surface
``L = E + A / N**alpha + B / D**beta`` at the sweep's budgets and sizes, fits
it with `fit_isoflop`, and compares the recovered frontier with the surface's
true one. `compare_approaches` fits the same runs with Approach 2 and with
Approach 3 (`flops_fit.scaling.fit_parametric`) and tables both frontier
exponents with their bootstrap intervals beside that bias.

Units: compute ``C`` in FLOPs, size ``N`` in parameters, data ``D`` in
training samples. The sweep's own FLOPs law is used throughout:
``C = k(N) N D`` with ``k(N)`` the training FLOPs per parameter per sample,
fitted to the runs as ``ln k = poly2(ln N)``. For a dense transformer
``k = 6``; for an FNO ``k = 3 f(N) / N`` (``f``: forward FLOPs per sample)
falls as the width grows, which moves the compute-optimal frontier (with
``k ~ N**gamma`` the exponent is ``a = beta / (alpha + beta (1 + gamma))``
instead of ``beta / (alpha + beta)``).

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
sec. 3 and eq. 4 (Approaches 2 and 3, the closed-form optimum).
Open Athena (2026), "Problems with Chinchilla Approach 2",
github.com/Open-Athena/scaling-law-analysis: on noise-free surfaces sampled
+-16x around the true optimum, Approach 2's D* intercept is off by -4.1%
(Chinchilla exponents) and -8.5% (alpha=0.46, beta=0.15); sampling centres
that drift with the budget bias the exponents too.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from flops_fit.result import Result, chinchilla_loss, estimate_flops_per_sample_per_param
from flops_fit.scaling import fit_isoflop, fit_parametric

__all__ = [
    "CHINCHILLA",
    "ApproachComparison",
    "IsoFLOPBias",
    "compare_approaches",
    "isoflop_bias",
]

# Hoffmann et al. (2022) eq. 10, their Approach 3 fit (loss in nats, N parameters, D tokens).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
_SURFACE = ("A", "B", "E", "alpha", "beta")
# Bracket of the true optimum: 100x beyond the sampled sizes on either side.
_BRACKET = np.log(100.0)
_NAN2 = (np.nan, np.nan)  # an interval that is not there
_ROWS = {
    "isoflop": "Approach 2 (parabolas per budget)",
    "parametric": "Approach 3 (parametric surface)",
    "bias": "Approach 2 bias (recovered - true, noise-free)",
}


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _FlopsLaw:
    """``ln k = c0 + c1 z + c2 z**2`` with ``z = (ln N - mean) / scale``; ``C = k(N) N D``."""

    coef: np.ndarray  # (degree + 1,), increasing powers
    mean: float
    scale: float
    residual: float  # largest |ln k_run - ln k(N_run)| over the runs
    x_range: tuple[float, float]  # smallest and largest ln N of the runs

    @classmethod
    def fit(cls, C: np.ndarray, N: np.ndarray, D: np.ndarray) -> _FlopsLaw:
        x, y = np.log(N), np.log(C / (N * D))
        mean, scale = float(x.mean()), float(max(x.std(), 1e-12))
        degree = min(2, np.unique(x).size - 1)
        z = (x - mean) / scale
        coef = np.polynomial.polynomial.polyfit(z, y, degree)
        residual = float(np.abs(y - np.polynomial.polynomial.polyval(z, coef)).max())
        return cls(coef, mean, scale, residual, (float(x.min()), float(x.max())))

    @property
    def bracket(self) -> tuple[float, float]:
        """Where to look for a true optimum (ln N): 100x beyond the sampled sizes."""
        return self.x_range[0] - _BRACKET, self.x_range[1] + _BRACKET

    @property
    def k_range(self) -> tuple[float, float]:
        """``k`` at the smallest and the largest sampled size (FLOPs per parameter per sample)."""
        return tuple(float(np.exp(self.ln_k(x))) for x in self.x_range)

    def ln_k(self, x):
        return np.polynomial.polynomial.polyval((x - self.mean) / self.scale, self.coef)

    def dln_k(self, x):  # d ln k / d ln N
        deriv = np.polynomial.polynomial.polyder(self.coef)
        return np.polynomial.polynomial.polyval((x - self.mean) / self.scale, deriv) / self.scale


def _optimum(lnC, law: _FlopsLaw, *, A, B, alpha, beta):
    """``(ln N*, ln D*)`` minimising ``A/N**alpha + B/D**beta`` on ``ln D = ln C - ln k(N) - ln N``.

    Bisection in ``x = ln N`` on ``h(x)``, the log of the data term's slope
    minus the log of the size term's slope (negative below the optimum,
    positive above). Arguments broadcast (bootstrap: (R, 1) parameters against
    (B,) budgets); NaN where `_FlopsLaw.bracket` holds no optimum or a
    parameter is not positive.
    """
    lnC, A, B, alpha, beta = np.broadcast_arrays(*(np.asarray(v, float)
                                                   for v in (lnC, A, B, alpha, beta)))
    lo, hi = law.bracket

    def h(x):
        lnD = lnC - law.ln_k(x) - x
        return (np.log(beta * (1.0 + law.dln_k(x)) * B) - beta * lnD) - (np.log(alpha * A) - alpha * x)

    with np.errstate(invalid="ignore", divide="ignore"):
        left, right = np.full(lnC.shape, lo), np.full(lnC.shape, hi)
        ok = (h(left) < 0) & (h(right) > 0)
        for _ in range(64):  # (hi - lo) / 2**64: far below float resolution
            mid = 0.5 * (left + right)
            below = h(mid) < 0
            left, right = np.where(below, mid, left), np.where(below, right, mid)
        x = np.where(ok, 0.5 * (left + right), np.nan)
    return x, lnC - law.ln_k(x) - x


def _slope(lnC: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``ly ~ i + s lnC`` along the last axis (NaN if any point is)."""
    dx = lnC - lnC.mean()
    return ((ly - ly.mean(axis=-1, keepdims=True)) * dx).sum(axis=-1) / (dx * dx).sum()


def _column(df: pd.DataFrame, role: str, name: str) -> np.ndarray:
    if name not in df.columns:
        raise ValueError(f"Got {role}={name!r}, expected a column of df: {list(df.columns)}")
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def _runs(df, *, budget: str, size: str, data: str | None, loss: str | None, k: float):
    """``(C, N, D, L or None)`` of the runs `fit_isoflop` would use (status ok, finite)."""
    if isinstance(df, Mapping):
        df = pd.DataFrame(dict(df))
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Got df of type {type(df).__name__}, expected a DataFrame or a mapping "
                        "of column names to arrays")
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"Got flops_per_sample_per_param={k!r}, expected a positive number")
    C, N = _column(df, "budget", budget), _column(df, "size", size)
    D = C / (k * N) if data is None else _column(df, "data", data)
    L = None if loss is None else _column(df, "loss", loss)
    keep = np.isfinite(C) & np.isfinite(N) & np.isfinite(D)
    if L is not None:
        keep &= np.isfinite(L)
    if "status" in df.columns:
        keep &= (df["status"] == "ok").to_numpy()
    C, N, D = C[keep], N[keep], D[keep]
    for role, arr in (("budget", C), ("size", N), ("data", D)):
        if (arr <= 0).any():
            raise ValueError(f"Got {role} values {arr[arr <= 0][:5].tolist()}, expected positive "
                             "numbers (FLOPs, parameters, samples)")
    if C.size == 0:
        raise ValueError(f"Got no run with status 'ok' and finite {budget!r}, {size!r}"
                         f"{'' if data is None else f', {data!r}'}"
                         f"{'' if loss is None else f', {loss!r}'} (of {len(df)} rows)")
    return C, N, D, (None if L is None else L[keep])


def _surface(truth) -> tuple[dict[str, float], str]:
    """Parameters of the true surface and a label saying where they came from."""
    if truth is None:
        return dict(CHINCHILLA), "Chinchilla (Hoffmann et al. 2022)"
    if isinstance(truth, Result):
        if truth.method != "parametric":
            raise ValueError(f"Got truth with method={truth.method!r}, expected a 'parametric' "
                             "(Approach 3) Result or a mapping with keys " + str(list(_SURFACE)))
        params, label = truth.params, "Approach 3 fit"
    elif isinstance(truth, Mapping):
        params, label = truth, "given surface"
    else:
        raise TypeError(f"Got truth of type {type(truth).__name__}, expected None, a parametric "
                        f"Result or a mapping with keys {list(_SURFACE)}")
    if sorted(params) != sorted(_SURFACE):
        raise ValueError(f"Got truth keys {sorted(params)}, expected {list(_SURFACE)}")
    params = {k: float(params[k]) for k in _SURFACE}
    bad = {k: v for k, v in params.items() if k != "E" and not (np.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"Got truth {bad}, expected positive finite A, B, alpha, beta "
                         "(without diminishing returns there is no compute-optimal size)")
    return params, label


# --------------------------------------------------------------------------- bias check


@dataclass(frozen=True, eq=False)
class IsoFLOPBias:
    """How far Approach 2 lands from a known frontier when sampled like one sweep.

    Attributes
    ----------
    truth : dict
        ``E, A, B, alpha, beta`` of the noise-free surface.
    truth_source : str
        Where they came from ("Chinchilla (Hoffmann et al. 2022)",
        "Approach 3 fit", "given surface").
    a_true, a_fit : float
        Exponent of ``N_opt ~ C**a``: the surface's, over the budgets fitted,
        and the one `fit_isoflop` recovers.
    b_true, b_fit : float
        The same for ``D_opt ~ C**b``.
    budgets : DataFrame
        One row per budget: ``budget`` (FLOPs), ``n_sizes``, ``used`` (in the
        power laws), ``note``, ``N_true``, ``N_vertex`` (the parabola's),
        ``N_law`` (the fitted power law's), in parameters, and ``D_true``,
        ``D_vertex``, ``D_law`` in samples.
    fit : Result
        The Approach 2 fit of the noise-free surface.
    flops_per_sample_per_param : tuple of float
        ``k(N)`` at the smallest and the largest sampled size (FLOPs per
        parameter per sample); equal when ``C = k N D``.
    flops_law_residual : float
        Largest ``|ln k|`` misfit of a run to the fitted ``k(N)`` (0.01: 1%).
    """

    truth: dict[str, float]
    truth_source: str
    a_true: float
    a_fit: float
    b_true: float
    b_fit: float
    budgets: pd.DataFrame
    fit: Result
    flops_per_sample_per_param: tuple[float, float]
    flops_law_residual: float

    @property
    def a_bias(self) -> float:
        """``a_fit - a_true``."""
        return self.a_fit - self.a_true

    @property
    def b_bias(self) -> float:
        """``b_fit - b_true``."""
        return self.b_fit - self.b_true

    def summary(self) -> pd.DataFrame:
        """True and recovered exponents, and the power laws' ``N_opt``, ``D_opt`` at each fitted budget.

        Returns
        -------
        DataFrame
            Index ``a``, ``b``, ``N_opt at C=...`` (parameters), ``D_opt at
            C=...`` (samples); columns ``true``, ``recovered``, ``bias``
            (recovered - true) and ``rel_bias`` (bias / true).
        """
        used = self.budgets[self.budgets["used"]]
        rows = {"a": (self.a_true, self.a_fit), "b": (self.b_true, self.b_fit)}
        for name in ("N", "D"):
            for row in used.itertuples():
                rows[f"{name}_opt at C={row.budget:.2g}"] = (getattr(row, f"{name}_true"),
                                                             getattr(row, f"{name}_law"))
        true, recovered = (np.array(v, float) for v in zip(*rows.values(), strict=True))
        return pd.DataFrame({"true": true, "recovered": recovered, "bias": recovered - true,
                             "rel_bias": recovered / true - 1.0},
                            index=pd.Index(list(rows), name="quantity"))

    def __repr__(self) -> str:
        s = self.summary()
        law = s.iloc[2:]
        law_n = law[law.index.str.startswith("N_opt")]["rel_bias"]
        return (f"IsoFLOPBias(truth={self.truth_source}, "
                f"a: true {self.a_true:.4f}, recovered {self.a_fit:.4f} ({s.loc['a', 'rel_bias']:+.1%}); "
                f"b: true {self.b_true:.4f}, recovered {self.b_fit:.4f} ({s.loc['b', 'rel_bias']:+.1%}); "
                f"N_opt of the power law {law_n.min():+.1%} to {law_n.max():+.1%} at "
                f"{len(law_n)} budgets)")


def isoflop_bias(
    df: pd.DataFrame | Mapping[str, ArrayLike],
    *,
    truth: Result | Mapping[str, float] | None = None,
    budget: str = "compute_budget",
    size: str = "model_params",
    data: str | None = "train_samples",
    loss: str | None = "final_test_loss",
    budgets: ArrayLike | None = None,
    flops_per_sample_per_param: float = 6.0,
) -> IsoFLOPBias:
    """Approach 2's bias on a noise-free surface sampled exactly like a sweep.

    Takes the sweep's sampling (its budgets, and per budget the sizes it ran,
    each as often as it ran them), puts the known surface
    ``L = E + A / N**alpha + B / D**beta`` there, fits it with
    `flops_fit.scaling.fit_isoflop` and compares the recovered frontier
    (``N_opt = k_N C**a``, ``D_opt = k_D C**b``) with the surface's own.
    The losses the runs measured are not used, only which runs finished.

    Compute follows the sweep's FLOPs law ``C = k(N) N D``, with
    ``ln k = poly2(ln N)`` fitted to the runs' ``C / (N D)`` (constant when
    ``C = 6 N D``; for an FNO, ``k = 3 f(N) / N`` falls with the width). The
    surface is evaluated at each run's budget and size with
    ``D = C / (k(N) N)`` (the run's own ``D`` to within
    `IsoFLOPBias.flops_law_residual`), so that the truth, the minimum of ``L``
    along the same curve, is exact. ``a_true`` is the slope of the true
    ``ln N_opt`` against ``ln C`` over the budgets fitted; it is
    ``beta / (alpha + beta)`` when ``k`` is constant (Hoffmann et al. eq. 4).

    Parameters
    ----------
    df : DataFrame or mapping of arrays
        One row per run, with the columns `fit_isoflop` reads; rows whose
        ``status`` is not "ok" or with a NaN in the used columns are left out,
        as the fit leaves them out.
    truth : Result, mapping or None
        The noise-free surface. None: the Chinchilla fit (`CHINCHILLA`), the
        reference of the literature, which needs no fit of these runs; but it
        was fitted to language models, so for another study its optimum lies
        wherever the units happen to put it relative to the sampled sizes. A
        parametric `Result` (`fit_parametric` on the same runs) places the
        optimum where the runs do, so the bias is that of this sweep's
        geometry under its own fitted surface: the more useful truth when
        such a fit exists, and the one `compare_approaches` takes. A mapping
        needs ``E, A, B, alpha, beta``.
    budget, size, data, loss : str
        Columns: compute budget (FLOPs), parameters, training samples (None:
        ``D = C / (flops_per_sample_per_param N)``) and the loss the fit used
        (None: keep rows without one).
    budgets : array_like, optional
        Only these budgets (FLOPs), e.g. the ones the real fit kept
        (``fit.budgets.budget[fit.budgets.interior]``). Default: all.
    flops_per_sample_per_param : float
        ``k``, only used when ``data`` is None.

    Returns
    -------
    IsoFLOPBias
        ``a_true``, ``a_fit``, ``b_true``, ``b_fit``, per-budget optima and
        `IsoFLOPBias.summary`.

    References
    ----------
    Hoffmann et al. (2022), sec. 3.2 and eq. 4. Open Athena (2026), "Problems
    with Chinchilla Approach 2": noise-free, +-16x around the optimum, the
    D* intercept is off by -4.1% (Chinchilla) to -8.5% (alpha=0.46,
    beta=0.15); a sampling centre that drifts with the budget (a fixed size
    grid) biases the exponents as well.

    Examples
    --------
    Sizes centred on each budget's optimum (Chinchilla surface, ``C = 6ND``):
    the exponent is recovered, only the intercept is off.

    >>> import numpy as np
    >>> C = np.repeat([1e19, 1e20, 1e21], 7)
    >>> N_opt = 1.345 * (C / 6) ** (0.28 / 0.62)
    >>> N = N_opt * np.tile(np.geomspace(1 / 8, 8, 7), 3)
    >>> check = isoflop_bias({"compute_budget": C, "model_params": N,
    ...                       "train_samples": C / (6 * N)}, loss=None)
    >>> round(check.a_true, 4), abs(check.a_bias) < 1e-6
    (0.4516, True)
    """
    C, N, D, _ = _runs(df, budget=budget, size=size, data=data, loss=loss,
                       k=flops_per_sample_per_param)
    params, source = _surface(truth)
    law = _FlopsLaw.fit(C, N, D)  # over every run: the same law whichever budgets are checked
    if budgets is not None:
        wanted = np.atleast_1d(np.asarray(budgets, float))
        held = np.unique(C)
        missing = [float(b) for b in wanted if not np.isclose(held, b, rtol=1e-9, atol=0).any()]
        if missing or wanted.size == 0:
            raise ValueError(f"Got budgets {missing or wanted.tolist()}, expected some of the "
                             f"sweep's budgets {held.tolist()}")
        keep = np.isclose(C[:, None], wanted[None, :], rtol=1e-9, atol=0).any(axis=1)
        C, N, D = C[keep], N[keep], D[keep]
    x = np.log(N)
    D = np.exp(np.log(C) - law.ln_k(x) - x)  # on the FLOPs law: the truth is its minimum
    frame = pd.DataFrame({"compute_budget": C, "model_params": N, "train_samples": D,
                          "final_test_loss": chinchilla_loss(N, D, **params)})
    with warnings.catch_warnings():  # budgets left out are in fit.budgets (used, note)
        warnings.simplefilter("ignore", UserWarning)
        try:
            fit = fit_isoflop(frame, n_bootstrap=0)
        except ValueError as err:
            raise ValueError(f"Approach 2 cannot fit the noise-free surface ({source}) sampled "
                             f"like these runs: {err}") from None
    b, p = fit.budgets, fit.params
    lnC = np.log(b["budget"].to_numpy(float))
    ln_n, ln_d = _optimum(lnC, law, A=params["A"], B=params["B"], alpha=params["alpha"],
                          beta=params["beta"])
    table = pd.DataFrame({
        "budget": b["budget"], "n_sizes": b["n_sizes"], "used": b["interior"], "note": b["note"],
        "N_true": np.exp(ln_n), "N_vertex": b["N_opt"], "N_law": p["k_N"] * np.exp(lnC * p["a"]),
        "D_true": np.exp(ln_d), "D_vertex": b["D_opt"], "D_law": p["k_D"] * np.exp(lnC * p["b"]),
    })
    used = table["used"].to_numpy(bool)
    return IsoFLOPBias(
        truth=params, truth_source=source,
        a_true=float(_slope(lnC[used], ln_n[used])), a_fit=float(p["a"]),
        b_true=float(_slope(lnC[used], ln_d[used])), b_fit=float(p["b"]),
        budgets=table.reset_index(drop=True), fit=fit,
        flops_per_sample_per_param=law.k_range, flops_law_residual=law.residual,
    )


# --------------------------------------------------------------------------- comparison


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
        return pd.DataFrame(rows, index=pd.Index(list(_ROWS.values()), name="fit"))

    @staticmethod
    def _row(a, a_ci, b, b_ci, note: str) -> dict:
        return {"a": a, "a_low": a_ci[0], "a_high": a_ci[1],
                "b": b, "b_low": b_ci[0], "b_high": b_ci[1], "note": note}

    def _missing(self, name: str) -> dict:
        return self._row(np.nan, _NAN2, np.nan, _NAN2, f"not available: {self.reasons[name]}")

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
        return self._row(bias.a_bias, _NAN2, bias.b_bias, _NAN2, note)

    def __repr__(self) -> str:
        with pd.option_context("display.width", 250, "display.max_columns", None,
                               "display.max_colwidth", 120):
            return f"ApproachComparison ({self.ci_level:.0%} intervals)\n{self.summary()}"


def _frontier(fit: Result, law: _FlopsLaw, lnC: np.ndarray, ci_level: float):
    """Exponents ``a``, ``b`` of a parametric fit's optimum along ``law`` over budgets ``lnC``.

    Returns ``(point, intervals, reason)``: ``reason`` says why the point is
    NaN (one budget, or no optimum on the surface), else it is empty.
    """
    point, ci = {"a": np.nan, "b": np.nan}, {"a": (np.nan,) * 2, "b": (np.nan,) * 2}
    if lnC.size < 2:
        return point, ci, f"a frontier needs at least 2 budgets, got {lnC.size}"
    p = fit.params
    ln_n, ln_d = _optimum(lnC, law, A=p["A"], B=p["B"], alpha=p["alpha"],
                          beta=p["beta"])
    point = {"a": float(_slope(lnC, ln_n)), "b": float(_slope(lnC, ln_d))}
    if fit.bootstrap:
        boot = {k: np.asarray(v, float)[:, None] for k, v in fit.bootstrap.items()}  # (R, 1)
        ln_n, ln_d = _optimum(lnC, law, A=boot["A"], B=boot["B"],
                              alpha=boot["alpha"], beta=boot["beta"])  # (R, budgets)
        tail = 50.0 * (1.0 - ci_level)
        for name, ly in (("a", ln_n), ("b", ln_d)):
            slopes = _slope(lnC, ly)
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
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"Got n_bootstrap={n_bootstrap!r}, expected an integer >= 0")
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"Got ci_level={ci_level!r}, expected a number in (0, 1)")
    C, N, D, L = _runs(df, budget=budget, size=size, data=data, loss=loss,
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
        ci_level=ci_level, flops_per_sample_per_param=flops_per_sample_per_param))
    parametric = attempt("parametric", lambda: fit_parametric(
        N, D, L, budget=C, n_bootstrap=n_bootstrap, seed=seed, ci_level=ci_level,
        flops_per_sample_per_param=estimate_flops_per_sample_per_param(C, N, D)))

    law = _FlopsLaw.fit(C, N, D)
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
