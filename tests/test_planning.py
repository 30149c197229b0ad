"""plan_sweep, grid and SweepPlan: budgets, FLOPs per sample, feasibility, JSON, timing."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _models import CNN
from torch import nn

from flops_fit.flops import forward_flops
from flops_fit.planning import Experiment, SweepPlan, grid, plan_sweep, validate_budgets
from flops_fit.results import experiment_id


class MLP(nn.Module):
    """N = w^2 + 7w + 1 with in_features=4: Linear(4,w), Linear(w,w), Linear(w,1)."""

    def __init__(self, width: int, in_features: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_params(w: int) -> int:
    return w * w + 7 * w + 1


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


@pytest.fixture(scope="module")
def mlp_plan() -> SweepPlan:
    return plan_sweep(MLP, "width", {"in_features": 4}, [1e6, 1e7, 1e8])


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


def test_experiment_id_is_the_hash_of_its_config(mlp_plan: SweepPlan) -> None:
    e = mlp_plan.experiments[0]
    config = e.config()
    assert config["model"] == "MLP" and config["size_param"] == "width"
    assert config["width"] == e.size_value and config["in_features"] == 4
    assert config["train_samples"] == e.train_samples and config["compute_budget"] == e.compute_budget
    assert "experiment_id" not in config
    assert e.experiment_id == experiment_id(config)
    assert mlp_plan.configs() == [x.config() for x in mlp_plan.experiments]
    assert len({x.experiment_id for x in mlp_plan.experiments}) == mlp_plan.num_experiments


def test_seed_goes_into_every_config() -> None:
    plan = plan_sweep(MLP, "width", None, [1e6], sizes=[4], seed=3)
    assert plan.configs()[0]["seed"] == 3


def test_experiment_checks_its_id_and_names() -> None:
    with pytest.raises(ValueError, match=r"experiment_id 'abc' does not match its config"):
        Experiment(experiment_id="abc", hparams={"lr": 1e-3})
    with pytest.raises(ValueError, match=r"hparams may not use the names \['train_samples'\]"):
        Experiment(train_samples=5, hparams={"train_samples": 3})
    with pytest.raises(TypeError, match=r"Got hparams\['act'\]=.* \(type\), expected a str, int, float, bool or None"):
        Experiment(hparams={"act": nn.ReLU})


def test_non_json_model_kwargs_are_recorded_by_repr() -> None:
    plan = plan_sweep(MLP, "width", {"in_features": np.int64(4)}, [1e6], sizes=[4])
    assert plan.configs()[0]["in_features"] == 4
    assert isinstance(plan.configs()[0]["in_features"], int)


def test_json_round_trip(tmp_path, mlp_plan: SweepPlan) -> None:
    again = SweepPlan.from_json(mlp_plan.to_json())
    assert again == mlp_plan
    assert again.configs() == mlp_plan.configs()
    mlp_plan.to_json(tmp_path / "plan.json")
    assert SweepPlan.from_json(tmp_path / "plan.json") == mlp_plan
    assert SweepPlan.from_json(str(tmp_path / "plan.json")) == mlp_plan
    g = grid(lr=[1e-3, 3e-4], act="relu")
    assert SweepPlan.from_json(g.to_json()) == g


def test_json_with_unknown_keys_is_an_error(mlp_plan: SweepPlan) -> None:
    text = mlp_plan.to_json().replace('"kind"', '"knd"', 1)
    with pytest.raises(ValueError, match=r"Unknown keys in a SweepPlan JSON: \['knd'\]"):
        SweepPlan.from_json(text)


def test_repr_shows_model_budgets_count_and_table(mlp_plan: SweepPlan) -> None:
    text = repr(mlp_plan)
    lines = text.splitlines()
    assert lines[0] == "SweepPlan: IsoFLOP sweep of MLP over width (model_kwargs={'in_features': 4})"
    assert lines[1] == "  budgets (FLOPs): 1e+06, 1e+07, 1e+08"
    assert lines[2].startswith("  21 experiments, ")
    assert lines[3].split() == ["budget", "width", "params", "samples", "samples/param", "FLOPs/sample",
                                "FLOPs/6N"]
    assert lines[-1] == ("  note: FLOPs per sample are 6·N per token (Kaplan et al. 2020), N from MLP's "
                         "parameter count or num_params(); nothing was run")
    assert len(lines) < 30  # a preview, not a dump
    html = mlp_plan._repr_html_()
    assert html.startswith("<pre>SweepPlan: IsoFLOP sweep of MLP") and html.count("<tr") == 22


def test_grid_is_the_cartesian_product_in_order() -> None:
    g = grid(architecture=["fno", "hybrid"], width=[16, 32, 64], lr=1e-3, seed=np.arange(2))
    assert g.num_experiments == 2 * 3 * 1 * 2
    assert g.kind == "grid" and g.budgets is None and g.total_flops is None
    configs = g.configs()
    assert configs[0] == {"architecture": "fno", "width": 16, "lr": 1e-3, "seed": 0}
    assert configs[-1] == {"architecture": "hybrid", "width": 64, "lr": 1e-3, "seed": 1}
    assert isinstance(configs[-1]["seed"], int)
    assert len({experiment_id(c) for c in configs}) == 12
    frame = g.to_frame()
    assert list(frame.columns) == ["experiment_id", "architecture", "width", "lr", "seed"]
    assert repr(g).splitlines()[0] == "SweepPlan: grid of 12 experiments over architecture, width, lr, seed"


@pytest.mark.parametrize(
    ("axes", "error", "match"),
    [
        ({}, ValueError, r"grid\(\) needs at least one axis, e.g. grid\(width=\[16, 32\]"),
        ({"width": []}, ValueError, r"grid axis 'width' is empty"),
        ({"width": [16, 16]}, ValueError, r"grid axis 'width' has repeated values: \['16'\]"),
        ({"opt": [{"lr": 1}]}, TypeError, r"Got a value \{'lr': 1\} \(dict\) on grid axis 'opt', expected a str, int, float, bool or None"),
        ({"width": {16, 32}}, TypeError, r"Got grid axis width=\{16, 32\} \(set\), expected a list of values \(or one value\)"),
        ({"experiment_id": [1]}, ValueError, r"grid axis name 'experiment_id' is reserved"),
    ],
)
def test_grid_errors(axes, error, match) -> None:
    with pytest.raises(error, match=match):
        grid(**axes)


def test_estimate_time_times_each_size_once_and_scales_by_samples() -> None:
    x = torch.zeros(1, 4)
    plan = plan_sweep(MLP, "width", None, [1e6, 1e7], sizes=[4, 8], sample_input=x)
    built = []

    def builder(config):
        built.append(config["width"])
        return MLP(config["width"]), x

    frame = plan.estimate_time("cpu", steps=1, batch_size=4, builder=builder)
    assert sorted(built) == [4, 8]
    assert (frame["seconds_per_sample"] > 0).all()
    np.testing.assert_allclose(frame["estimated_time_s"], frame["seconds_per_sample"] * frame["train_samples"])
    assert frame.attrs["total_time_s"] == pytest.approx(frame["estimated_time_s"].sum())
    default = plan.estimate_time(steps=1, batch_size=2)  # builds from what plan_sweep kept
    assert list(default["experiment_id"]) == [e.experiment_id for e in plan.experiments]


def test_estimate_time_for_a_grid_needs_a_builder_and_samples() -> None:
    g = grid(width=[4, 8], epochs=[1, 2])
    with pytest.raises(ValueError, match=r"estimate_time needs a way to build each model: pass builder="):
        g.estimate_time()

    def builder(config):
        return MLP(config["width"]), torch.zeros(1, 4)

    with pytest.raises(ValueError, match=r"grid experiments have no planned train_samples; pass samples="):
        g.estimate_time(builder=builder, steps=1)
    frame = g.estimate_time(builder=builder, steps=1, samples=lambda c: c["epochs"] * 100, by=["width"])
    assert isinstance(frame, pd.DataFrame)
    per_width = frame.groupby("width")["seconds_per_sample"].nunique()
    assert (per_width == 1).all()  # timed once per width, shared across epochs
    np.testing.assert_allclose(frame["estimated_time_s"], frame["seconds_per_sample"] * frame["epochs"] * 100)


def test_probing_large_candidates_is_cheap_on_meta() -> None:
    # Widths up to ~4096 would be ~17M parameters each on the CPU; on meta they are free.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = plan_sweep(MLP, "width", None, [1e15, 1e16])
    assert plan.num_experiments == 14
    assert max(e.model_params for e in plan.experiments) > 1e6
    assert math.isclose(plan.total_flops, sum(e.train_flops for e in plan.experiments))


def test_passes_over_the_data_and_the_repeat_note(mlp_plan: SweepPlan) -> None:
    assert mlp_plan.repeat_note() is None and "epochs" not in mlp_plan.to_frame()  # no dataset: unknown
    most = max(e.train_samples for e in mlp_plan.experiments)
    at_four = dataclasses.replace(mlp_plan, train_set_size=most / 4)
    assert at_four.to_frame()["epochs"].max() == pytest.approx(4.0) and at_four.repeat_note() is None
    below = dataclasses.replace(mlp_plan, train_set_size=most // 5)
    n = int((below.to_frame()["epochs"] > 4).sum())
    assert below.repeat_note().startswith(f"{n} of 21 runs pass over the {most // 5} training samples more than "
                                          "4 times (up to 5")
    assert repr(below).splitlines()[-1] == f"  note: {below.repeat_note()}"
    assert SweepPlan.from_json(below.to_json()) == below


def test_tokens_per_sample_gives_flops_per_token_and_the_six_n_ratio_stays_one() -> None:
    plan = plan_sweep(MLP, "width", None, [1e8, 1e9], tokens_per_sample=16, sizes=[4, 8, 16])
    frame = plan.to_frame()
    assert (frame["flops_per_token"] == 6 * frame["model_params"]).all()
    assert frame["flops_vs_6N"].eq(1.0).all() and plan.compute_budgets == [1e8, 1e9]
    assert "x 16 tokens per sample" in repr(plan)
