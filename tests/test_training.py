"""The generic trainer: exact sample counts, the schedule, divergence, the runner's contract."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from flops_fit.planning import plan_sweep
from flops_fit.runner import DivergedError, run_sweep
from flops_fit.training import (
    Trainer,
    TrainSettings,
    evaluate,
    lr_factor,
    sample_order,
    split_indices,
    time_train_step,
    train_for_samples,
)


class MLP(nn.Module):
    """Counts the samples it sees in training mode (class-wide, per width)."""

    seen: dict[int, int] = {}

    def __init__(self, width: int, in_features: int = 3) -> None:
        super().__init__()
        self.width = width
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            MLP.seen[self.width] = MLP.seen.get(self.width, 0) + len(x)
        return self.net(x)


class CountingDataset(TensorDataset):
    """Counts every item read, by index."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        super().__init__(*tensors)
        self.reads: dict[int, int] = {}

    def __getitem__(self, i: int):
        self.reads[i] = self.reads.get(i, 0) + 1
        return super().__getitem__(i)


def linear_data(n: int, seed: int = 0) -> CountingDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.01 * torch.randn(n, 1, generator=g)
    return CountingDataset(x, y)


def test_lr_schedule_warms_up_linearly_then_cosine_decays_to_the_floor() -> None:
    total, warmup, floor = 11, 2, 0.1
    f = [lr_factor(s, total, warmup, floor) for s in range(total)]
    assert f[:2] == [0.5, 1.0]
    assert f[2] == 1.0 and f[-1] == pytest.approx(floor)
    # Half-way through the decay (step 2 + 4 of 8 decay steps) the cosine is at its middle.
    assert f[6] == pytest.approx(floor + (1 - floor) / 2)
    assert all(a >= b for a, b in zip(f[1:], f[2:], strict=False))
    assert lr_factor(0, 1, 1, 0.1) == 1.0  # a one-step run trains at the peak


def test_split_is_seeded_disjoint_and_complete() -> None:
    train, hold = split_indices(50, 0.1, seed=0)
    assert len(hold) == 5 and sorted(train + hold) == list(range(50))
    assert split_indices(50, 0.1, seed=0) == (train, hold)
    assert split_indices(50, 0.1, seed=1) != (train, hold)
    assert len(split_indices(3, 0.01, seed=0)[1]) == 1  # at least one held out
    with pytest.raises(ValueError, match=r"Need at least 2 samples to hold some out for the final loss, got 1"):
        split_indices(1, 0.1, seed=0)


@pytest.mark.parametrize("num_samples", [1, 7, 10, 23])
def test_sample_order_is_whole_passes_then_a_partial_one(num_samples: int) -> None:
    indices = [3, 5, 8, 13, 21, 34, 55, 89, 144, 233]
    order = sample_order(indices, num_samples, torch.Generator().manual_seed(0))
    assert len(order) == num_samples
    full, rest = divmod(num_samples, len(indices))
    for k in range(full):
        assert sorted(order[k * 10:(k + 1) * 10]) == indices
    assert len(set(order[full * 10:])) == rest and set(order) <= set(indices)


@pytest.mark.parametrize(("num_samples", "batch_size"), [(1, 8), (8, 8), (9, 8), (50, 8), (61, 16)])
def test_trains_exactly_the_planned_number_of_samples(num_samples: int, batch_size: int) -> None:
    data = linear_data(20)
    train_idx, hold_idx = split_indices(len(data), 0.25, seed=0)
    MLP.seen.clear()
    summary, history = train_for_samples(
        MLP(4), data, nn.MSELoss(), num_samples, train_indices=train_idx,
        settings=TrainSettings(batch_size=batch_size),
    )
    assert MLP.seen == {4: num_samples}
    assert sum(data.reads.values()) == num_samples
    assert set(data.reads) <= set(train_idx)  # never a held-out sample
    assert summary["samples_seen"] == num_samples
    assert summary["steps"] == len(history) == math.ceil(num_samples / batch_size)
    assert summary["epochs"] == pytest.approx(num_samples / len(train_idx))
    assert history[-1]["samples"] == num_samples


