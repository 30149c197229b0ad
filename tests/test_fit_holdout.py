"""Leave-one-budget-out check of Approach 2 (flops_fit.fit_holdout).

References computed here, independently of flops_fit: the closed-form optimum
N* = G (C/k)**a of the Chinchilla surface (Hoffmann et al. 2022, eq. 4), and
Approach 2 done by hand with numpy.polyfit (a parabola in ln N per budget,
then a line through the vertices in log-log space).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fit_holdout import holdout_check
from flops_fit.scaling_check import CHINCHILLA

BUDGETS = [1e18, 1e19, 1e20, 1e21]
A_TRUE = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])


def n_star(C, k=6.0):
    p = CHINCHILLA
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return G * (np.asarray(C, float) / k) ** A_TRUE


def sweep(budgets=BUDGETS, *, seeds=3, noise=0.002, shift=None, k=6.0):
    """Runs at 7 sizes centred on each budget's optimum, Chinchilla loss times (1 + noise * N(0, 1)).

    ``shift`` = (budget, factor) moves that budget's sizes by ``factor`` after the losses
    are computed: its curve's minimum then sits ``factor`` times off the law.
    """
    rng = np.random.default_rng(1)
    p, rows = CHINCHILLA, []
    for C in budgets:
        for N in n_star(C) * np.geomspace(1 / 8, 8, 7):
            D = C / (k * N)
            for _ in range(seeds):
                L = (p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]) * (1 + noise * rng.normal())
                label = N * shift[1] if shift and C == shift[0] else N
                rows.append({"compute_budget": C, "model_params": label, "train_samples": D,
                             "final_test_loss": L, "status": "ok"})
    return pd.DataFrame(rows)


def predicted_by_hand(df, left_out):
    """ln N_opt at ``left_out`` from np.polyfit parabolas and a line over the other budgets."""
    lnC, lnN = [], []
    for C, g in df[df["compute_budget"] != left_out].groupby("compute_budget"):
        c2, c1, _ = np.polyfit(np.log(g["model_params"]), g["final_test_loss"], 2)
        lnC.append(np.log(C))
        lnN.append(-c1 / (2 * c2))
    a, b = np.polyfit(lnC, lnN, 1)
    return a * np.log(left_out) + b, a


def test_every_budget_agrees_on_a_chinchilla_surface():
    df = sweep()
    table = holdout_check(df, n_bootstrap=200)
    assert table["budget"].tolist() == BUDGETS
    assert table["kind"].tolist() == ["extrapolation", "interpolation", "interpolation", "extrapolation"]
    assert table["agrees"].all(), table
    # Each left-out budget's own optimum and the prediction are the surface's (eq. 4) within a few %.
    truth = n_star(table["budget"])
    np.testing.assert_allclose(table["N_opt"], truth, rtol=0.05)
    np.testing.assert_allclose(table["N_pred"], truth, rtol=0.08)
    np.testing.assert_allclose(table["a"], A_TRUE, atol=0.02)
    assert (table["N_pred_lo"] < table["N_pred"]).all() and (table["N_pred"] < table["N_pred_hi"]).all()
    assert (table["a_lo"] < table["a"]).all() and (table["a"] < table["a_hi"]).all()


@pytest.mark.parametrize("left_out", BUDGETS)
def test_prediction_is_approach_2_by_hand_on_the_other_budgets(left_out):
    df = sweep()
    row = holdout_check(df, n_bootstrap=50).set_index("budget").loc[left_out]
    ln_n, a = predicted_by_hand(df, left_out)
    assert np.log(row["N_pred"]) == pytest.approx(ln_n, abs=1e-6)
    assert row["a"] == pytest.approx(a, abs=1e-6)
    assert row["ratio"] == pytest.approx(row["N_pred"] / row["N_opt"], rel=1e-12)


@pytest.mark.parametrize("factor", [1 / 4, 4.0])
def test_a_budget_off_the_law_is_flagged(factor):
    df = sweep(shift=(1e20, factor))
    row = holdout_check(df, n_bootstrap=200).set_index("budget").loc[1e20]
    assert not row["agrees"]
    assert abs(row["z"]) > 1.96
    # The other budgets still predict the surface's optimum; its own moved by ``factor``.
    assert row["ratio"] == pytest.approx(1 / factor, rel=0.25)


def test_unresolved_budgets_are_neither_left_out_nor_used():
    runs = sweep([1e18, 1e19, 1e20, 1e21, 1e22], noise=0.0)
    flat = runs["compute_budget"] == 1e22  # a shallow dip under noise: interior, resolved in ~80% of resamples
    x = np.log(runs.loc[flat, "model_params"])
    x = (x - x.mean()) / x.std()
    runs.loc[flat, "final_test_loss"] = 2.0 + 0.01 * x**2 + np.random.default_rng(3).normal(0, 0.03, flat.sum())
    unresolved = holdout_check(runs, n_bootstrap=200, min_p_interior=0.9)
    assert unresolved["budget"].tolist() == [1e18, 1e19, 1e20, 1e21]
    kept = holdout_check(runs, n_bootstrap=200)
    assert kept["budget"].tolist() == [1e18, 1e19, 1e20, 1e21, 1e22]
    assert kept.set_index("budget").loc[1e21, "kind"] == "interpolation"
    # Without 1e22, 1e21 is the largest budget: predicting it is extrapolation.
    assert unresolved.set_index("budget").loc[1e21, "kind"] == "extrapolation"


def test_errors():
    two = sweep(BUDGETS[:2])
    with pytest.raises(ValueError, match=r"Got 2 budgets with a resolved interior minimum \(\[1e\+18, 1e\+19\]\), "
                                         r"expected at least 3: leaving one out must leave 2"):
        holdout_check(two, n_bootstrap=20)
    with pytest.raises(ValueError, match=r"Got n_bootstrap=0, expected at least 1: the check compares intervals"):
        holdout_check(sweep(), n_bootstrap=0)
    with pytest.raises(ValueError, match=r"Got min_p_interior=1.5, expected a number in \[0, 1\]"):
        holdout_check(sweep(), min_p_interior=1.5)
