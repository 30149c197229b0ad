"""Checks of a scaling-law fit: Approach 2's bias on noise-free surfaces, and Approach 2 against 3.

References computed here, independently of flops_fit: the closed-form optimum
N* = G (C/k)**a, a = beta/(alpha+beta), G = (alpha A / (beta B))**(1/(alpha+beta))
(Hoffmann et al. 2022, eq. 4) and Approach 2 done by hand with numpy.polyfit.
Surfaces: Chinchilla (their eq. 10: E=1.69, A=406.4, B=410.7, alpha=0.34,
beta=0.28) and Open Athena's asymmetric one (alpha=0.46, beta=0.15).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.scaling import fit_isoflop, fit_parametric
from flops_fit.scaling_check import (
    CHINCHILLA,
    ApproachComparison,
    IsoFLOPBias,
    compare_approaches,
    floor_check,
    isoflop_bias,
)

ASYMMETRIC = {**CHINCHILLA, "alpha": 0.46, "beta": 0.15}


def loss(N, D, p):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def n_star(C, p, k=6.0):
    """Hoffmann et al. eq. 4."""
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return G * (np.asarray(C, float) / k) ** (p["beta"] / (p["alpha"] + p["beta"]))


def sweep(budgets, sizes_for, p, *, k=6.0, gamma=0.0):
    """Runs at each budget's sizes with C = k N**(1+gamma) D, loss on surface ``p``."""
    rows = []
    for C in budgets:
        for N in sizes_for(C):
            D = C / (k * N ** (1 + gamma))
            rows.append({"compute_budget": C, "model_params": N, "train_samples": D,
                         "final_test_loss": loss(N, D, p), "status": "ok"})
    return pd.DataFrame(rows)


def approach2_by_hand(df):
    """Vertex of np.polyfit parabolas in ln N per budget, then log-log lines: (a, ln k_N, b, ln k_D)."""
    lnC, ln_n, ln_d = [], [], []
    for C, g in df.groupby("compute_budget"):
        x = np.log(g["model_params"].to_numpy())
        c2, c1, _ = np.polyfit(x, g["final_test_loss"].to_numpy(), 2)
        xv = -c1 / (2 * c2)
        lnC.append(np.log(C))
        ln_n.append(xv)
        ln_d.append(np.log(C / 6.0) - xv)
    a, ln_kn = np.polyfit(lnC, ln_n, 1)
    b, ln_kd = np.polyfit(lnC, ln_d, 1)
    return a, ln_kn, b, ln_kd


BUDGETS = [1e18, 1e19, 1e20, 1e21]
N_MID = float(n_star(10**19.5, ASYMMETRIC))  # optimum at the middle (log) budget
GEOMETRIES = {
    # The FNO study's way: one size grid for every budget, so the optimum drifts
    # across it (Open Athena's "drifting bias"): the exponent is biased.
    "fixed grid": lambda C: np.geomspace(N_MID / 30, N_MID * 30, 9),
    # Sizes following the optimum but 2x off-centre, more of them above it: a
    # constant vertex shift, so only the intercept is biased.
    "offset grid": lambda C: n_star(C, ASYMMETRIC) * np.geomspace(1 / 4, 16, 8),
}


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_bias_on_an_asymmetric_surface_matches_parabolas_by_hand(geometry):
    df = sweep(BUDGETS, GEOMETRIES[geometry], ASYMMETRIC)
    check = isoflop_bias(df, truth=ASYMMETRIC)
    a_true = ASYMMETRIC["beta"] / (ASYMMETRIC["alpha"] + ASYMMETRIC["beta"])  # 0.2459
    a_hand, ln_kn, b_hand, ln_kd = approach2_by_hand(df)
    assert check.truth_source == "given surface"
    assert check.budgets["used"].all()
    assert check.a_true == pytest.approx(a_true, abs=1e-9)
    assert check.b_true == pytest.approx(1 - a_true, abs=1e-9)
    assert check.a_fit == pytest.approx(a_hand, abs=1e-7)
    assert check.b_fit == pytest.approx(b_hand, abs=1e-7)
    assert check.a_bias == pytest.approx(a_hand - a_true, abs=1e-7)
    C = np.array(BUDGETS)
    n_law_err = np.exp(ln_kn) * C**a_hand / n_star(C, ASYMMETRIC) - 1
    d_law_err = np.exp(ln_kd) * C**b_hand / (C / (6 * n_star(C, ASYMMETRIC))) - 1
    summary = check.summary()
    np.testing.assert_allclose(summary.filter(like="N_opt at", axis=0)["rel_bias"], n_law_err,
                               atol=1e-7)
    np.testing.assert_allclose(summary.filter(like="D_opt at", axis=0)["rel_bias"], d_law_err,
                               atol=1e-7)
    if geometry == "fixed grid":  # the known, non-zero bias: a off by -6.8% here
        assert abs(check.a_bias) > 0.005
        assert summary.loc["a", "rel_bias"] == pytest.approx(a_hand / a_true - 1, abs=1e-6)
    else:  # exponent exact, intercept off by a constant factor at every budget
        assert abs(check.a_bias) < 1e-6
        assert np.all(np.abs(d_law_err) > 0.01)
        np.testing.assert_allclose(d_law_err, d_law_err[0], atol=1e-6)