def test_training_lowers_the_held_out_loss() -> None:
    torch.manual_seed(0)
    data = linear_data(200)
    train_idx, hold_idx = split_indices(len(data), 0.2, seed=0)
    model = MLP(8)
    before = evaluate(model, data, hold_idx, nn.MSELoss())
    train_for_samples(model, data, nn.MSELoss(), 3000, train_indices=train_idx,
                      settings=TrainSettings(batch_size=16, lr=1e-2))
    after = evaluate(model, data, hold_idx, nn.MSELoss())
    assert after < 0.1 * before


def test_a_non_finite_loss_raises_diverged_error() -> None:
    data = linear_data(20)

    def nan_loss(out, target):
        return (out - target).mean() * float("nan")

    with pytest.raises(DivergedError, match=r"training loss is nan at step 1/3 after 8 samples"):
        train_for_samples(MLP(4), data, nan_loss, 20, train_indices=list(range(16)),
                          settings=TrainSettings(batch_size=8))


def test_a_loss_that_is_not_a_scalar_is_an_error() -> None:
    data = linear_data(20)
    with pytest.raises(TypeError, match=r"Got a loss of a tensor of shape \(8, 1\) from loss_fn, "
                                        r"expected a scalar tensor \(mean over the batch\)"):
        train_for_samples(MLP(4), data, nn.MSELoss(reduction="none"), 20, train_indices=list(range(16)),
                          settings=TrainSettings(batch_size=8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"Got batch_size=0, expected an int >= 1"),
        ({"lr": 0.0}, r"Got lr=0.0, expected a finite number > 0"),
        ({"warmup_fraction": 1.5}, r"Got warmup_fraction=1.5, expected a number in \[0, 1\]"),
        ({"min_lr_ratio": -0.1}, r"Got min_lr_ratio=-0.1, expected a number in \[0, 1\]"),
        ({"holdout_fraction": 1.0}, r"Got holdout_fraction=1.0, expected a number in \(0, 1\)"),
    ],
)
def test_bad_settings_are_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        TrainSettings(**kwargs)


def test_trainer_runs_a_plan_through_the_runner_sample_for_sample(tmp_path) -> None:
    data = linear_data(64)
    plan = plan_sweep(MLP, "width", {"in_features": 3}, [2e4, 6e4], sizes=[2, 4, 8], seed=0)
    MLP.seen.clear()
    trainer = Trainer(MLP, "width", data, nn.MSELoss(), {"in_features": 3}, TrainSettings(batch_size=16))
    table = run_sweep(plan, trainer, tmp_path, progress=False, device="cpu")
    assert (table["status"] == "ok").all(), table["error"].tolist()
    assert set(table["experiment_id"]) == {e.experiment_id for e in plan.experiments}
    rows = table.set_index("experiment_id")
    for e in plan.experiments:
        row = rows.loc[e.experiment_id]
        assert row["samples_seen"] == e.train_samples
        assert row["train_flops"] == pytest.approx(e.train_samples * e.flops_per_sample)
        assert math.isfinite(row["final_loss"]) and row["holdout_samples"] == 6
        with open(tmp_path / "runs" / e.experiment_id / "history.csv") as f:
            history = list(csv.DictReader(f))
        assert int(history[-1]["samples"]) == e.train_samples
    planned = {}
    for e in plan.experiments:
        planned[e.size_value] = planned.get(e.size_value, 0) + e.train_samples
    assert MLP.seen == planned


def test_trainer_takes_a_dataloader_and_uses_its_collate_fn(tmp_path) -> None:
    calls = []

    def collate(items):
        calls.append(len(items))
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    loader = DataLoader(linear_data(20), batch_size=3, collate_fn=collate)
    trainer = Trainer(MLP, "width", loader, nn.MSELoss(), {}, TrainSettings(batch_size=4))
    out = trainer({"width": 2, "train_samples": 10, "seed": 0}, tmp_path, device="cpu")
    assert out["samples_seen"] == 10
    assert calls[:3] == [4, 4, 2]  # the plan's batches, not the loader's batch_size


def test_time_train_step_gives_seconds_per_sample() -> None:
    t = time_train_step(MLP(4), torch.zeros(1, 3), steps=2, batch_size=4)
    assert 0 < t < 1
