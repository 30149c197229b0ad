"""plan_sweep, the IsoFLOP planner: budgets, sizes around the Chinchilla centre, FLOPs per sample, feasibility."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _models import CNN, MLP, mlp_params

from flops_fit.flops import forward_flops
from flops_fit.planning import SweepPlan, plan_sweep, validate_budgets


def cnn_forward_flops(w: int, hw: int) -> float:
    # A multiply-add (2 FLOPs) per weight per output pixel; bias adds are not counted.
    return 2 * (9 * w + 9 * w) * hw * hw



class NeedsRealTensors(MLP):
    """Its constructor reads a value (.item()), which fails on the meta device."""

    def __init__(self, width: int) -> None:
        assert torch.ones(1).item() == 1.0
        super().__init__(width)



@pytest.mark.parametrize(
    ("budgets", "match"),
    [
        (None, r"compute_budgets is required: .* e.g. compute_budgets=\[1e15, 1e16\]"),
        ([], r"compute_budgets is empty; give at least one budget in FLOPs"),
        ("1e15", r"Got compute_budgets='1e15' \(str\), expected a list of FLOP budgets"),
        ({"a": 1e15}, r"Got compute_budgets=\{'a': 1000000000000000.0\} \(dict\), expected a list of FLOP budgets"),
        ([1e15, "1e16"], r"Got compute_budgets\[1\]='1e16' \(str\), expected a number of FLOPs"),
        ([True], r"Got compute_budgets\[0\]=True \(bool\), expected a number of FLOPs"),
        ([1e15, float("nan")], r"Got compute_budgets\[1\]=nan, expected a finite number of FLOPs > 0"),
        ([float("inf")], r"Got compute_budgets\[0\]=inf, expected a finite number of FLOPs > 0"),
        ([0], r"Got compute_budgets\[0\]=0, expected a finite number of FLOPs > 0"),
        ([-1e15], r"Got compute_budgets\[0\]=-1e\+15, expected a finite number of FLOPs > 0"),
        ([1e15, 1e15], r"compute_budgets has repeated values: \[1e\+15\]"),
    ],
)
def test_bad_budgets_are_named(budgets, match) -> None:
    with pytest.raises(ValueError, match=match):
        validate_budgets(budgets)
    with pytest.raises(ValueError, match=match):
        plan_sweep(MLP, "width", None, budgets)


def test_budgets_are_sorted_floats_and_one_number_is_one_budget() -> None:
    assert validate_budgets([1e16, 10**15]) == (1e15, 1e16)
    assert validate_budgets(np.array([2e6, 1e6])) == (1e6, 2e6)
    assert validate_budgets(1e15) == (1e15,)


def test_six_n_plan_spends_each_budget(mlp_plan: SweepPlan) -> None:
    assert mlp_plan.budgets == (1e6, 1e7, 1e8)
    assert {e.compute_budget for e in mlp_plan.experiments} == {1e6, 1e7, 1e8}
    for e in mlp_plan.experiments:
        assert e.model_params == mlp_params(e.size_value)
        assert e.flops_per_sample == 6 * e.model_params
        assert e.train_samples == round(e.compute_budget / e.flops_per_sample)
        # Rounding D to the nearest sample leaves at most half a sample's FLOPs.
        assert abs(e.train_samples * e.flops_per_sample - e.compute_budget) <= e.flops_per_sample / 2
        assert e.samples_per_param == pytest.approx(e.train_samples / e.model_params)
    assert mlp_plan.total_flops == pytest.approx(sum(e.train_flops for e in mlp_plan.experiments))


def test_sizes_spread_around_the_chinchilla_centre(mlp_plan: SweepPlan) -> None:
    frame = mlp_plan.to_frame()
    for budget, rows in frame.groupby("compute_budget"):
        assert len(rows) == 7
        assert rows["model_params"].is_monotonic_increasing
        # The middle size trains at about 20 tokens (samples) per parameter ...
        centre = rows["samples_per_param"].iloc[3]
        assert 20 / 2 < centre < 20 * 2, (budget, centre)
        # ... and the ends sit near N_c / 4 and N_c * 4 (spread=4, 16x in N).
        span = rows["model_params"].iloc[-1] / rows["model_params"].iloc[0]
        assert 16 / 2.5 < span < 16 * 2.5, (budget, span)


@pytest.mark.parametrize("hw", [8, 16])
def test_measured_flops_for_a_cnn_match_the_hand_count_not_six_n(hw: int) -> None:
    x = torch.zeros(2, 1, hw, hw)
    plan = plan_sweep(CNN, "width", None, [1e8, 1e9], sizes=[2, 4, 8], sample_input=x)
    assert plan.num_experiments == 6
    for e in plan.experiments:
        w = e.size_value
        assert e.model_params == 19 * w + 1
        assert e.flops_per_sample == 3 * cnn_forward_flops(w, hw)
        assert e.flops_per_sample == 3 * forward_flops(CNN(w), x)
        assert e.flops_per_sample > 10 * 6 * e.model_params  # weights reused at every pixel
        # Planned samples x 3 x forward FLOPs is the budget, within half a sample.
        assert abs(e.train_samples * e.flops_per_sample - e.compute_budget) <= e.flops_per_sample / 2


def test_flops_6n_ignores_the_sample_input_and_measured_needs_one() -> None:
    x = torch.zeros(1, 1, 8, 8)
    plan = plan_sweep(CNN, "width", None, [1e8], sizes=[2, 4], sample_input=x, flops="6N")
    assert [e.flops_per_sample for e in plan.experiments] == [6 * 39, 6 * 77]
    with pytest.raises(ValueError, match=r"flops='measured' needs a sample_input"):
        plan_sweep(CNN, "width", None, [1e8], sizes=[2], flops="measured")
    with pytest.raises(ValueError, match=r"Got flops='7N', expected one of \['auto', '6N', 'measured'\]"):
        plan_sweep(CNN, "width", None, [1e8], sizes=[2], flops="7N")


def test_tokens_per_sample_multiplies_six_n() -> None:
    plan = plan_sweep(MLP, "width", None, [1e9], sizes=[8, 16], tokens_per_sample=128)
    for e in plan.experiments:
        assert e.flops_per_sample == 6 * mlp_params(e.size_value) * 128


def test_given_sizes_are_used_and_num_sizes_per_budget_picks_among_them() -> None:
    sizes = [2, 4, 8, 16, 32, 64, 128]
    all_of_them = plan_sweep(MLP, "width", None, [1e7], sizes=sizes)
    assert [e.size_value for e in all_of_them.experiments] == sizes
    three = plan_sweep(MLP, "width", None, [1e7], sizes=sizes, num_sizes_per_budget=3)
    picked = [e.size_value for e in three.experiments]
    assert len(picked) == 3 and set(picked) <= set(sizes)
    # N_c = sqrt(1e7 / 120) = 289 -> width ~ 14: the picks straddle it.
    assert picked[0] < 14 < picked[-1]


def test_infeasible_sizes_are_dropped_with_a_warning_naming_them() -> None:
    # Width 512: N = 265729, 6N = 1.6e6 FLOPs per sample > the 1e6 budget -> 1 sample rounds to 1,
    # width 1024: 6.3e6 FLOPs per sample -> 0 samples.
    with pytest.warns(UserWarning, match=r"compute budget 1e\+06: dropped infeasible sizes width=1024 "
                                         r"\(0 samples < min_samples=1\)"):
        plan = plan_sweep(MLP, "width", None, [1e6], sizes=[4, 8, 1024])
    assert [e.size_value for e in plan.experiments] == [4, 8]


def test_min_samples_per_param_drops_data_starved_sizes() -> None:
    with pytest.warns(UserWarning, match=r"width=64 \(0.0\d+ samples per parameter < min_samples_per_param=1"):
        plan = plan_sweep(MLP, "width", None, [1e6], sizes=[4, 64], min_samples_per_param=1)
    assert [e.size_value for e in plan.experiments] == [4]


def test_a_budget_with_no_feasible_size_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"No feasible model size for compute budget 10 FLOPs: width=4 "
                                         r"\(0 samples < min_samples=1\)\. The smallest size, width=4, costs 270 FLOPs"):
        plan_sweep(MLP, "width", None, [10, 1e6], sizes=[4])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [8, 0]}, ValueError, r"Got sizes\[1\]=0, expected a number > 0"),
        ({"sizes": []}, ValueError, r"Got sizes=\[\], expected a non-empty list of size values"),
        ({"sizes": [8, 8]}, ValueError, r"sizes has repeated values: \[8\]"),
        ({"num_sizes_per_budget": 0}, ValueError, r"Got num_sizes_per_budget=0, expected an int >= 1"),
        ({"spread": 1.0}, ValueError, r"Got spread=1.0, expected a number > 1"),
        ({"tokens_per_sample": 0}, ValueError, r"Got tokens_per_sample=0, expected a number > 0"),
        ({"size_range": (8, 4)}, ValueError, r"Got size_range=\(8, 4\), expected \(low, high\) with 0 < low <= high"),
    ],
)
def test_bad_options_are_named(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        plan_sweep(MLP, "width", None, [1e6], **kwargs)


class Fussy(MLP):
    def __init__(self, width: int) -> None:
        if width % 4:
            raise ValueError(f"width must be a multiple of 4, got {width}")
        super().__init__(width)


def test_a_given_size_that_cannot_be_built_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"Could not build Fussy\(width=6\): ValueError: width must be a multiple of 4"):
        plan_sweep(Fussy, "width", None, [1e6], sizes=[4, 6, 8])


def test_generated_sizes_that_cannot_be_built_are_skipped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"Skipped width=\[5, 6, 10, .*\] that could not be built"):
        plan = plan_sweep(Fussy, "width", None, [1e6])
    assert all(e.size_value % 4 == 0 for e in plan.experiments)


def test_a_size_parameter_the_constructor_rejects_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"MLP\(\) has no argument 'depth' to set the size"):
        plan_sweep(MLP, "depth", None, [1e6])


def test_models_that_cannot_be_built_on_meta_are_probed_on_the_cpu() -> None:
    plan = plan_sweep(NeedsRealTensors, "width", None, [1e6], sizes=[4, 8])
    assert [e.model_params for e in plan.experiments] == [mlp_params(4), mlp_params(8)]


def test_edge_of_the_size_range_is_flagged() -> None:
    with pytest.warns(UserWarning, match=r"compute budget 1e\+12: its compute-optimal centre is at the largest "
                                         r"probed size \(width=16\); widen size_range=\(4, 16\)"):
        plan_sweep(MLP, "width", None, [1e12], size_range=(4, 16))


def test_probing_large_candidates_is_cheap_on_meta() -> None:
    # Widths up to ~4096 would be ~17M parameters each on the CPU; on meta they are free.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = plan_sweep(MLP, "width", None, [1e15, 1e16])
    assert plan.num_experiments == 14
    assert max(e.model_params for e in plan.experiments) > 1e6
    assert math.isclose(plan.total_flops, sum(e.train_flops for e in plan.experiments))


def test_tokens_per_sample_gives_flops_per_token_and_the_six_n_ratio_stays_one() -> None:
    plan = plan_sweep(MLP, "width", None, [1e8, 1e9], tokens_per_sample=16, sizes=[4, 8, 16])
    frame = plan.to_frame()
    assert (frame["flops_per_token"] == 6 * frame["model_params"]).all()
    assert frame["flops_vs_6N"].eq(1.0).all() and plan.compute_budgets == [1e8, 1e9]
    assert "x 16 tokens per sample" in repr(plan)
