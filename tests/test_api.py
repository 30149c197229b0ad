"""find_optimal: validation order, the plan as a value, and a trained end-to-end run."""

from __future__ import annotations

import pytest
import torch
from _models import CNN
from torch import nn
from torch.utils.data import TensorDataset

from flops_fit.api import find_optimal
from flops_fit.fit_result import Result
from flops_fit.flops import forward_flops
from flops_fit.planning import SweepPlan
from flops_fit.results import load_results
from flops_fit.training import TrainSettings


class MLP(nn.Module):
    def __init__(self, width: int, in_features: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width),
                                 nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Fourier(nn.Module):
    """Linear regression on sin/cos features up to frequency ``width``; N = 2·width + 1.

    Against a target with a 1/k spectrum and label noise, small widths miss the
    tail and large widths get too few samples for their parameters, so every
    IsoFLOP curve has an interior minimum. Counts the samples it trains on.
    """

    seen: dict[int, int] = {}

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.register_buffer("k", torch.arange(1, width + 1, dtype=torch.float32))
        self.lin = nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            Fourier.seen[self.width] = Fourier.seen.get(self.width, 0) + len(x)
        kx = x * self.k  # (B, width)
        return self.lin(torch.cat([torch.sin(kx), torch.cos(kx)], dim=-1))


def fourier_data(n: int = 512, noise: float = 0.3) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, generator=g) * 2 * torch.pi
    k = torch.arange(1, 65, dtype=torch.float32)
    y = (torch.sin(x * k) / k).sum(-1, keepdim=True) + noise * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def mlp_data(n: int = 32) -> TensorDataset:
    return TensorDataset(torch.randn(n, 4), torch.randn(n, 1))


def test_budgets_without_data_return_the_plan() -> None:
    plan = find_optimal(MLP, "width", {"in_features": 4}, compute_budgets=[1e15, 1e16])
    assert isinstance(plan, SweepPlan)
    assert plan.budgets == (1e15, 1e16)
    assert {e.compute_budget for e in plan.experiments} == {1e15, 1e16}
    assert plan.num_experiments == 14
    assert all(e.flops_per_sample == 6 * e.model_params for e in plan.experiments)


def test_train_false_returns_the_plan_with_flops_measured_on_the_dataset(tmp_path) -> None:
    data = TensorDataset(torch.randn(8, 1, 12, 12), torch.randn(8, 1, 12, 12))
    plan = find_optimal(CNN, "width", None, data, nn.MSELoss(), [1e9, 1e10], train=False,
                        sizes=[2, 4, 8], output_dir=tmp_path)
    assert isinstance(plan, SweepPlan)
    x = data[0][0][None]
    for e in plan.experiments:
        assert e.flops_per_sample == 3 * forward_flops(CNN(e.size_value), x)
        assert e.flops_per_sample != 6 * e.model_params
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_six_n_can_be_kept_even_with_a_dataset() -> None:
    plan = find_optimal(MLP, "width", None, mlp_data(), nn.MSELoss(), [1e6, 1e7], train=False,
                        sizes=[4, 8], flops="6N")
    assert all(e.flops_per_sample == 6 * e.model_params for e in plan.experiments)


def test_a_dataset_without_a_loss_warns_and_returns_the_plan() -> None:
    with pytest.warns(UserWarning, match=r"train=True but loss_fn is missing: returning the plan"):
        plan = find_optimal(MLP, "width", None, mlp_data(), None, [1e6, 1e7], sizes=[4, 8])
    assert isinstance(plan, SweepPlan)



