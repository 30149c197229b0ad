"""Chinchilla Approach 2: a parabola per IsoFLOP budget, then power laws across budgets.

Returns a :class:`flops_fit.fit_result.Result` whose ``budgets`` table holds
each budget's minimum. The public face of the fits is :mod:`flops_fit.scaling`.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", sec. 3.2.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from flops_fit.fit_inputs import (
    check_min_p_interior,
    check_options,
    column,
    positive,
    resample_counts,
)
from flops_fit.fit_result import Result
from flops_fit.laws import nan_resamples, percentile_interval

__all__ = ["fit_isoflop"]


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
    min_p_interior: float = 0.0,
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
    noise": its optimum is not resolved even when ``interior`` is True), and
    ``N_opt_lo``, ``N_opt_hi`` the percentile interval of its optimum over
    the resamples that have one (how well that budget pins its optimal size).
    With ``min_p_interior`` > 0, a budget whose ``p_interior`` is below it is
    left out too (note ``"unresolved"``): its optimum is noise, and one such
    budget can swing the exponent's bootstrap interval across orders of
    magnitude.

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
    min_p_interior : float
        In [0, 1]: leave out budgets whose ``p_interior`` is below this (0,
        the default, keeps every bracketed budget). Needs ``n_bootstrap`` > 0.

    Returns
    -------
    Result
        ``method="isoflop"``; ``Result.budgets`` holds the per-budget minima.
    """
    check_options(n_bootstrap, ci_level, flops_per_sample_per_param)
    min_p_interior = check_min_p_interior(min_p_interior, n_bootstrap)
    C, N, L = column(df, "budget", budget), column(df, "size", size), column(df, "loss", loss)
    D = C / (flops_per_sample_per_param * N) if data is None else column(df, "data", data)
    keep = np.isfinite(C) & np.isfinite(N) & np.isfinite(L) & np.isfinite(D)
    if "status" in df.columns:
        keep &= (df["status"] == "ok").to_numpy()
    C, N, L, D = C[keep], N[keep], L[keep], D[keep]
    # The loss too: L_opt = k_L C**c is fitted in log space (shift a loss that can be negative).
    for name, arr in (("budget", C), ("size", N), ("data", D), ("loss", L)):
        positive(name, arr)
    rng = np.random.default_rng(seed)
    rows, boot = [], []
    for c in np.unique(C):
        g = C == c
        lN, lD, y = np.log(N[g]), np.log(D[g]), L[g]
        n = int(g.sum())
        W = np.vstack([np.ones(n), resample_counts(rng, n, n_bootstrap)])
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
        boot_opt = ln_opt[1:]
        inside = (boot_opt > sizes[0]) & (boot_opt < sizes[-1])
        p_interior = float(inside.mean()) if n_bootstrap else np.nan
        if note == "ok" and p_interior < min_p_interior:
            note = "unresolved"
        lo, hi = percentile_interval(np.where(np.isfinite(boot_opt), boot_opt, np.nan), ci_level)
        rows.append({
            "budget": c, "n_runs": n, "n_sizes": sizes.size, "N_opt": np.exp(ln_opt[0]),
            "N_opt_lo": np.exp(lo), "N_opt_hi": np.exp(hi),
            "D_opt": np.exp(ld_opt[0]), "loss_opt": l_opt[0], "interior": note == "ok",
            "p_interior": p_interior, "note": note,
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
        unresolved = f" or not resolved (p_interior < {min_p_interior:g})" if min_p_interior else ""
        warnings.warn(
            f"Left out of the power laws {len(excluded)} budget(s) whose minimum is not "
            f"bracketed by the sampled sizes{unresolved}: "
            f"{list(map(tuple, excluded.itertuples(index=False)))}; sample sizes on both sides of "
            "their optimum, or more seeds where the curve is flat within the noise",
            UserWarning, stacklevel=2)
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
