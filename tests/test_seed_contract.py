"""The original flops-fit test plan for find_optimal, case by case, against ours.

flops-fit's tests (VigneshSrinivasan10/flops-fit, tests/test_api.py) use a
plain ``MockModel`` class with ``num_params()`` and a dataset whose items are
single tensors. Where flops-fit raised ``NotImplementedError("model
validation passed")`` or returned markdown, flops_fit returns a value; the
README's "differences from flops-fit" table lists each such change.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import flops_fit
import flops_fit.api as api
from flops_fit import find_optimal
from flops_fit.contracts import as_pairs
from flops_fit.planning import Experiment, SweepPlan
from flops_fit.training import Trainer, TrainSettings


class MockModel:
    """A plain class (not an nn.Module) meeting flops-fit's model contract."""

    def __init__(self, width=64, num_layers=4):
        self.width = width
        self.num_layers = num_layers

    def num_params(self):
        return self.width * self.num_layers * 100


class BadModel:
    """A plain class without num_params()."""

    def __init__(self, width=64):
        self.width = width


class TinyDataset(Dataset):
    """Items are single tensors (self-supervised data)."""

    def __init__(self):
        self.data = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return 10

    def __getitem__(self, idx):
        return self.data[idx]


class Linear(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_returns_sweep_plan() -> None:
    plan = find_optimal(MockModel, "width", model_kwargs={"num_layers": 4}, compute_budgets=[1e15, 1e16])
    assert isinstance(plan, SweepPlan)
    assert plan.num_experiments > 0
    assert plan.compute_budgets == [1e15, 1e16]


def test_a_plain_model_class_is_planned_with_six_n_and_the_plan_says_so() -> None:
    plan = find_optimal(MockModel, "width", model_kwargs={"num_layers": 4}, compute_budgets=[1e15, 1e16])
    for e in plan.experiments:
        assert e.model_params == e.size_value * 4 * 100  # MockModel.num_params()
        assert e.flops_per_sample == 6 * e.model_params
    assert plan.flops_rule == "6N"
    assert "FLOPs per sample are 6·N per token (Kaplan et al. 2020)" in repr(plan)
    assert plan.to_frame()["flops_vs_6N"].eq(1.0).all()


def test_plan_types_are_importable_from_the_package() -> None:
    assert flops_fit.SweepPlan is SweepPlan
    assert flops_fit.Experiment is Experiment
    assert callable(flops_fit.plan_sweep) and callable(flops_fit.find_optimal)



@pytest.mark.usefixtures("no_planning")
@pytest.mark.parametrize(
    ("model_cls", "kwargs", "error", "match"),
    [
        # The model first: a plain class without num_params(), with every other input also bad.
        (BadModel, {}, TypeError, r"num_params"),
        (BadModel, {"dataset": [1, 2, 3]}, TypeError, r"num_params"),
        (BadModel, {"compute_budgets": [1e15]}, TypeError, r"num_params"),
        # Then the dataset.
        (MockModel, {"dataset": [1, 2, 3]}, TypeError, r"Expected a torch.utils.data.Dataset"),
        (MockModel, {"dataset": "not_a_dataset", "loss_fn": 42}, TypeError, r"Expected a torch.utils.data.Dataset"),
        (MockModel, {"dataset": "not_a_dataset", "compute_budgets": [1e15]}, TypeError,
         r"Expected a torch.utils.data.Dataset"),
        # Then the loss, after a valid dataset of single tensors.
        (MockModel, {"loss_fn": 42}, TypeError, r"Got loss_fn=42 \(int\), expected a callable"),
        (MockModel, {"dataset": TinyDataset(), "loss_fn": 42, "compute_budgets": [1e15]}, TypeError,
         r"Got loss_fn=42 \(int\), expected a callable"),
    ],
)
def test_validation_order_is_model_then_dataset_then_loss_then_planning(model_cls, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        find_optimal(model_cls, "width", **kwargs)


def test_the_message_for_a_model_without_num_params_says_what_is_expected() -> None:
    with pytest.raises(TypeError, match=r"^BadModel\(width=64\) returned BadModel, expected a torch.nn.Module "
                                        r"\(or, to plan only, an object with a num_params\(\) method\)$"):
        find_optimal(BadModel, "width", compute_budgets=[1e15])


def test_a_plain_model_class_cannot_train() -> None:
    with pytest.raises(TypeError, match=r"MockModel\(num_layers=4, width=64\) returned MockModel, which has "
                                        r"num_params\(\) but is not a torch.nn.Module: it can be planned .* "
                                        r"pass train=False"):
        find_optimal(MockModel, "width", {"num_layers": 4}, TinyDataset(), nn.MSELoss(), [1e15, 1e16])


def test_single_tensor_items_are_self_supervised(tmp_path) -> None:
    # The target is the input: here an autoencoder's loss, trained for real on the seed's dataset.
    plan = find_optimal(Linear, "width", None, TinyDataset(), nn.MSELoss(), [2e3, 4e3], train=False,
                        sizes=[2, 4, 8])
    assert plan.train_set_size == 9  # 10 items, 1 held out
    assert torch.equal(api._first_input(TinyDataset()), TinyDataset()[0][None])
    x, y = as_pairs(TinyDataset())[3]
    assert torch.equal(x, TinyDataset()[3]) and torch.equal(y, x)
    torch.manual_seed(0)  # the runner seeds every run; here the Trainer is called directly
    trainer = Trainer(Linear, "width", as_pairs(TinyDataset()), nn.MSELoss(), settings=TrainSettings(lr=0.05))
    before = trainer({"width": 4, "train_samples": 1}, tmp_path)["final_loss"]
    after = trainer({"width": 4, "train_samples": 2000}, tmp_path)["final_loss"]
    assert after < 0.5 * before


@pytest.mark.parametrize(
    ("loss_fn", "match"),
    [
        (nn.MSELoss, r"^Got loss_fn=the class MSELoss, expected a loss function or instance; pass an instance, "
                     r"e.g. MSELoss\(\)$"),
        (lambda: torch.tensor(0.0), r"^Got loss_fn=<lambda>\(\), expected one that takes \(output, target\)$"),
        (lambda out: out.sum(), r"^Got loss_fn=<lambda>\(out\), expected one that takes \(output, target\)$"),
    ],
)
def test_losses_that_cannot_take_output_and_target_fail_before_planning(no_planning, loss_fn, match) -> None:
    with pytest.raises(TypeError, match=match):
        find_optimal(Linear, "width", None, TinyDataset(), loss_fn, [1e4, 2e4])


def _sum_all(out, target):
    return (out - target).sum(dim=1)  # one value per sample, not a mean


def _shape_mismatch(out, target):
    return nn.functional.mse_loss(out, target[:, :2])


@pytest.mark.parametrize(
    ("loss_fn", "error", "match"),
    [
        (_sum_all, TypeError, r"^Got a loss of a tensor of shape \(2,\) from loss_fn, expected a scalar tensor \(mean over the batch\)$"),
        (_shape_mismatch, ValueError, r"^loss_fn\(output, target\) failed on a batch of the dataset \(output shape "
                                      r"\(2, 4\), target shape \(2, 4\)\): RuntimeError: The size of tensor a"),
    ],
)
def test_the_loss_is_tried_on_one_batch_before_training(no_planning, tmp_path, loss_fn, error, match) -> None:
    with pytest.raises(error, match=match):
        find_optimal(Linear, "width", None, TensorDataset(torch.randn(8, 4), torch.randn(8, 4)), loss_fn,
                     [1e4, 2e4], output_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_model_that_fails_on_the_data_is_named_with_the_shapes(no_planning) -> None:
    data = TensorDataset(torch.randn(8, 3), torch.randn(8, 4))
    with pytest.raises(ValueError, match=r"^Linear\(width=4\) failed on a batch of the dataset \(input shape "
                                         r"\(2, 3\)\): RuntimeError: mat1 and mat2"):
        find_optimal(Linear, "width", None, data, nn.MSELoss(), [1e4, 2e4])


def test_mode_mock_names_find_optimal_and_says_there_is_no_mock_mode(no_planning) -> None:
    with pytest.raises(TypeError, match=r"^find_optimal\(\) got unexpected keyword arguments \['mode'\]; its "
                                        r"planning options are \[.*'spread'.*\]; flops_fit has no mock mode: "
                                        r"train=False returns the plan"):
        find_optimal(MockModel, "width", compute_budgets=[1e15], mode="mock")


def test_a_hand_built_plan_without_flops_per_sample_prints() -> None:
    experiments = [Experiment(compute_budget=1e15, size_value=w, model_params=100 * w, train_samples=10,
                              size_param="width", model="Mine") for w in (8, 16)]
    plan = SweepPlan(experiments=tuple(experiments), budgets=(1e15,), model="Mine", size_param="width")
    frame = plan.to_frame()
    assert list(frame.columns[:5]) == ["experiment_id", "compute_budget", "width", "model_params", "train_samples"]
    assert "flops_per_sample" not in frame.columns and frame["train_flops"].isna().all()
    lines = repr(plan).splitlines()
    assert lines[2] == "  2 experiments, 0 training FLOPs in total"
    assert lines[3].split() == ["budget", "width", "params", "samples", "samples/param"]
