"""Scaling-law fits: Chinchilla Approach 3 (parametric) and Approach 2 (IsoFLOP).

Both return a `flops_fit.result.Result` (parameters, bootstrap intervals,
compute-optimal predictions, figure, JSON).

Compute is ``C = k N D`` FLOPs (see `flops_fit.result` for ``k``); for the
FNO study ``k = 3 * forward_flops_per_sample / N``, estimated with
`estimate_flops_per_sample_per_param`.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", sec. 3.
Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt".
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize

try:  # BLAS thread pools cost L-BFGS-B milliseconds per iteration on a busy CPU
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional speed-up, the fits are the same without it
    threadpool_limits = None

from flops_fit.result import (
    Result,
    chinchilla_loss,
    estimate_flops_per_sample_per_param,
    nan_resamples,
    optimal_allocation,
)

__all__ = [
    "Result",
    "chinchilla_loss",
    "estimate_flops_per_sample_per_param",
    "fit_isoflop",
    "fit_parametric",
    "optimal_allocation",
]

# L-BFGS-B stopping rules are absolute at the scale of a Huber objective (scipy's
# defaults, ftol=2.2e-9 and gtol=1e-5, stop the mean-reduced fit far from the optimum,
# and leave warm-started bootstrap refits near their start: intervals 3-9x too narrow).
# These bring refits to < 1e-3 bootstrap standard deviations of the exact optimum.
_LBFGS_OPTIONS = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 15000}
# Hoffmann et al. (2022) initialisation grid over (e, a, b, alpha, beta): 4,500 starts.
_GRID = np.array(
    list(itertools.product(
        np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0),
        np.arange(0.0, 2.01, 0.5), np.arange(0.0, 2.01, 0.5),
    )),
    dtype=float,
)


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals ``r`` and its derivative ``clip(r, -delta, delta)``."""
    dh = np.clip(r, -delta, delta)
    return dh * (r - 0.5 * dh), dh  # = r**2/2 inside, delta*(|r| - delta/2) outside


def _objective(theta, lN, lD, lL, w, delta, scale):
    """Weighted Huber of ``log L_hat - log L`` and its gradient in (e, a, b, alpha, beta).

    ``log L_hat = LSE(e, a - alpha log N, b - beta log D)``; the softmax
    weights ``x_j / s`` of its three terms are the derivatives of ``log L_hat``.
    """
    e, a, b, alpha, beta = theta
    t1, t2 = a - alpha * lN, b - beta * lD  # (n,)
    m = np.maximum(np.maximum(t1, t2), e)  # shift for a stable exp
    x0, x1, x2 = np.exp(e - m), np.exp(t1 - m), np.exp(t2 - m)
    s = x0 + x1 + x2
    h, dh = _huber(m + np.log(s) - lL, delta)
    gw = dh * w / s
    g1, g2 = gw * x1, gw * x2
    grad = np.array([gw @ x0, g1.sum(), g2.sum(), -(g1 @ lN), -(g2 @ lD)])
    return scale * float(h @ w), scale * grad


def _grid_objective(lN, lD, lL, delta, chunk: int = 500) -> np.ndarray:
    """Unweighted summed Huber objective at every `_GRID` start, vectorised."""
    out = np.empty(len(_GRID))
    for i in range(0, len(_GRID), chunk):
        e, a, b, alpha, beta = _GRID[i:i + chunk].T[..., None]  # each (chunk, 1)
        t = np.stack(np.broadcast_arrays(e, a - alpha * lN, b - beta * lD))  # (3, chunk, n)
        lhat = np.logaddexp.reduce(t, axis=0)
        out[i:i + chunk] = _huber(lhat - lL, delta)[0].sum(axis=1)
    return out


def _positive(name: str, x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"Got {name} with shape {arr.shape}, expected a 1-D array")
    bad = np.isfinite(arr) & (arr <= 0) | np.isinf(arr)
    if bad.any():
        raise ValueError(f"Got {name} with non-positive or infinite values "
                         f"{arr[bad][:5].tolist()}, expected positive finite numbers")
    return arr


def _check_options(n_bootstrap, ci_level, k) -> None:
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"Got n_bootstrap={n_bootstrap!r}, expected an integer >= 0")
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"Got ci_level={ci_level!r}, expected a number in (0, 1)")
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"Got flops_per_sample_per_param={k!r}, expected a positive number")