def test_truth_follows_the_runs_flops_law():
    # FNO-like cost: k = C / (N D) = 300 N**-0.15. On L(N, C / (k0 N**(1+g))) the optimum
    # solves alpha A N**-alpha = beta (1+g) B (k0 N**(1+g) / C)**beta, so
    # a = beta / (alpha + beta (1 + g)) (derived by hand; eq. 4 is g = 0).
    g, k0 = -0.15, 300.0
    p = CHINCHILLA
    a_true = p["beta"] / (p["alpha"] + p["beta"] * (1 + g))
    df = sweep([1e11, 1e12, 1e13], lambda C: np.geomspace(1e3, 1e6, 9), p, k=k0, gamma=g)
    check = isoflop_bias(df)  # the default truth is Chinchilla
    assert check.truth_source == "Chinchilla (Hoffmann et al. 2022)"
    assert check.a_true == pytest.approx(a_true, abs=1e-9)
    assert check.flops_per_sample_per_param == pytest.approx((k0 * 1e3**g, k0 * 1e6**g), rel=1e-9)
    assert check.flops_law_residual < 1e-9


def test_approaches_agree_on_a_symmetric_dense_chinchilla_sweep():
    # Sizes centred on each budget's optimum, 15 per budget over +-1 decade, no noise.
    df = sweep(np.logspace(18, 22, 5), lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 15),
               CHINCHILLA)
    comparison = compare_approaches(df, n_bootstrap=4)
    table = comparison.summary()
    two, three, bias = table.index
    a_true = 0.28 / 0.62
    assert table.loc[two, "a"] == pytest.approx(a_true, abs=1e-6)
    assert table.loc[three, "a"] == pytest.approx(a_true, abs=1e-4)
    assert table.loc[two, "b"] == pytest.approx(1 - a_true, abs=1e-6)
    assert table.loc[three, "b"] == pytest.approx(1 - a_true, abs=1e-4)
    assert abs(table.loc[bias, "a"]) < 1e-6 and abs(table.loc[bias, "b"]) < 1e-6
    assert table.loc[bias, "note"].startswith("truth: Approach 3 fit; a 0.452 -> 0.452 (+0.0%)")
    assert comparison.parametric.params["alpha"] == pytest.approx(0.34, rel=1e-4)
    assert comparison.reasons == {} and comparison.notes == []


def test_approach_2_row_is_the_direct_fit():
    rng = np.random.default_rng(0)
    df = sweep([1e18, 1e19, 1e20], lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 7),
               CHINCHILLA)
    df["final_test_loss"] *= np.exp(rng.normal(0, 0.003, len(df)))
    comparison = compare_approaches(df, n_bootstrap=30, seed=3)
    direct = fit_isoflop(df, n_bootstrap=30, seed=3)
    row = comparison.summary().iloc[0]
    assert (row["a"], row["a_low"], row["a_high"]) == (direct.params["a"], *direct.ci["a"])
    lo, hi = comparison.frontier_ci["a"]
    assert lo < comparison.frontier["a"] < hi


