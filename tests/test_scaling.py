"""Scaling-law fits against the published Chinchilla surface (Hoffmann et al. 2022).

Reference values: tests/_reference.py (their eq. 10);
the frontier exponent a = beta/(alpha+beta) = 0.4516 and, at C = 1e24 FLOPs with
C = 6ND, N* = 4.130e10, D* = 4.036e12, L* = 1.9112 (closed form, their eq. 4).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _reference import CHINCHILLA, CHINCHILLA_EXPONENTS  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402

from flops_fit.fit_result import Result  # noqa: E402
from flops_fit.scaling import (  # noqa: E402
    chinchilla_loss,
    estimate_flops_per_sample_per_param,
    fit_isoflop,
    fit_parametric,
    optimal_allocation,
)

TRUTH = CHINCHILLA
LAW = {k: TRUTH[k] for k in ("A", "B", "alpha", "beta")}


def chinchilla_points(budgets, sizes_per_budget=40, *, k=6.0, noise=0.0, seed=0):
    """Sizes log-spaced over 4 decades per budget, D = C / (k N), loss on the surface."""
    C = np.repeat(budgets, sizes_per_budget)
    N = np.concatenate([np.logspace(np.log10(c) / 2 - 3.5, np.log10(c) / 2 + 0.5,
                                    sizes_per_budget) for c in budgets])
    D = C / (k * N)
    L = chinchilla_loss(N, D, **TRUTH)
    L = L * np.exp(np.random.default_rng(seed).normal(0.0, noise, L.size)) if noise else L
    return N, D, L, C


@pytest.fixture(scope="module")
def exact_fit() -> Result:
    N, D, L, C = chinchilla_points(np.logspace(17, 22, 6))  # 240 points
    return fit_parametric(N, D, L, budget=C)


def test_closed_form_optimum_matches_published_numbers():
    N, D = optimal_allocation(1e24, **LAW)
    assert float(N) == pytest.approx(4.130e10, rel=1e-3)
    assert float(D) == pytest.approx(4.036e12, rel=1e-3)
    assert float(chinchilla_loss(N, D, **TRUTH)) == pytest.approx(1.9112, rel=1e-4)


@pytest.mark.parametrize("k", [6.0, 120.0])
@pytest.mark.parametrize("C", [1e18, 1e24])
def test_closed_form_optimum_matches_numerical_minimum(C, k):
    # Independent reference: minimise L(N, C / (k N)) over log N numerically.
    res = minimize_scalar(lambda x: chinchilla_loss(np.exp(x), C / (k * np.exp(x)), **TRUTH),
                          bounds=(0.0, 60.0), method="bounded", options={"xatol": 1e-10})
    N, D = optimal_allocation(C, **LAW, flops_per_sample_per_param=k)
    assert float(N) == pytest.approx(np.exp(res.x), rel=1e-6)
    assert float(N * D * k) == pytest.approx(C, rel=1e-12)


def test_noise_free_surface_recovered(exact_fit):
    assert exact_fit.converged
    for name, value in TRUTH.items():
        assert exact_fit.params[name] == pytest.approx(value, rel=1e-5), name
    assert exact_fit.exponents["a"] == pytest.approx(0.4516, abs=1e-4)
    assert exact_fit.exponents["b"] == pytest.approx(1 - 0.4516, abs=1e-4)
    row = exact_fit.predict(1e24).iloc[0]
    assert row["N_opt"] == pytest.approx(4.130e10, rel=1e-3)
    assert row["D_opt"] == pytest.approx(4.036e12, rel=1e-3)
    assert row["loss_opt"] == pytest.approx(1.9112, rel=1e-4)
    assert np.isnan(row["N_opt_low"])  # no bootstrap, no interval


# The L-BFGS-B tolerances of the original analysis (scipy's defaults).
SCIPY_DEFAULTS = {"ftol": 2.220446049250313e-09, "gtol": 1e-05}


def test_mean_reduced_huber_stops_early():
    """Same data and optimiser; the objective divided by n trips the absolute gradient test."""
    N, D, L, C = chinchilla_points(np.logspace(17, 22, 6))
    summed = fit_parametric(N, D, L, lbfgs_options=SCIPY_DEFAULTS)
    mean = fit_parametric(N, D, L, reduction="mean", lbfgs_options=SCIPY_DEFAULTS)
    assert summed.converged and mean.converged  # both optimisers believe they are done ...
    assert "PROJECTED GRADIENT <= PGTOL" in mean.message

    def error(fit):
        return max(abs(fit.params[k] / v - 1) for k, v in TRUTH.items())

    assert error(summed) < 1e-5
    assert error(mean) > 1e-4  # ... but the mean-reduced one stopped early


def test_truth_inside_bootstrap_intervals_with_noise():
    N, D, L, C = chinchilla_points(np.logspace(17, 21, 5), 16, noise=0.005, seed=3)
    fit = fit_parametric(N, D, L, n_bootstrap=60, seed=1)
    assert fit.n_bootstrap == 60
    truth = {**TRUTH, **CHINCHILLA_EXPONENTS}
    for name, value in truth.items():
        lo, hi = fit.ci[name]
        assert lo < value < hi, (name, lo, value, hi)
        assert hi - lo < 0.5 * abs(value), name  # and the intervals are informative
    pred = fit.predict([1e20]).iloc[0]
    assert pred["N_opt_low"] < pred["N_opt"] < pred["N_opt_high"]
    assert pred["loss_opt_low"] < pred["loss_opt"] < pred["loss_opt_high"]


def test_bootstrap_is_seeded():
    N, D, L, _ = chinchilla_points(np.logspace(17, 20, 4), 10, noise=0.01, seed=0)
    a = fit_parametric(N, D, L, n_bootstrap=5, seed=7, n_starts=2)
    b = fit_parametric(N, D, L, n_bootstrap=5, seed=7, n_starts=2)
    c = fit_parametric(N, D, L, n_bootstrap=5, seed=8, n_starts=2)
    np.testing.assert_array_equal(a.bootstrap["alpha"], b.bootstrap["alpha"])
    assert not np.array_equal(a.bootstrap["alpha"], c.bootstrap["alpha"])


def test_custom_compute_factor_for_fno_style_budgets():
    # FNO-like: C = 3 * forward_flops * D with forward_flops = 40 N, so k = 120.
    k = 120.0
    N, D, L, C = chinchilla_points(np.logspace(12, 17, 6), 40, k=k)
    assert estimate_flops_per_sample_per_param(3 * 40 * N * D, N, D) == pytest.approx(k)
    fit = fit_parametric(N, D, L, budget=C, flops_per_sample_per_param=k)
    N_true, D_true = optimal_allocation(1e18, **LAW, flops_per_sample_per_param=k)
    row = fit.predict(1e18).iloc[0]
    assert row["N_opt"] == pytest.approx(float(N_true), rel=1e-4)
    assert row["D_opt"] == pytest.approx(float(D_true), rel=1e-4)


def test_estimate_compute_factor_needs_valid_runs():
    with pytest.raises(ValueError, match=r"Got no run with finite positive train_flops, N and D"):
        estimate_flops_per_sample_per_param([np.nan, 0.0], [1.0, 1.0], [1.0, 1.0])


def test_nan_rows_dropped_with_warning():
    N, D, L, C = chinchilla_points(np.logspace(17, 19, 3), 6)
    L[2] = np.nan
    with pytest.warns(UserWarning, match=r"Dropped 1 rows with NaN N, D or loss"):
        fit = fit_parametric(N, D, L, n_starts=1)
    assert len(fit.data) == N.size - 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"N": [1.0] * 5}, r"Got N, D, loss, budget of lengths 5, 8, 8, 8, expected equal"),
    ({"N": [-1.0] + [1.0] * 7}, r"Got N with non-positive or infinite values \[-1.0\]"),
    ({"loss": np.ones((2, 4))}, r"Got loss with shape \(2, 4\), expected a 1-D array"),
    ({"reduction": "median"}, r"Got reduction='median', expected one of \['sum', 'mean'\]"),
    ({"delta": 0.0}, r"Got delta=0.0, expected a positive number"),
    ({"n_bootstrap": -1}, r"Got n_bootstrap=-1, expected an integer >= 0"),
    ({"ci_level": 95}, r"Got ci_level=95, expected a number in \(0, 1\)"),
    ({"flops_per_sample_per_param": 0}, r"Got flops_per_sample_per_param=0, expected a pos"),
    ({"n_starts": 0}, r"Got n_starts=0, expected an integer in \[1, 4500\]"),
    ({"lbfgs_options": {"tol": 1.0}}, r"Got lbfgs_options keys \['tol'\], expected some of"),
    ({"N": [1.0] * 5, "D": [1.0] * 5, "loss": [1.0] * 5, "budget": None},
     r"Got 5 valid points, expected at least 6"),
])
def test_fit_parametric_validation(kwargs, match):
    args = {"N": np.arange(1.0, 9.0), "D": np.arange(1.0, 9.0), "loss": np.ones(8),
            "budget": np.ones(8)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_parametric(args.pop("N"), args.pop("D"), args.pop("loss"), **args)


def isoflop_frame(budgets, *, span=1.0, sizes=15, shift=0.0):
    """IsoFLOP sweep centred on the true optimum (log10 offsets in [-span, span] + shift)."""
    rows = []
    for C in budgets:
        n_opt, _ = optimal_allocation(C, **LAW)
        for N in n_opt * np.logspace(shift - span, shift + span, sizes):
            D = C / (6 * N)
            rows.append({"compute_budget": C, "model_params": N, "train_samples": D,
                         "final_test_loss": float(chinchilla_loss(N, D, **TRUTH)),
                         "status": "ok"})
    return pd.DataFrame(rows)


def test_isoflop_recovers_frontier_exponent():
    df = isoflop_frame(np.logspace(17, 22, 6))
    fit = fit_isoflop(df, n_bootstrap=50)
    assert fit.params["a"] == pytest.approx(0.4516, abs=1e-3)
    assert fit.params["b"] == pytest.approx(0.5484, abs=1e-3)
    assert fit.budgets["interior"].all()
    n_true, d_true = optimal_allocation(fit.budgets["budget"].to_numpy(), **LAW)
    # A parabola in log N misses the skewed IsoFLOP curve's minimum by ~4% at +-1 decade
    # (the known Approach 2 bias); the same factor at every budget leaves a unbiased.
    np.testing.assert_allclose(fit.budgets["N_opt"], n_true, rtol=5e-2)
    np.testing.assert_allclose(fit.budgets["D_opt"], d_true, rtol=5e-2)
    lo, hi = fit.ci["a"]
    assert lo <= fit.params["a"] <= hi


def test_isoflop_flags_and_excludes_edge_budgets():
    inner = isoflop_frame(np.logspace(17, 21, 5))
    edge = isoflop_frame([1e22], span=0.5, shift=1.0, sizes=8)  # all sizes above the optimum
    failed = pd.DataFrame([{"compute_budget": 1e20, "model_params": 1e9, "train_samples": 1e10,
                            "final_test_loss": np.nan, "status": "failed"}])
    df = pd.concat([inner, edge, failed], ignore_index=True)
    with pytest.warns(UserWarning, match=r"Left out of the power laws 1 budget\(s\).*1e\+22"):
        fit = fit_isoflop(df, n_bootstrap=0)
    row = fit.budgets.set_index("budget").loc[1e22]
    assert not row["interior"] and row["note"] == "minimum at edge"
    clean = fit_isoflop(inner, n_bootstrap=0)
    assert fit.params["a"] == pytest.approx(clean.params["a"], rel=1e-12)  # edge not used
    assert fit.budgets["n_runs"].sum() == len(inner) + len(edge)  # failed row ignored


def _dip_or_flat_frame(curvatures: dict[float, float], noise: float = 0.005) -> pd.DataFrame:
    """5 sizes x 2 seeds per budget: loss 1 + curvature x (standardised ln N)^2 + noise."""
    rng = np.random.default_rng(3)
    x = np.repeat(np.log(np.geomspace(1e4, 1e6, 5)), 2)
    z = (x - x.mean()) / (x.max() - x.mean())
    return pd.DataFrame([
        {"compute_budget": c, "model_params": float(np.exp(v)), "train_samples": c / (6 * np.exp(v)),
         "final_test_loss": float(y)}
        for c, k in curvatures.items()
        for v, y in zip(x, 1.0 + k * z**2 + rng.normal(0, noise, x.size), strict=True)
    ])


def test_isoflop_p_interior_tells_a_dip_from_a_flat_noisy_curve():
    # Two budgets dip by 10% of the loss under 0.5% noise: every resample keeps
    # the vertex inside. The third is flat under the same noise: its "optimum"
    # is noise, and resampled runs move or lose it.
    df = _dip_or_flat_frame({1e12: 0.1, 1e13: 0.1, 1e14: 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the flat budget may be left out
        budgets = fit_isoflop(df, n_bootstrap=400).budgets.set_index("budget")
        no_boot = fit_isoflop(df, n_bootstrap=0).budgets
    assert budgets.loc[1e12, "p_interior"] > 0.95
    assert budgets.loc[1e13, "p_interior"] > 0.95
    assert budgets.loc[1e14, "p_interior"] < 0.8
    assert no_boot["p_interior"].isna().all()


def test_isoflop_min_p_interior_leaves_out_an_unresolved_budget():
    # 1e15 dips by 0.8% of the loss under 0.5% noise: its vertex is inside the sizes
    # (interior) but half the resamples lose it. min_p_interior 0.9 leaves it out,
    # and the power laws are exactly those of the three resolved budgets.
    resolved = {1e12: 0.1, 1e13: 0.1, 1e14: 0.1}
    df = _dip_or_flat_frame({**resolved, 1e15: 0.008})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a resample without a minimum
        kept = fit_isoflop(df, n_bootstrap=400)
    assert kept.budgets["interior"].all() and kept.budgets["p_interior"].iloc[-1] < 0.6
    with pytest.warns(UserWarning, match=r"Left out of the power laws 1 budget\(s\).*not resolved "
                                          r"\(p_interior < 0\.9\): \[\(1000000000000000\.0, 'unresolved'\)\]"):
        fit = fit_isoflop(df, n_bootstrap=400, min_p_interior=0.9)
    assert fit.budgets["note"].tolist() == ["ok", "ok", "ok", "unresolved"]
    three = fit_isoflop(_dip_or_flat_frame(resolved), n_bootstrap=0)
    for name in ("a", "b", "k_N"):
        assert fit.params[name] == pytest.approx(three.params[name], rel=1e-12)
    assert fit.params["a"] != pytest.approx(kept.params["a"], rel=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"min_p_interior": 1.5}, r"^Got min_p_interior=1\.5, expected a number in \[0, 1\]$"),
    ({"min_p_interior": "0.9"}, r"^Got min_p_interior='0\.9', expected a number in \[0, 1\]$"),
    ({"min_p_interior": 0.9, "n_bootstrap": 0},
     r"^Got min_p_interior=0\.9 with n_bootstrap=0, expected n_bootstrap > 0: p_interior is measured "
     r"on bootstrap resamples$"),
])
def test_isoflop_min_p_interior_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_isoflop(_dip_or_flat_frame({1e12: 0.1, 1e13: 0.1}), **kwargs)


def test_isoflop_without_data_column_uses_compute_factor():
    df = isoflop_frame(np.logspace(17, 20, 4))
    a = fit_isoflop(df, n_bootstrap=0)
    b = fit_isoflop(df.drop(columns=["train_samples"]), data=None, n_bootstrap=0)
    for name in ("a", "b", "k_N", "k_D"):
        assert b.params[name] == pytest.approx(a.params[name], rel=1e-9)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"loss": "val_loss"}, r"Got loss='val_loss', expected a column of df"),
    ({"budget": "flops"}, r"Got budget='flops', expected a column of df"),
    ({"n_bootstrap": 1.5}, r"Got n_bootstrap=1.5, expected an integer >= 0"),
])
def test_fit_isoflop_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_isoflop(isoflop_frame([1e17, 1e18]), **kwargs)


def test_fit_isoflop_needs_two_interior_budgets():
    df = pd.concat([isoflop_frame([1e17]), isoflop_frame([1e18], shift=1.5, span=0.5)])
    with pytest.raises(ValueError, match=r"Got 1 budgets with an interior minimum, expected"):
        fit_isoflop(df)


@pytest.fixture(scope="module")
def small_results() -> tuple[Result, Result]:
    N, D, L, C = chinchilla_points(np.logspace(17, 20, 4), 8, noise=0.01, seed=2)
    parametric = fit_parametric(N, D, L, budget=C, n_bootstrap=4, n_starts=2)
    isoflop = fit_isoflop(isoflop_frame(np.logspace(17, 20, 4), sizes=7), n_bootstrap=20)
    return parametric, isoflop


@pytest.mark.parametrize("which", [0, 1])
def test_result_json_round_trip(small_results, which, tmp_path):
    result = small_results[which]
    if which == 0:  # a failed bootstrap resample is NaN, which JSON cannot hold
        alpha = result.bootstrap["alpha"].copy()
        alpha[0] = np.nan
        result = dataclasses.replace(result, bootstrap={**result.bootstrap, "alpha": alpha})
    back = Result.from_json(result.to_json())
    assert back.method == result.method and back.params == result.params
    for name, samples in result.bootstrap.items():
        np.testing.assert_array_equal(back.bootstrap[name], samples)
    pd.testing.assert_frame_equal(back.data, result.data, check_dtype=False)
    if result.budgets is not None:
        pd.testing.assert_frame_equal(back.budgets, result.budgets, check_dtype=False)
    pd.testing.assert_frame_equal(back.predict([1e21, 1e23]), result.predict([1e21, 1e23]))
    loaded = Result.load(result.save(tmp_path / "fit.json"))
    assert loaded.summary().equals(result.summary())


def test_result_from_json_rejects_other_documents():
    with pytest.raises(ValueError, match=r"Got format=None, expected 'flops_fit.Result/1'"):
        Result.from_json('{"method": "parametric"}')


@pytest.mark.parametrize("which", [0, 1])
def test_chinchilla_table_and_plot(small_results, which):
    result = small_results[which]
    table = result.chinchilla_table()
    assert list(table.index) == [1e17, 1e18, 1e19, 1e20, 1e21, 1e22]  # data decades + 2
    assert {"N_opt", "N_opt_low", "N_opt_high", "D_opt", "loss_opt", "D_per_N"} <= set(table)
    np.testing.assert_allclose(table["D_per_N"], table["D_opt"] / table["N_opt"])
    assert "|" in table.to_markdown()
    custom = result.chinchilla_table([1e19])
    assert custom.index.tolist() == [1e19]
    fig = result.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_xscale() == "log" and fig.axes[1].get_yscale() == "log"


def test_result_validation(small_results):
    parametric = small_results[0]
    with pytest.raises(ValueError, match=r"Got C=\[-1.0\], expected positive finite FLOPs"):
        parametric.predict(-1.0)
    with pytest.raises(ValueError, match=r"Got method='approach1', expected one of"):
        Result(method="approach1", params={}, bootstrap={}, flops_per_sample_per_param=6.0,
               data=parametric.data)
    with pytest.raises(ValueError, match=r"Got params \['E'\] for method='parametric'"):
        Result(method="parametric", params={"E": 1.0}, bootstrap={},
               flops_per_sample_per_param=6.0, data=parametric.data)


def _two_noisy_budgets() -> pd.DataFrame:
    """Two budgets 4 % apart with noisy parabolas: bootstrap slopes of +-30 decades per decade."""
    rng = np.random.default_rng(1)
    rows = [{"compute_budget": c, "model_params": n, "train_samples": c / (6 * n),
             "final_test_loss": 2 + 0.1 * np.log(n / 1e4) ** 2 + rng.normal(0, 0.3)}
            for c in (1e10, 1.04e10) for n in np.geomspace(1e3, 1e5, 5)]
    return pd.DataFrame(rows)


def test_bootstrap_blow_ups_are_counted_once_not_a_warning_storm():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_isoflop(_two_noisy_budgets(), n_bootstrap=200)
        fit.chinchilla_table()
        fit.predict(1e15)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]  # no numpy overflow
    messages = [str(w.message) for w in caught]
    n_bad = int(np.isnan(fit.bootstrap["k_N"]).sum())
    assert 0 < n_bad < 200
    assert messages[0] == (f"{n_bad} of 200 bootstrap resamples gave no finite power law (a budget without a "
                           "minimum, or an overflow) and are NaN in the intervals")
    assert messages[0] in fit.message
    assert len(messages) == 3 and all(re.match(r"^\d+ of 200 bootstrap resamples overflow at C = ", m)
                                       for m in messages[1:])
    # A resample is NaN in every parameter or in none, and no interval holds an infinity.
    boot = np.stack([fit.bootstrap[k] for k in fit.params])
    assert (np.isnan(boot).all(axis=0) | np.isfinite(boot).all(axis=0)).all()
    assert np.isfinite(fit.summary()[["ci_low", "ci_high"]].to_numpy()).all()
    assert np.isfinite(fit.predict(1e15).filter(like="_high").to_numpy()).all()
