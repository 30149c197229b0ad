"""Closed forms of the scaling laws: the Chinchilla loss, the optimal allocation, ``k`` in ``C = k N D``.

Pure functions of arrays, no fitting and no I/O: :mod:`flops_fit.scaling`
fits their parameters, :class:`flops_fit.fit_result.Result` evaluates them.

Compute, size and data are tied by ``C = k * N * D`` (FLOPs), with ``N`` the
parameter count, ``D`` the samples (tokens) seen in training and ``k`` the
training FLOPs per parameter per sample: ``k = 6`` for dense transformers
(2 forward + 4 backward; Kaplan et al. 2020). For models whose forward FLOPs
per sample ``f(N)`` are not ``2 N`` (convolutions and FNOs reuse weights
across space), training costs ``C = 3 f(N) D``; when ``f(N)`` is roughly
proportional to ``N``, ``k = 3 f(N) / N`` (estimate it from a sweep with
`estimate_flops_per_sample_per_param`). It often is not: an FNO's spectral
weights add ``modes**2`` parameters per channel pair while its FLOPs grow with
the grid, so ``k`` falls as modes grow. Then compare runs by their measured
``C`` with `flops_fit.scaling.fit_isoflop`, which reads ``D`` from the data and
never assumes ``C = k N D`` (``k`` then only labels the frontier plot).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

__all__ = [
    "PARAM_NAMES",
    "chinchilla_loss",
    "estimate_flops_per_sample_per_param",
    "law_at",
    "log_sigma",
    "nan_resamples",
    "optimal_allocation",
    "percentile_interval",
    "two_sided_z",
]

# Parameters of each fit method, in the order they are reported.
PARAM_NAMES = {
    "parametric": ("E", "A", "B", "alpha", "beta"),
    "isoflop": ("a", "k_N", "b", "k_D", "c", "k_L"),
}


def chinchilla_loss(N: ArrayLike, D: ArrayLike, *, E, A, B, alpha, beta) -> np.ndarray:
    """Loss of the parametric law ``L = E + A / N**alpha + B / D**beta``.

    Parameters
    ----------
    N, D : array_like
        Parameters (real numbers) and training samples (tokens); broadcast.
    E, A, B, alpha, beta : float or array_like
        Irreducible loss, size and data coefficients, size and data exponents.

    References
    ----------
    Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
    eq. (2).

    Examples
    --------
    >>> float(chinchilla_loss(1.0, 1.0, E=1.0, A=2.0, B=3.0, alpha=0.5, beta=0.5))
    6.0
    """
    N, D = np.asarray(N, float), np.asarray(D, float)
    return E + A / N**alpha + B / D**beta


def optimal_allocation(
    C: ArrayLike, *, A, B, alpha, beta, flops_per_sample_per_param: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal size and data for budgets ``C`` under ``C = k N D``.

    Minimising ``A / N**alpha + B / D**beta`` on ``D = C / (k N)`` gives
    ``N* = G (C/k)**a`` and ``D* = (C/k)**b / G`` with ``a = beta/(alpha+beta)``,
    ``b = alpha/(alpha+beta)`` and ``G = (alpha A / (beta B))**(1/(alpha+beta))``
    (Hoffmann et al. 2022, eq. 4).

    Parameters
    ----------
    C : array_like
        Training compute budgets (FLOPs).
    A, B, alpha, beta : float or array_like
        Parameters of `chinchilla_loss`; arrays broadcast against ``C``.
    flops_per_sample_per_param : float
        ``k`` in ``C = k N D`` (FLOPs per parameter per sample); 6 for transformers.

    Returns
    -------
    N_opt, D_opt : ndarray
        Optimal parameters (real numbers) and training samples.
    """
    s = np.asarray(C, float) / flops_per_sample_per_param  # N * D
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    N_opt = G * s ** (beta / (alpha + beta))
    return N_opt, s / N_opt


def estimate_flops_per_sample_per_param(train_flops: ArrayLike, N: ArrayLike, D: ArrayLike) -> float:
    """Estimate ``k`` in ``C = k N D`` from measured runs (geometric mean).

    For an FNO, ``train_flops = 3 * forward_flops_per_sample * D``, so ``k``
    is ``3 * forward_flops_per_sample / N``; it is only a constant when the
    forward FLOPs grow in proportion to ``N`` (check the spread first).

    Parameters
    ----------
    train_flops, N, D : array_like
        Training FLOPs, parameters (real numbers) and samples seen, per run.

    Examples
    --------
    >>> round(estimate_flops_per_sample_per_param([6e6, 6e8], [1e3, 1e4], [1e3, 1e4]), 9)
    6.0
    """
    ratio = np.asarray(train_flops, float) / (np.asarray(N, float) * np.asarray(D, float))
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size == 0:
        raise ValueError("Got no run with finite positive train_flops, N and D")
    return float(np.exp(np.mean(np.log(ratio))))


def nan_resamples(samples: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Bootstrap samples (equal-length 1-D arrays) with every resample that is not finite in all set to NaN.

    Returns the cleaned samples and how many resamples were set to NaN: a
    resample that blows up (overflow, no minimum) counts once, as a failed
    fit, instead of feeding infinities to the intervals.
    """
    arrays = {k: np.asarray(v, float) for k, v in samples.items()}
    if not arrays:
        return arrays, 0
    bad = ~np.all(np.isfinite(np.stack(list(arrays.values()))), axis=0)
    return {k: np.where(bad, np.nan, v) for k, v in arrays.items()}, int(bad.sum())


def percentile_interval(samples: np.ndarray, ci_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap percentile interval over axis 0, failed (NaN) resamples ignored.

    ``samples`` is ``(R, ...)``; returns ``(low, high)`` of shape ``samples.shape[1:]``,
    NaN where no resample is finite (Efron & Tibshirani 1993, ch. 13).
    """
    samples = np.asarray(samples, float)
    if samples.shape[0] == 0 or np.all(np.isnan(samples)):
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan
    tail = 50.0 * (1.0 - ci_level)
    with warnings.catch_warnings():  # a column where every resample failed stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return lo, hi


def two_sided_z(ci_level: float) -> float:
    """The normal quantile ``z`` of ``0.5 + ci_level / 2``: a ``ci_level`` interval is ``mean +- z sigma``."""
    return float(norm.ppf(0.5 + ci_level / 2))


def log_sigma(low: ArrayLike, high: ArrayLike, ci_level: float) -> np.ndarray:
    """Standard deviation of ``ln x`` implied by a ``ci_level`` interval ``[low, high]`` of ``x``.

    ``ln(high / low) / (2 z)`` with ``z`` the normal quantile of ``0.5 + ci_level / 2``:
    exact when ``ln x`` is normal, the usual reading of a bootstrap percentile
    interval of a positive quantity (Efron & Tibshirani 1993, ch. 13). NaN where
    an end is missing.
    """
    z = two_sided_z(ci_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(high, float) / np.asarray(low, float)) / (2 * z)


def law_at(method: str, p: Mapping[str, Any], C: np.ndarray, k: float):
    """(N_opt, D_opt, L_opt) at budgets ``C``; parameters may be arrays (bootstrap)."""
    if method == "parametric":
        N, D = optimal_allocation(
            C, A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"],
            flops_per_sample_per_param=k,
        )
        return N, D, chinchilla_loss(N, D, **{n: p[n] for n in PARAM_NAMES["parametric"]})
    return p["k_N"] * C ** p["a"], p["k_D"] * C ** p["b"], p["k_L"] * C ** p["c"]