@pytest.mark.usefixtures("no_planning")
@pytest.mark.parametrize(
    ("model_cls", "size_param", "dataset", "loss_fn", "budgets", "error", "match"),
    [
        # A bad model fails before the (also bad) dataset, loss and budgets are looked at.
        (MLP, "depth", [1, 2, 3], "mse", [], ValueError, r"MLP\(\) has no argument 'depth'"),
        ("MLP", "width", [1, 2, 3], "mse", None, TypeError, r"Got model_cls='MLP' \(str\), expected a class"),
        # A good model with a bad dataset: the dataset's error, not the loss's.
        (MLP, "width", [1, 2, 3], "mse", None, TypeError, r"^Expected a torch.utils.data.Dataset"),
        # Good model and dataset, bad loss: the loss's error, not the budgets'.
        (MLP, "width", mlp_data(), "mse", [], TypeError, r"^Got loss_fn='mse' \(str\), expected a callable"),
        # All good but no budgets: a ValueError with an example.
        (MLP, "width", mlp_data(), nn.MSELoss(), None, ValueError,
         r"find_optimal needs compute_budgets, .* e.g. find_optimal\(MyModel, 'width', compute_budgets=\[1e15, 1e16\]\)"),
        (MLP, "width", None, None, None, ValueError, r"find_optimal needs compute_budgets"),
        (MLP, "width", None, None, [], ValueError, r"compute_budgets is empty"),
        (MLP, "width", None, None, [1e6, float("nan")], ValueError, r"Got compute_budgets\[1\]=nan, expected a finite number of FLOPs > 0"),
        (MLP, "width", None, None, [1e6, -1], ValueError, r"Got compute_budgets\[1\]=-1, expected a finite number of FLOPs > 0"),
        (MLP, "width", None, None, ["many"], ValueError, r"Got compute_budgets\[0\]='many' \(str\), expected a number of FLOPs"),
        (MLP, "width", mlp_data(), nn.MSELoss(), [1e6], ValueError,
         r"training needs at least 2 compute_budgets, got \['1e\+06'\]"),
    ],
)
def test_validation_order_is_model_dataset_loss_budgets(model_cls, size_param, dataset, loss_fn, budgets,
                                                        error, match) -> None:
    with pytest.raises(error, match=match):
        find_optimal(model_cls, size_param, None, dataset, loss_fn, budgets)


def test_a_budget_too_small_for_any_size_is_named() -> None:
    with pytest.raises(ValueError, match=r"No feasible model size for compute budget 1 FLOPs"):
        find_optimal(MLP, "width", None, compute_budgets=[1, 1e6], sizes=[4, 8])


def test_trained_run_sees_exactly_the_planned_samples_and_fits(tmp_path) -> None:
    data = fourier_data()
    settings = TrainSettings(batch_size=32, lr=0.1)
    kwargs = dict(sizes=[2, 4, 8, 16, 32], settings=settings, device="cpu", progress=False,
                  fit_options={"n_bootstrap": 50})
    plan = find_optimal(Fourier, "width", None, data, nn.MSELoss(), [5e4, 1.5e5], train=False, **kwargs)
    Fourier.seen.clear()
    result = find_optimal(Fourier, "width", None, data, nn.MSELoss(), [5e4, 1.5e5],
                          output_dir=tmp_path, **kwargs)
    planned: dict[int, int] = {}
    for e in plan.experiments:
        planned[e.size_value] = planned.get(e.size_value, 0) + e.train_samples
    assert Fourier.seen == planned  # sample for sample, every experiment

    table = load_results(tmp_path).set_index("experiment_id")
    for e in plan.experiments:
        assert table.loc[e.experiment_id, "samples_seen"] == e.train_samples
        # The training FLOPs spent are the budget, within half a sample.
        assert abs(table.loc[e.experiment_id, "train_flops"] - e.compute_budget) <= e.flops_per_sample / 2
    assert isinstance(result, Result) and result.method == "isoflop"
    assert result.budgets["interior"].all()
    n_opt = result.budgets.set_index("budget")["N_opt"]
    assert n_opt[5e4] < n_opt[1.5e5]  # more compute, a larger optimal model

    # Resume: a second call trains nothing and fits the same.
    Fourier.seen.clear()
    again = find_optimal(Fourier, "width", None, data, nn.MSELoss(), [5e4, 1.5e5], output_dir=tmp_path, **kwargs)
    assert Fourier.seen == {}
    assert again.params == pytest.approx(result.params)


def test_a_fit_that_cannot_be_made_says_why_and_keeps_the_runs(tmp_path) -> None:
    data = fourier_data(64)
    with pytest.raises(ValueError, match=r"Trained 4 experiments \(recorded in .*\) but could not fit the IsoFLOP "
                                         r"laws: .*fewer than 3 sizes"):
        find_optimal(Fourier, "width", None, data, nn.MSELoss(), [2e3, 4e3], sizes=[2, 4],
                     output_dir=tmp_path, device="cpu", progress=False)
    assert len(load_results(tmp_path)) == 4


def test_all_runs_failing_is_an_error(tmp_path) -> None:
    def nan_loss(out, target):
        return (out - target).square().mean() * float("nan")

    with pytest.warns(UserWarning, match=r"2 of 2 experiments did not finish ok"), \
            pytest.raises(ValueError, match=r"No experiment finished ok; see the error column of .*study_results.csv"):
        find_optimal(MLP, "width", None, mlp_data(), nan_loss, [1e4, 2e4], sizes=[2],
                     output_dir=tmp_path, device="cpu", progress=False)
    assert load_results(tmp_path)["error"].str.startswith("DivergedError").all()
