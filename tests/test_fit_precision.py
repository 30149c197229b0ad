"""The seed planner of Approach 2's exponent: its allocation, its variance model, its prediction.

Independent references: the allocation against scipy.optimize's SLSQP on the
same convex problem; the variance model against the fit's own bootstrap; the
plan's predicted width against a sweep actually run with the seeds it asks
for (noisy runs on the Chinchilla surface, Hoffmann et al. 2022 eq. 10).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from flops_fit.fit_precision import (
    BudgetPlan,
    SeedPlan,
    allocate_repeats,
    plan_new_budget,
    seeds_for_width,
)
from flops_fit.scaling import fit_isoflop, fit_parametric
from flops_fit.scaling_check import CHINCHILLA

BUDGETS = (1e18, 3e18, 1e19, 3e19, 1e20)
NOISE = 0.01  # loss units, per run


def n_star(C: float) -> float:
    """Hoffmann et al. eq. 4 for the Chinchilla surface, C = 6 N D."""
    p = CHINCHILLA
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return G * (C / 6.0) ** (p["beta"] / (p["alpha"] + p["beta"]))


def noisy_sweep(seeds: dict[float, int] | int, rng_seed: int, budgets: tuple[float, ...] = BUDGETS) -> pd.DataFrame:
    """7 sizes per budget spanning a factor 8 each way of N*, ``seeds`` runs per size, Gaussian noise."""
    rng = np.random.default_rng(rng_seed)
    p, rows = CHINCHILLA, []
    for C in budgets:
        n_seeds = seeds if isinstance(seeds, int) else seeds[C]
        for N in n_star(C) * np.geomspace(1 / 8, 8, 7):
            D = C / (6.0 * N)
            clean = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
            for s in range(n_seeds):
                rows.append({"compute_budget": C, "model_params": N, "train_samples": D,
                             "final_test_loss": clean + NOISE * rng.standard_normal(), "seed": s,
                             "wall_time_s": 1e-17 * C, "status": "ok"})
    return pd.DataFrame(rows)


def slsqp(variance: np.ndarray, cost: np.ndarray, target: float) -> np.ndarray:
    res = minimize(lambda m: cost @ m, np.full(variance.size, 10.0), method="SLSQP",
                   bounds=[(1.0, None)] * variance.size,
                   constraints=[{"type": "ineq", "fun": lambda m: target - (variance / m).sum()}],
                   options={"ftol": 1e-12, "maxiter": 500})
    assert res.success, res.message
    return res.x


@pytest.mark.parametrize(("variance", "cost", "target"), [
    ([0.04, 0.01, 0.0, 0.01, 0.04], [1.0, 2.0, 4.0, 8.0, 16.0], 0.02),
    ([0.30, 0.05, 0.001, 0.02], [1.0, 1.0, 1.0, 1.0], 0.05),  # one budget held at 1
    ([0.5, 0.5], [1.0, 9.0], 0.1),
])
def test_allocation_matches_a_general_solver(variance, cost, target) -> None:
    variance, cost = np.array(variance), np.array(cost)
    m = allocate_repeats(variance, cost, target)
    assert (m >= 1).all() and (variance / m).sum() == pytest.approx(target, rel=1e-9)
    np.testing.assert_allclose(m, slsqp(variance, cost, target), rtol=2e-3)


def test_allocation_adds_nothing_when_the_target_is_met() -> None:
    np.testing.assert_array_equal(allocate_repeats(np.array([0.01, 0.02]), np.ones(2), 0.05), [1.0, 1.0])


def test_fit_isoflop_reports_an_interval_of_each_optimum() -> None:
    df = noisy_sweep(4, rng_seed=0)
    table = fit_isoflop(df, n_bootstrap=300).budgets
    assert (table["N_opt_lo"] < table["N_opt"]).all() and (table["N_opt"] < table["N_opt_hi"]).all()
    # Seed noise shrinks as 1 / sqrt(runs per size), what seeds_for_width rests on: 4x the seeds
    # halve each interval (in ln N), up to the bootstrap's own noise.
    more = fit_isoflop(noisy_sweep(16, rng_seed=5), n_bootstrap=300).budgets
    ratio = np.log(more["N_opt_hi"] / more["N_opt_lo"]) / np.log(table["N_opt_hi"] / table["N_opt_lo"])
    assert np.median(ratio) == pytest.approx(0.5, abs=0.12)
    plain = fit_isoflop(df, n_bootstrap=0).budgets
    assert plain[["N_opt_lo", "N_opt_hi"]].isna().all().all()


def test_the_variance_model_reproduces_the_bootstrap() -> None:
    df = noisy_sweep(4, rng_seed=1)
    plan = seeds_for_width(fit_isoflop(df, n_bootstrap=1000), df, 0.05)
    assert plan.width_model == pytest.approx(plan.width_bootstrap, rel=0.25)
    assert plan.table["variance_share"].sum() == pytest.approx(1.0)
    # The outer budgets carry the slope; the middle one (weight near 0) hardly any of it.
    assert plan.table["variance_share"].iloc[2] < 0.01
    assert plan.table["weight"].iloc[0] < 0 < plan.table["weight"].iloc[-1]


def test_a_sweep_run_with_the_planned_seeds_reaches_the_target() -> None:
    df = noisy_sweep(3, rng_seed=2)
    fit = fit_isoflop(df, n_bootstrap=1000)
    plan = seeds_for_width(fit, df, 0.5 * seeds_for_width(fit, df, 1.0).width_model)
    assert plan.extra_runs > 0 and plan.width_planned <= plan.target_width
    # The cheapest plan spends on the outer budgets, not the middle one.
    seeds = {C: int(n) for C, n in zip(plan.table["budget"], plan.table["seeds_needed"], strict=True)}
    assert seeds[BUDGETS[2]] == 3 and seeds[BUDGETS[0]] > 3 and seeds[BUDGETS[-1]] > 3
    widths = []
    for rng_seed in (10, 11, 12):  # the new sweep, run three times over with fresh noise
        lo, hi = fit_isoflop(noisy_sweep(seeds, rng_seed), n_bootstrap=1000).ci["a"]
        widths.append(hi - lo)
    assert np.mean(widths) == pytest.approx(plan.target_width, rel=0.3)
    extra = sum((seeds[C] - 3) * 7 * 1e-17 * C for C in BUDGETS)
    assert plan.extra_seconds == pytest.approx(extra, rel=1e-9) and plan.cost_unit == "seconds"


def test_summary_says_what_limits_the_exponent_and_what_to_add() -> None:
    df = noisy_sweep(3, rng_seed=3)
    fit = fit_isoflop(df, n_bootstrap=300)
    plan = seeds_for_width(fit, df, 0.01)
    assert isinstance(plan, SeedPlan)
    text = plan.summary()
    assert "95% interval of a is" in text and f"{plan.extra_runs} more runs" in text and " h of compute" in text
    done = seeds_for_width(fit, df, 10.0)
    assert done.extra_runs == 0 and "no run to add" in done.summary()
    untimed = seeds_for_width(fit, df.drop(columns="wall_time_s"), 0.01)
    assert untimed.cost_unit == "runs" and "time not recorded" in untimed.summary()


def test_uneven_seeds_are_not_rounded_up_where_nothing_is_added() -> None:
    # 3 seeds at most sizes and 4 at one: a mean of 3.14 per size, which a met target leaves alone.
    df = noisy_sweep(4, rng_seed=3)
    largest = df.groupby("compute_budget")["model_params"].transform("max")
    df = df[(df["seed"] < 3) | (df["model_params"] == largest)]
    fit = fit_isoflop(df, n_bootstrap=300)
    done = seeds_for_width(fit, df, 10.0)
    assert (done.table["seeds"] % 1 > 0).all()
    np.testing.assert_array_equal(done.table["seeds_needed"], done.table["seeds"])
    assert done.extra_runs == 0 and "no run to add" in done.summary()
    more = seeds_for_width(fit, df, 0.5 * done.width_model)
    added = more.table[more.table["extra_runs"] > 0]
    assert len(added) and (added["seeds_needed"] % 1 == 0).all()  # whole seeds where it adds


def test_a_sweep_run_with_the_planned_budget_reaches_the_planned_width() -> None:
    df = noisy_sweep(4, rng_seed=20)
    plan = plan_new_budget(fit_isoflop(df, n_bootstrap=1000), df, 3e20, 4)
    assert isinstance(plan, BudgetPlan) and plan.like == BUDGETS[-1]  # the nearest fitted budget
    assert plan.width_planned < 0.8 * plan.width_model
    widths = []
    for rng_seed in (21, 22, 23):  # the sweep with the new budget, run three times over with fresh noise
        lo, hi = fit_isoflop(noisy_sweep(4, rng_seed, (*BUDGETS, 3e20)), n_bootstrap=1000).ci["a"]
        widths.append(hi - lo)
    assert np.mean(widths) == pytest.approx(plan.width_planned, rel=0.15)
    # 7 sizes x 4 seeds, each costing what a run at 1e20 costs per FLOP (1e-17 s per FLOP here).
    assert plan.seconds == pytest.approx(7 * 4 * 1e-17 * 3e20, rel=1e-9)


def test_new_budget_plan_by_hand() -> None:
    # The variance model with the new budget's spread scaled from the borrowed budget's by sqrt(seeds).
    df = noisy_sweep(4, rng_seed=24)
    fit = fit_isoflop(df, n_bootstrap=300)
    plan = plan_new_budget(fit, df, 1e17, 1, like=BUDGETS[0])
    sigma = np.log(fit.budgets["N_opt_hi"] / fit.budgets["N_opt_lo"]).to_numpy() / (2 * 1.959964)
    x = np.log([*BUDGETS, 1e17])
    s = np.append(sigma, sigma[0] * 2.0)  # 4 seeds there, 1 planned
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    assert plan.sigma_ln_N_opt == pytest.approx(s[-1], rel=1e-6)
    assert plan.width_planned == pytest.approx(2 * 1.959964 * np.sqrt((w**2 * s**2).sum()), rel=1e-6)
    assert plan.width_model == pytest.approx(seeds_for_width(fit, df, 1.0).width_model, rel=1e-12)
    assert "A budget of 1e+17 FLOPs with 1 seed(s) per size" in plan.summary()
    assert "h of compute" in plan.summary()
    assert plan_new_budget(fit, df, 1e17).seeds == 4  # as many as the nearest budget, 1e18
    untimed = plan_new_budget(fit, df.drop(columns="wall_time_s"), 1e17, 1)
    assert np.isnan(untimed.seconds) and "time not recorded" in untimed.summary()


def test_errors_name_what_was_given() -> None:
    df = noisy_sweep(2, rng_seed=4)
    fit = fit_isoflop(df, n_bootstrap=100)
    with pytest.raises(ValueError, match=r"Got a fit with method='parametric', expected one from fit_isoflop"):
        seeds_for_width(fit_parametric(df["model_params"], df["train_samples"], df["final_test_loss"]), df, 0.1)
    with pytest.raises(ValueError, match=r"Got a fit with n_bootstrap=0, expected bootstrap resamples"):
        seeds_for_width(fit_isoflop(df, n_bootstrap=0), df, 0.1)
    for bad in (0, -0.1, True, "0.3"):
        with pytest.raises(ValueError, match=r"Got target_width=.*, expected a positive number"):
            seeds_for_width(fit, df, bad)
    with pytest.raises(ValueError, match=r"without runs in `runs`, expected the runs the fit was made from"):
        seeds_for_width(fit, df[df["compute_budget"] != BUDGETS[0]], 0.1)
    with pytest.raises(ValueError, match=r"Got budget='C', expected a column of df"):
        seeds_for_width(fit, df, 0.1, budget="C")
    with pytest.raises(ValueError, match=r"Got new_budget=1e\+18, expected a positive number of FLOPs not fitted yet"):
        plan_new_budget(fit, df, 1e18, 2)
    with pytest.raises(ValueError, match=r"Got seeds=0, expected an int >= 1"):
        plan_new_budget(fit, df, 1e21, 0)
    with pytest.raises(ValueError, match=r"Got like=2e\+20, expected one of the fitted budgets \[1e\+18, "):
        plan_new_budget(fit, df, 1e21, 2, like=2e20)
    with pytest.raises(ValueError, match=r"Got a fit with n_bootstrap=0, expected bootstrap resamples"):
        plan_new_budget(fit_isoflop(df, n_bootstrap=0), df, 1e21, 2)