def test_min_p_interior_reaches_approach_2_the_frontier_and_the_bias_check():
    # The largest budget's curve is buried in 5% noise: its vertex may land inside the
    # sizes, but the resamples do not agree on it. With min_p_interior every row uses
    # the three resolved budgets.
    rng = np.random.default_rng(1)
    df = sweep([1e18, 1e19, 1e20, 1e21], lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 7),
               CHINCHILLA)
    df["final_test_loss"] *= np.exp(rng.normal(0, np.where(df["compute_budget"] < 1e21, 0.001, 0.05)))
    comparison = compare_approaches(df, n_bootstrap=200, min_p_interior=0.9)
    with pytest.warns(UserWarning, match=r"\[\(1e\+21, 'unresolved'\)\]"):
        direct = fit_isoflop(df, n_bootstrap=200, min_p_interior=0.9)
    assert direct.budgets["note"].tolist() == ["ok", "ok", "ok", "unresolved"]
    assert comparison.isoflop.params["a"] == direct.params["a"]
    assert comparison.bias.budgets["budget"].tolist() == [1e18, 1e19, 1e20]
    assert comparison.summary().iloc[0]["note"].startswith("power laws over 3 of 4 budgets")


def test_a_failed_approach_2_is_a_row_with_its_reason():
    inner = sweep([1e18], lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 7), CHINCHILLA)
    edge = sweep([1e20], lambda C: n_star(C, CHINCHILLA) * np.geomspace(3, 30, 5), CHINCHILLA)
    comparison = compare_approaches(pd.concat([inner, edge]), n_bootstrap=0)
    table = comparison.summary()
    assert comparison.isoflop is None and comparison.parametric is not None
    assert np.isnan(table.iloc[0]["a"])
    assert table.iloc[0]["note"].startswith(
        "not available: Got 1 budgets with an interior minimum, expected at least 2")
    assert table.iloc[1]["a"] == pytest.approx(0.28 / 0.62, abs=1e-3)  # Approach 3 still stands
    assert table.iloc[2]["note"].startswith(
        "not available: Approach 2 cannot fit the noise-free surface (Approach 3 fit)")
    assert "sampled like these runs: Got 1 budgets with an interior minimum" in table.iloc[2]["note"]


def test_nothing_fits_one_budget_of_five_runs():
    df = sweep([1e18], lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 5), CHINCHILLA)
    table = compare_approaches(df, n_bootstrap=0).summary()
    assert table[["a", "b"]].isna().all().all()
    assert table["note"].tolist() == [
        "not available: Got 1 budgets with an interior minimum, expected at least 2 (budgets and "
        "notes: [])",
        "not available: Got 5 valid points, expected at least 6 for 5 parameters",
        "not available: no Approach 3 fit to take as the truth; pass truth='chinchilla'",
    ]


def test_summary_repr_and_budget_selection():
    df = sweep(BUDGETS, GEOMETRIES["fixed grid"], ASYMMETRIC)
    check = isoflop_bias(df, truth=ASYMMETRIC, budgets=[1e19, 1e20])
    assert isinstance(check, IsoFLOPBias)
    assert check.budgets["budget"].tolist() == [1e19, 1e20]
    assert check.summary().index.tolist() == [
        "a", "b", "N_opt at C=1e+19", "N_opt at C=1e+20", "D_opt at C=1e+19", "D_opt at C=1e+20"]
    assert list(check.summary()) == ["true", "recovered", "bias", "rel_bias"]
    assert repr(check).startswith("IsoFLOPBias(truth=given surface, a: true 0.2459, recovered ")
    comparison = compare_approaches(df, n_bootstrap=0, truth=ASYMMETRIC)
    assert isinstance(comparison, ApproachComparison)
    assert "Approach 2 bias (recovered - true, noise-free)" in repr(comparison)
    assert comparison.bias.a_bias == pytest.approx(isoflop_bias(df, truth=ASYMMETRIC).a_bias)


def _good() -> pd.DataFrame:
    return sweep([1e18, 1e19], lambda C: n_star(C, CHINCHILLA) * np.geomspace(0.1, 10, 5),
                 CHINCHILLA)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"loss": "val_loss"}, ValueError, r"Got loss='val_loss', expected a column of df: \["),
    ({"data": "tokens"}, ValueError, r"Got data='tokens', expected a column of df"),
    ({"truth": {"A": 1.0, "B": 1.0}}, ValueError,
     r"Got truth keys \['A', 'B'\], expected \['A', 'B', 'E', 'alpha', 'beta'\]"),
    ({"truth": {**CHINCHILLA, "alpha": -0.3}}, ValueError,
     r"Got truth \{'alpha': -0.3\}, expected positive finite A, B, alpha, beta"),
    ({"truth": "chinchilla"}, TypeError, r"Got truth of type str, expected None, a parametric"),
    ({"budgets": [5e22]}, ValueError, r"Got budgets \[5e\+22\], expected some of the sweep's "
                                      r"budgets \[1e\+18, 1e\+19\]"),
    ({"data": None, "flops_per_sample_per_param": 0.0}, ValueError,
     r"Got flops_per_sample_per_param=0.0, expected a positive number"),
])
def test_isoflop_bias_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        isoflop_bias(_good(), **kwargs)


