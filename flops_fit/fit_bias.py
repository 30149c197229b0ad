"""Approach 2's bias for one sweep's sampling, measured on a noise-free loss surface.

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
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", sec. 3
and eq. 4. Open Athena (2026), "Problems with Chinchilla Approach 2",
github.com/Open-Athena/scaling-law-analysis: sampled +-16x around the optimum,
Approach 2's D* intercept is off by -4.1% (Chinchilla) to -8.5% (alpha=0.46,
beta=0.15) without noise; sampling centres that drift with budget bias exponents.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from flops_fit.fit_inputs import column
from flops_fit.fit_result import Result
from flops_fit.laws import chinchilla_loss
from flops_fit.scaling import fit_isoflop

__all__ = ["CHINCHILLA", "FlopsLaw", "IsoFLOPBias", "isoflop_bias", "optimum", "slope", "sweep_runs"]

# Hoffmann et al. (2022) eq. 10, their Approach 3 fit (loss in nats, N parameters, D tokens).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
_SURFACE = ("A", "B", "E", "alpha", "beta")
# Bracket of the true optimum: 100x beyond the sampled sizes on either side.
_BRACKET = np.log(100.0)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class FlopsLaw:
    """``ln k = c0 + c1 z + c2 z**2`` with ``z = (ln N - mean) / scale``; ``C = k(N) N D``."""

    coef: np.ndarray  # (degree + 1,), increasing powers
    mean: float
    scale: float
    residual: float  # largest |ln k_run - ln k(N_run)| over the runs
    x_range: tuple[float, float]  # smallest and largest ln N of the runs

    @classmethod
    def fit(cls, C: np.ndarray, N: np.ndarray, D: np.ndarray) -> FlopsLaw:
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


def optimum(lnC, law: FlopsLaw, *, A, B, alpha, beta):
    """``(ln N*, ln D*)`` minimising ``A/N**alpha + B/D**beta`` on ``ln D = ln C - ln k(N) - ln N``.

    Bisection in ``x = ln N`` on ``h(x)``, the log of the data term's slope
    minus the log of the size term's slope (negative below the optimum,
    positive above). Arguments broadcast (bootstrap: (R, 1) parameters against
    (B,) budgets); NaN where `FlopsLaw.bracket` holds no optimum or a
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


def slope(lnC: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``ly ~ i + s lnC`` along the last axis (NaN if any point is)."""
    dx = lnC - lnC.mean()
    return ((ly - ly.mean(axis=-1, keepdims=True)) * dx).sum(axis=-1) / (dx * dx).sum()


def sweep_runs(df, *, budget: str, size: str, data: str | None, loss: str | None, k: float):
    """``(C, N, D, L or None)`` of the runs `fit_isoflop` would use (status ok, finite)."""
    if isinstance(df, Mapping):
        df = pd.DataFrame(dict(df))
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Got df of type {type(df).__name__}, expected a DataFrame or a mapping "
                        "of column names to arrays")
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"Got flops_per_sample_per_param={k!r}, expected a positive number")
    C, N = column(df, "budget", budget), column(df, "size", size)
    D = C / (k * N) if data is None else column(df, "data", data)
    L = None if loss is None else column(df, "loss", loss)
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
    C, N, D, _ = sweep_runs(df, budget=budget, size=size, data=data, loss=loss,
                       k=flops_per_sample_per_param)
    params, source = _surface(truth)
    law = FlopsLaw.fit(C, N, D)  # over every run: the same law whichever budgets are checked
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
    ln_n, ln_d = optimum(lnC, law, A=params["A"], B=params["B"], alpha=params["alpha"],
                          beta=params["beta"])
    table = pd.DataFrame({
        "budget": b["budget"], "n_sizes": b["n_sizes"], "used": b["interior"], "note": b["note"],
        "N_true": np.exp(ln_n), "N_vertex": b["N_opt"], "N_law": p["k_N"] * np.exp(lnC * p["a"]),
        "D_true": np.exp(ln_d), "D_vertex": b["D_opt"], "D_law": p["k_D"] * np.exp(lnC * p["b"]),
    })
    used = table["used"].to_numpy(bool)
    return IsoFLOPBias(
        truth=params, truth_source=source,
        a_true=float(slope(lnC[used], ln_n[used])), a_fit=float(p["a"]),
        b_true=float(slope(lnC[used], ln_d[used])), b_fit=float(p["b"]),
        budgets=table.reset_index(drop=True), fit=fit,
        flops_per_sample_per_param=law.k_range, flops_law_residual=law.residual,
    )


# --------------------------------------------------------------------------- comparison