def fit_parametric(
    N: ArrayLike,
    D: ArrayLike,
    loss: ArrayLike,
    *,
    budget: ArrayLike | None = None,
    delta: float = 1e-3,
    reduction: Literal["sum", "mean"] = "sum",
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    n_starts: int = 16,
    flops_per_sample_per_param: float = 6.0,
    lbfgs_options: Mapping[str, float] | None = None,
) -> Result:
    """Fit ``L = E + A / N**alpha + B / D**beta`` (Chinchilla Approach 3).

    Minimises the Huber loss (``delta``) of ``log L_hat - log L`` with
    ``log L_hat = LSE(e, a - alpha log N, b - beta log D)``, ``E = exp(e)``,
    ``A = exp(a)``, ``B = exp(b)``, by L-BFGS-B with analytic gradients. Starts:
    the Hoffmann et al. grid (4,500 points) is evaluated in one vectorised pass
    and the ``n_starts`` best are optimised, in coordinates where ``log N`` and
    ``log D`` are standardised (better conditioned: half the iterations).
    Bootstrap: resample points with replacement, refit warm-started from the
    point estimate.

    Parameters
    ----------
    N, D, loss : array_like
        Parameters (real numbers), training samples (tokens) and final loss
        per run. Rows with a NaN (failed runs) are dropped with a warning.
    budget : array_like, optional
        Training compute per run (FLOPs); only groups points in `Result.plot`.
    delta : float
        Huber threshold on log-loss residuals (Hoffmann et al.: 1e-3).
    reduction : {"sum", "mean"}
        Keep "sum": a mean-reduced objective is ``n`` times smaller and makes
        L-BFGS stop early at its default tolerances (Besiroglu et al. 2024).
    n_bootstrap : int
        Bootstrap resamples for the intervals (0: none).
    seed : int
        Seed of the bootstrap resampling.
    ci_level : float
        Coverage of the percentile intervals.
    n_starts : int
        Grid starts refined by L-BFGS-B (1..4500).
    flops_per_sample_per_param : float
        ``k`` in ``C = k N D`` used for predictions (6 for transformers).
    lbfgs_options : mapping, optional
        Overrides of the L-BFGS-B options ``ftol``, ``gtol``, ``maxiter``,
        ``maxcor``, ``maxls`` (default ftol=1e-13, gtol=1e-9, maxiter=15000).

    Returns
    -------
    Result
        ``method="parametric"``, params ``E, A, B, alpha, beta``.

    References
    ----------
    Hoffmann et al. (2022), sec. 3.3 and D.2; Besiroglu et al. (2024), sec. 3.
    """
    N, D, loss = _positive("N", N), _positive("D", D), _positive("loss", loss)
    C = np.full(N.shape, np.nan) if budget is None else np.asarray(budget, dtype=float)
    if not (N.shape == D.shape == loss.shape == C.shape):
        raise ValueError(f"Got N, D, loss, budget of lengths {N.size}, {D.size}, "
                         f"{loss.size}, {C.size}, expected equal lengths")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"Got reduction={reduction!r}, expected one of ['sum', 'mean']")
    if not delta > 0:
        raise ValueError(f"Got delta={delta!r}, expected a positive number")
    if int(n_starts) != n_starts or not 1 <= n_starts <= len(_GRID):
        raise ValueError(f"Got n_starts={n_starts!r}, expected an integer in [1, {len(_GRID)}]")
    _check_options(n_bootstrap, ci_level, flops_per_sample_per_param)
    unknown = sorted(set(lbfgs_options or {}) - {"ftol", "gtol", "maxiter", "maxcor", "maxls"})
    if unknown:
        raise ValueError(f"Got lbfgs_options keys {unknown}, expected some of "
                         "['ftol', 'gtol', 'maxcor', 'maxiter', 'maxls']")
    options = {**_LBFGS_OPTIONS, **(lbfgs_options or {})}
    keep = np.isfinite(N) & np.isfinite(D) & np.isfinite(loss)
    if (~keep).any():
        warnings.warn(f"Dropped {int((~keep).sum())} rows with NaN N, D or loss",
                      UserWarning, stacklevel=2)
    N, D, loss, C = N[keep], D[keep], loss[keep], C[keep]
    if N.size < 6:
        raise ValueError(f"Got {N.size} valid points, expected at least 6 for 5 parameters")
    _check_identifiable(N, D, loss)

    with _one_blas_thread():
        return _fit_parametric(N, D, loss, C, delta, reduction, n_bootstrap, seed, ci_level,
                               n_starts, flops_per_sample_per_param, options)