def test_isoflop_bias_input_validation():
    with pytest.raises(TypeError, match=r"Got df of type list, expected a DataFrame or a mapping"):
        isoflop_bias([1e18, 1e19])
    with pytest.raises(ValueError, match=r"Got no run with status 'ok' and finite 'compute_budget', "
                                         r"'model_params', 'train_samples', 'final_test_loss' \(of 10"):
        isoflop_bias(_good().assign(status="failed"))
    with pytest.raises(ValueError, match=r"Got size values \[-1.0\], expected positive numbers"):
        isoflop_bias(_good().assign(model_params=lambda d: d["model_params"].where(d.index > 0, -1.0)))
    result = fit_isoflop(sweep(BUDGETS, GEOMETRIES["fixed grid"], ASYMMETRIC), n_bootstrap=0)
    with pytest.raises(ValueError, match=r"Got truth with method='isoflop', expected a 'parametric'"):
        isoflop_bias(_good(), truth=result)
    # Every size above the optimum: the noise-free surface has no interior minimum either.
    above = sweep([1e18, 1e19], lambda C: n_star(C, CHINCHILLA) * np.geomspace(3, 30, 5), CHINCHILLA)
    with pytest.raises(ValueError, match=r"Approach 2 cannot fit the noise-free surface \(Chinchilla "
                                         r"\(Hoffmann et al. 2022\)\) sampled like these runs: Got 0"):
        isoflop_bias(above)


def test_a_parametric_result_is_a_truth():
    df = _good()
    fit = fit_parametric(df["model_params"], df["train_samples"], df["final_test_loss"], n_starts=4)
    check = isoflop_bias(df, truth=fit)
    assert check.truth_source == "Approach 3 fit"
    assert check.truth["beta"] == pytest.approx(0.28, rel=1e-3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"truth": "approach1"}, r"Got truth='approach1', expected one of \['parametric', 'chinchilla'\]"),
    ({"n_bootstrap": -1}, r"Got n_bootstrap=-1, expected an integer >= 0"),
    ({"ci_level": 95}, r"Got ci_level=95, expected a number in \(0, 1\)"),
    ({"size": "params"}, r"Got size='params', expected a column of df"),
    ({"min_p_interior": -0.5}, r"^Got min_p_interior=-0\.5, expected a number in \[0, 1\]$"),
    ({"min_p_interior": 0.9, "n_bootstrap": 0},
     r"^Got min_p_interior=0\.9 with n_bootstrap=0, expected n_bootstrap > 0"),
])
def test_compare_approaches_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_approaches(_good(), **kwargs)


def test_floor_check_counts_the_runs_below_the_floor() -> None:
    runs = pd.DataFrame({"compute_budget": [1e10, 1e10, 1e10, 1e11, 1e11, 1e11],
                         "final_test_loss": [0.20, 0.13, 0.14, 0.10, 0.09, np.nan]})
    table = floor_check(runs, floor=0.135)
    assert table["compute_budget"].tolist() == [1e10, 1e11]
    assert table["runs"].tolist() == [3, 2] and table["below_floor"].tolist() == [1, 2]
    np.testing.assert_allclose(table["share_below"], [1 / 3, 1.0])
    np.testing.assert_allclose(table["mean_margin"], [0.135 - 0.47 / 3, 0.135 - 0.095])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"floor": float("nan")}, r"Got floor=nan, expected a finite loss"),
        ({"floor": "0.1"}, r"Got floor='0.1', expected a finite loss"),
        ({"floor": 0.1, "loss": "final_loss"}, r"Got loss='final_loss', expected a column of df"),
    ],
)
def test_floor_check_refuses(kwargs, match) -> None:
    runs = pd.DataFrame({"compute_budget": [1e10], "final_test_loss": [0.2]})
    with pytest.raises(ValueError, match=match):
        floor_check(runs, **kwargs)
