"""The config entries that tie a find_optimal run to its data, loss and settings."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from flops_fit.fingerprint import (
    FINGERPRINT_KEYS,
    dataset_fingerprint,
    loss_name,
    sweep_fingerprint,
)
from flops_fit.training import TrainSettings


def _data(seed: int = 0, n: int = 20) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g))


class Augmented(Dataset):
    """Draws from all three global generators on every read, as random augmentation does."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        return torch.rand(3) + i, torch.tensor(float(np.random.rand() + random.random()))  # noqa: NPY002


def test_the_same_inputs_give_the_same_entries_and_a_dataloader_counts_as_its_dataset():
    a = sweep_fingerprint(_data(), nn.MSELoss(), TrainSettings())
    assert list(a) == list(FINGERPRINT_KEYS)
    assert a == sweep_fingerprint(_data(), nn.MSELoss(), TrainSettings())
    assert a == sweep_fingerprint(DataLoader(_data(), batch_size=4), nn.MSELoss(), TrainSettings())
    assert a["dataset_fingerprint"].startswith("torch.utils.data.dataset.TensorDataset n=20 sha256:")


@pytest.mark.parametrize(
    ("dataset", "loss", "settings"),
    [
        (_data(seed=1), nn.MSELoss(), TrainSettings()),  # other values, same shape and length
        (_data(n=21), nn.MSELoss(), TrainSettings()),
        (_data(), nn.L1Loss(), TrainSettings()),
        (_data(), nn.MSELoss(reduction="sum"), TrainSettings()),
        (_data(), nn.MSELoss(), TrainSettings(lr=2e-3)),
    ],
)
def test_any_change_of_data_loss_or_settings_changes_the_entries(dataset, loss, settings):
    assert sweep_fingerprint(dataset, loss, settings) != sweep_fingerprint(_data(), nn.MSELoss(), TrainSettings())


def test_random_augmentation_hashes_the_same_and_leaves_the_generators_alone():
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    first = dataset_fingerprint(Augmented())
    after = (torch.rand(1).item(), np.random.rand(), random.random())  # noqa: NPY002
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    torch.rand(7)  # another state: the fingerprint must not depend on it
    assert dataset_fingerprint(Augmented()) == first
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    dataset_fingerprint(Augmented())
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == after  # noqa: NPY002


@pytest.mark.parametrize(
    ("loss", "name"),
    [
        (nn.HuberLoss(delta=2.0), "torch.nn.modules.loss.HuberLoss(delta=2.0, reduction='mean')"),
        (nn.functional.mse_loss, "torch.nn.functional.mse_loss"),
        (functools.partial(nn.functional.huber_loss, delta=0.5),
         "functools.partial(torch.nn.functional.huber_loss, delta=0.5)"),
    ],
)
def test_loss_names_are_qualified_and_carry_their_options(loss, name):
    assert loss_name(loss) == name