def _check_identifiable(N: np.ndarray, D: np.ndarray, loss: np.ndarray) -> None:
    """Refuse data that cannot pin the five parameters down (the fit would still "converge")."""
    for name, arr, which in (("N", N, "A and alpha"), ("D", D, "B and beta")):
        if np.unique(arr).size < 2:
            raise ValueError(f"Got {name} with one distinct value ({arr[0]:g}), expected at least 2: "
                             f"{which} cannot be told apart from E")
    if np.allclose(loss, loss[0], rtol=1e-9, atol=0.0):
        raise ValueError(f"Got loss values that are all equal ({loss[0]:g}), expected losses that "
                         "vary with N and D: a constant loss fixes E and none of A, B, alpha, beta")


def _one_blas_thread():
    """Single-threaded BLAS: L-BFGS-B's 5 x 5 algebra only pays thread wake-ups."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fit_parametric(N, D, loss, C, delta, reduction, n_bootstrap, seed, ci_level, n_starts,
                    k, options) -> Result:
    lN, lD, lL = np.log(N), np.log(D), np.log(loss)
    n = N.size
    # Standardised coordinates: a - alpha log N = a' - alpha' z_N with z_N = (log N - m) / s,
    # alpha' = alpha s, a' = a - alpha m (and the same for D); decorrelates a and alpha.
    m = np.array([lN.mean(), lD.mean()])
    sd = np.array([max(lN.std(), 1e-12), max(lD.std(), 1e-12)])
    zN, zD = (lN - m[0]) / sd[0], (lD - m[1]) / sd[1]

    def to_std(t):
        return np.concatenate([t[..., :1], t[..., 1:3] - t[..., 3:5] * m, t[..., 3:5] * sd], -1)

    def from_std(t):
        exps = t[..., 3:5] / sd
        return np.concatenate([t[..., :1], t[..., 1:3] + exps * m, exps], axis=-1)

    def fit(x0, w):
        scale = 1.0 if reduction == "sum" else 1.0 / w.sum()
        return minimize(_objective, x0, args=(zN, zD, lL, w, delta, scale), jac=True,
                        method="L-BFGS-B", options=options)

    ones = np.ones(n)
    starts = _GRID[np.argsort(_grid_objective(lN, lD, lL, delta), kind="stable")[:n_starts]]
    best = min((fit(to_std(x0), ones) for x0 in starts), key=lambda r: r.fun)
    theta = from_std(best.x)
    message = f"L-BFGS-B, best of {n_starts} grid starts: {best.message} ({best.nit} iterations)"

    boot = np.full((n_bootstrap, 5), np.nan)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(float)
    failed = 0
    for i, w in enumerate(counts):
        r = fit(best.x, w)  # warm start: the standard speed trick for bootstrap refits
        failed += not r.success
        if np.all(np.isfinite(r.x)):
            boot[i] = from_std(r.x)
    if failed:
        message += f"; {failed} of {n_bootstrap} bootstrap fits reported no convergence"
    if theta[3] <= 0 or theta[4] <= 0:
        warning = (f"Fitted exponents alpha={theta[3]:.3g}, beta={theta[4]:.3g} are not "
                   "positive: the data do not show diminishing returns")
        warnings.warn(warning, UserWarning, stacklevel=3)
        message += f"; WARNING: {warning}"  # the result carries it too, wherever it is shown

    def named(t):
        return {"E": np.exp(t[..., 0]), "A": np.exp(t[..., 1]), "B": np.exp(t[..., 2]),
                "alpha": t[..., 3], "beta": t[..., 4]}

    return Result(
        method="parametric",
        params={name: float(v) for name, v in named(theta).items()},
        bootstrap=named(boot) if n_bootstrap else {},
        flops_per_sample_per_param=float(k),
        data=pd.DataFrame({"budget": C, "N": N, "D": D, "loss": loss}),
        ci_level=ci_level, converged=bool(best.success), message=message,
    )


def _poly_fits(z: np.ndarray, y: np.ndarray, W: np.ndarray, degree: int) -> np.ndarray:
    """Weighted least-squares polynomials ``y ~ sum_j c_j z**j``, one per row of ``W``.

    ``z``, ``y``: (n,); ``W``: (R, n) resample counts. Returns (R, degree+1)
    coefficients, NaN where fewer than ``degree+1`` distinct ``z`` carry weight.
    """
    Z = np.vander(z, degree + 1, increasing=True)  # (n, p)
    _, which = np.unique(z, return_inverse=True)
    distinct = np.stack([np.bincount(which, weights=w) > 0 for w in W]).sum(axis=1)
    out = np.full((W.shape[0], degree + 1), np.nan)
    ok = distinct > degree
    if ok.any():
        M = np.einsum("rn,ni,nj->rij", W[ok], Z, Z)
        v = np.einsum("rn,ni,n->ri", W[ok], Z, y)
        out[ok] = np.linalg.solve(M, v[..., None])[..., 0]
    return out


def _budget_minima(lN, lD, loss, W):
    """Parabola ``loss ~ c0 + c1 z + c2 z**2`` in standardised ``z = (ln N - mean) / sd``.

    Returns ``(coef (R, 3), ln N_opt, ln D_opt, loss_opt)`` per resample; ``ln D``
    at the optimum from a line ``ln D ~ d0 + d1 z`` (exact when ``C = k N D``).
    NaN where the parabola has no minimum.
    """
    mean, sd = lN.mean(), max(lN.std(), 1e-12)
    z = (lN - mean) / sd
    c = _poly_fits(z, loss, W, 2)
    d = _poly_fits(z, lD, W, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(c[:, 2] > 0, -c[:, 1] / (2.0 * c[:, 2]), np.nan)
    return (c, mean + sd * zs, d[:, 0] + d[:, 1] * zs,
            c[:, 0] + c[:, 1] * zs + c[:, 2] * zs * zs)


def _power_law(lC: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of ``ly ~ i + s lC`` per row of ``ly`` (R, B), NaNs skipped."""
    ok = np.isfinite(ly)
    w = ok.astype(float)
    nw = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xm = (w * lC).sum(axis=1) / nw
        ym = np.where(ok, ly, 0.0).sum(axis=1) / nw
        dx = (lC - xm[:, None]) * w
        slope = (dx * np.where(ok, ly - ym[:, None], 0.0)).sum(axis=1) / (dx * dx).sum(axis=1)
    slope = np.where(nw >= 2, slope, np.nan)
    return slope, ym - slope * xm


