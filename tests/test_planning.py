"""Experiment, SweepPlan and grid: ids, JSON, the printed plan, the cost table, time estimates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _models import MLP
from torch import nn

from flops_fit.planning import Experiment, SweepPlan, grid, plan_sweep
from flops_fit.records import experiment_id


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

