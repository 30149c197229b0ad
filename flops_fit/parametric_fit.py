"""Chinchilla Approach 3: fit ``L = E + A / N**alpha + B / D**beta`` to every run at once.

Returns a :class:`flops_fit.fit_result.Result` (parameters, bootstrap
intervals, compute-optimal predictions, figure, JSON). The public face of
the fits is :mod:`flops_fit.scaling`.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", sec. 3.3 and D.2.
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

from flops_fit.fit_inputs import check_options, positive, resample_counts
from flops_fit.fit_result import Result

__all__ = ["fit_parametric"]

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
    N, D, loss = positive("N", N), positive("D", D), positive("loss", loss)
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
    check_options(n_bootstrap, ci_level, flops_per_sample_per_param)
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
    counts = resample_counts(rng, n, n_bootstrap).astype(float)
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