def _column(df: pd.DataFrame, role: str, name: str) -> np.ndarray:
    if name not in df.columns:
        raise ValueError(f"Got {role}={name!r}, expected a column of df: {list(df.columns)}")
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def fit_isoflop(
    df: pd.DataFrame,
    *,
    budget: str = "compute_budget",
    size: str = "model_params",
    loss: str = "final_test_loss",
    data: str | None = "train_samples",
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    flops_per_sample_per_param: float = 6.0,
) -> Result:
    """Fit compute-optimal power laws from an IsoFLOP sweep (Chinchilla Approach 2).

    Per budget ``C``, a parabola of loss in ``ln N`` gives the optimum
    ``N_opt(C)``, ``D_opt(C)`` and ``L_opt(C)``; least squares in log-log space
    over budgets then give ``N_opt = k_N C**a``, ``D_opt = k_D C**b`` and
    ``L_opt = k_L C**c`` (the last is a local power law with no irreducible
    term: trust it for interpolation only). Budgets whose minimum is not
    bracketed by the sampled sizes (vertex outside them, or the smallest
    observed loss at the smallest or largest size) are flagged
    ``interior=False`` and left out, with a warning. Bootstrap: resample runs
    with replacement within each budget and refit everything; a budget's
    ``p_interior`` is the fraction of resamples whose parabola is convex with
    its vertex inside the sampled sizes (read a low value as "flat within the
    noise": its optimum is not resolved even when ``interior`` is True).

    Parameters
    ----------
    df : DataFrame
        One row per run; rows with a ``status`` other than "ok" or a NaN in
        the used columns are ignored.
    budget, size, loss : str
        Columns: planned training compute (FLOPs), parameters (real
        numbers) and the loss to minimise.
    data : str or None
        Column of training samples; None derives ``D = C / (k N)``.
    n_bootstrap, seed, ci_level : int, int, float
        Bootstrap resamples (0: none), their seed, interval coverage.
    flops_per_sample_per_param : float
        ``k`` in ``C = k N D``, used only when ``data`` is None.

    Returns
    -------
    Result
        ``method="isoflop"``; ``Result.budgets`` holds the per-budget minima.
    """
    _check_options(n_bootstrap, ci_level, flops_per_sample_per_param)
    C, N, L = _column(df, "budget", budget), _column(df, "size", size), _column(df, "loss", loss)
    D = C / (flops_per_sample_per_param * N) if data is None else _column(df, "data", data)
    keep = np.isfinite(C) & np.isfinite(N) & np.isfinite(L) & np.isfinite(D)
    if "status" in df.columns:
        keep &= (df["status"] == "ok").to_numpy()
    C, N, L, D = C[keep], N[keep], L[keep], D[keep]
    # The loss too: L_opt = k_L C**c is fitted in log space (shift a loss that can be negative).
    for name, arr in (("budget", C), ("size", N), ("data", D), ("loss", L)):
        _positive(name, arr)
    rng = np.random.default_rng(seed)
    rows, boot = [], []
    for c in np.unique(C):
        g = C == c
        lN, lD, y = np.log(N[g]), np.log(D[g]), L[g]
        n = int(g.sum())
        W = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)])
        coef, ln_opt, ld_opt, l_opt = _budget_minima(lN, lD, y, W)
        sizes = np.unique(lN)
        mean_loss = np.array([y[lN == s].mean() for s in sizes])
        if sizes.size < 3:
            note = "fewer than 3 sizes"
        elif not np.isfinite(ln_opt[0]):
            note = "not convex"
        elif not (sizes[0] < ln_opt[0] < sizes[-1]) or np.argmin(mean_loss) in (0, sizes.size - 1):
            note = "minimum at edge"
        else:
            note = "ok"
        # How often resampled runs still put a vertex inside the sampled sizes: near 1
        # for a clear dip, far below for a curve flat within its run-to-run noise.
        inside = (ln_opt[1:] > sizes[0]) & (ln_opt[1:] < sizes[-1])
        rows.append({
            "budget": c, "n_runs": n, "n_sizes": sizes.size, "N_opt": np.exp(ln_opt[0]),
            "D_opt": np.exp(ld_opt[0]), "loss_opt": l_opt[0], "interior": note == "ok",
            "p_interior": float(inside.mean()) if n_bootstrap else np.nan, "note": note,
            "c0": coef[0, 0], "c1": coef[0, 1], "c2": coef[0, 2],
            "x_mean": lN.mean(), "x_scale": max(lN.std(), 1e-12),
            "x_min": sizes[0], "x_max": sizes[-1],
        })
        boot.append((ln_opt, ld_opt, np.log(np.where(l_opt > 0, l_opt, np.nan))))
    table = pd.DataFrame(rows)
    used = table["interior"].to_numpy(bool) if rows else np.zeros(0, bool)
    excluded = table.loc[~used, ["budget", "note"]] if rows else table
    if used.sum() < 2:
        raise ValueError(
            f"Got {int(used.sum())} budgets with an interior minimum, expected at least 2 "
            f"(budgets and notes: {list(map(tuple, excluded.itertuples(index=False)))})"
        )
    if len(excluded):
        warnings.warn(
            f"Left out of the power laws {len(excluded)} budget(s) whose minimum is not "
            f"bracketed by the sampled sizes: {list(map(tuple, excluded.itertuples(index=False)))}"
            "; sample sizes on both sides of their optimum", UserWarning, stacklevel=2)
    lC = np.log(table["budget"].to_numpy(float)[used])
    params, samples = {}, {}
    with np.errstate(over="ignore", invalid="ignore"):  # a wild resample overflows exp: NaN below
        for j, (exp_name, k_name) in enumerate((("a", "k_N"), ("b", "k_D"), ("c", "k_L"))):
            ly = np.stack([boot[i][j] for i in np.flatnonzero(used)], axis=1)  # (1 + R, B)
            slope, icpt = _power_law(lC, ly)
            params[exp_name], params[k_name] = float(slope[0]), float(np.exp(icpt[0]))
            samples[exp_name], samples[k_name] = slope[1:], np.exp(icpt[1:])
    samples, n_bad = nan_resamples(samples)
    message = f"power laws over {int(used.sum())} of {len(table)} budgets"
    if n_bad:
        note = (f"{n_bad} of {n_bootstrap} bootstrap resamples gave no finite power law (a budget "
                "without a minimum, or an overflow) and are NaN in the intervals")
        message += f"; {note}"
        warnings.warn(note, UserWarning, stacklevel=2)
    return Result(
        method="isoflop", params=params, bootstrap=samples if n_bootstrap else {},
        flops_per_sample_per_param=float(flops_per_sample_per_param),
        data=pd.DataFrame({"budget": C, "N": N, "D": D, "loss": L}),
        ci_level=ci_level, converged=True, message=message, budgets=table,
    )
