"""Leave one budget out: does an IsoFLOP law predict the optimum of a budget it did not see?

A scaling law earns its name by predicting: the question the study asks is
"how big a model for a budget I have not run?". :func:`holdout_check` fits
Approach 2 (:func:`flops_fit.scaling.fit_isoflop`) once per resolved budget
with that budget's runs left out, predicts that budget's compute-optimal size
from the other budgets' power law, and compares it with the optimum the
left-out budget's own parabola finds. Leaving out the largest budget is an
honest extrapolation test (what the law is for); leaving out an inner one is
interpolation. The refits' exponents show how much the law leans on each
budget (a jackknife over budgets).

Units: compute in FLOPs, size in parameters.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
sec. 3.2 (Approach 2). Efron & Tibshirani (1993), "An Introduction to the
Bootstrap", ch. 11 (the jackknife) and 13 (percentile intervals).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from flops_fit.fit_inputs import check_options, column
from flops_fit.isoflop_fit import fit_isoflop
from flops_fit.laws import log_sigma, two_sided_z

__all__ = ["holdout_check"]


def holdout_check(
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
) -> pd.DataFrame:
    """Predict each resolved budget's optimal size from the other budgets' Approach 2 law.

    The budgets are those `fit_isoflop` with these options keeps (interior,
    and resolved in at least ``min_p_interior`` of its resamples). For each,
    Approach 2 is refitted on the other kept budgets' runs and its
    ``N_opt(C)`` read at the left-out budget, with the refit's bootstrap
    interval; the left-out budget's own optimum and interval come from the fit
    of all budgets. They are compared on a log scale, with the two intervals
    read as normal in ``ln N`` and independent (different runs):
    ``z = ln(N_pred / N_opt) / sqrt(s_pred**2 + s_opt**2)``, ``s`` the
    standard deviation each interval implies (`flops_fit.laws.log_sigma`).

    Parameters
    ----------
    df : DataFrame
        One row per run (see `fit_isoflop`).
    budget, size, loss, data : str
        Columns: compute budget (FLOPs), parameters, the loss to minimise,
        training samples (None: ``D = C / (flops_per_sample_per_param N)``).
    n_bootstrap, seed, ci_level : int, int, float
        Bootstrap resamples of every fit (at least 1: the check compares
        intervals), their seed and the intervals' coverage.
    flops_per_sample_per_param : float
        ``k``, only used when ``data`` is None.
    min_p_interior : float
        Budgets resolved in fewer resamples than this are neither left out
        nor used (see `fit_isoflop`).

    Returns
    -------
    DataFrame
        One row per kept budget, ascending: ``kind`` ("extrapolation" for the
        smallest and largest, else "interpolation"); ``N_opt``, ``N_opt_lo``,
        ``N_opt_hi`` (its own optimum, parameters); ``N_pred``, ``N_pred_lo``,
        ``N_pred_hi`` (predicted without it); ``ratio`` (``N_pred / N_opt``);
        ``z``; ``agrees`` (``|z|`` within the ``ci_level`` normal quantile);
        ``a``, ``a_lo``, ``a_hi`` (the exponent of ``N_opt ~ C**a`` fitted
        without it).

    Raises
    ------
    ValueError
        ``n_bootstrap`` of 0, or fewer than 3 kept budgets (leaving one out
        must leave two to fit a line).
    """
    check_options(n_bootstrap, ci_level, flops_per_sample_per_param)  # min_p_interior: fit_isoflop checks it
    if n_bootstrap < 1:
        raise ValueError(f"Got n_bootstrap={n_bootstrap}, expected at least 1: the check compares intervals")
    options = {"budget": budget, "size": size, "loss": loss, "data": data, "n_bootstrap": n_bootstrap,
               "seed": seed, "ci_level": ci_level, "flops_per_sample_per_param": flops_per_sample_per_param}
    with warnings.catch_warnings():  # budgets left out of the law are reported by the caller's own fit
        warnings.simplefilter("ignore", UserWarning)
        full = fit_isoflop(df, min_p_interior=min_p_interior, **options)
    kept = full.budgets[full.budgets["interior"]].reset_index(drop=True)
    if len(kept) < 3:
        raise ValueError(
            f"Got {len(kept)} budgets with a resolved interior minimum "
            f"({kept['budget'].tolist()}), expected at least 3: leaving one out must leave 2 to fit a line"
        )
    C = column(df, "budget", budget)
    z_level = two_sided_z(ci_level)
    rows = []
    for i, own in kept.iterrows():
        others = kept["budget"].drop(index=i).to_numpy(float)
        rest = df[np.isin(C, others)]
        # The other budgets were kept by the full fit: refit them with min_p_interior 0, so a budget
        # near the threshold is not dropped by the reshuffled bootstrap streams of a smaller fit.
        refit = fit_isoflop(rest, min_p_interior=0.0, **options)
        pred = refit.predict(own["budget"]).iloc[0]
        s_pred = log_sigma(pred["N_opt_low"], pred["N_opt_high"], ci_level)
        s_own = log_sigma(own["N_opt_lo"], own["N_opt_hi"], ci_level)
        z = float(np.log(pred["N_opt"] / own["N_opt"]) / np.hypot(s_pred, s_own))
        outside = own["budget"] < others.min() or own["budget"] > others.max()
        a_lo, a_hi = refit.ci["a"]
        rows.append({
            "budget": float(own["budget"]), "kind": "extrapolation" if outside else "interpolation",
            "N_opt": float(own["N_opt"]), "N_opt_lo": float(own["N_opt_lo"]), "N_opt_hi": float(own["N_opt_hi"]),
            "N_pred": float(pred["N_opt"]), "N_pred_lo": float(pred["N_opt_low"]),
            "N_pred_hi": float(pred["N_opt_high"]), "ratio": float(pred["N_opt"] / own["N_opt"]),
            "z": z, "agrees": bool(abs(z) <= z_level),
            "a": float(refit.params["a"]), "a_lo": float(a_lo), "a_hi": float(a_hi),
        })
    return pd.DataFrame(rows)
