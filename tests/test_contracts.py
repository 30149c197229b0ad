"""validate_model / validate_dataset / validate_loss: what passes, and every message."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from flops_fit.contracts import (
    build_model,
    num_params,
    validate_dataset,
    validate_loss,
    validate_model,
)


class MLP(nn.Module):
    def __init__(self, width: int, in_features: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Counted(MLP):
    def num_params(self) -> int:
        return 12345


class Defaulted(MLP):
    built_with: list[int] = []

    def __init__(self, width: int = 16) -> None:
        Defaulted.built_with.append(width)
        super().__init__(width)


class Fussy(MLP):
    def __init__(self, width: int) -> None:
        if width % 3:
            raise ValueError(f"width must be a multiple of 3, got {width}")
        super().__init__(width)


class NoParams(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class BadCount(MLP):
    def num_params(self) -> int:
        return 0


class Flexible(nn.Module):
    def __init__(self, **kwargs: int) -> None:
        super().__init__()
        self.lin = nn.Linear(2, kwargs["size"])


def not_a_module(width: int) -> list[int]:
    return [width]


@pytest.mark.parametrize("width", [3, 8])
def test_counts_parameters_of_the_probe(width: int) -> None:
    # Linear(4, w) + Linear(w, 1): 4w + w weights and biases, then w + 1.
    assert validate_model(MLP, "width", {"in_features": 4}, probe_size=width) == 6 * width + 1


def test_prefers_num_params_when_the_model_has_it() -> None:
    assert validate_model(Counted, "width", {}) == 12345


def test_probes_at_the_constructors_default_size() -> None:
    Defaulted.built_with.clear()
    validate_model(Defaulted, "width", None)
    assert Defaulted.built_with == [16]


def test_accepts_size_through_var_kwargs() -> None:
    assert validate_model(Flexible, "size", {}) == 3 * 8


@pytest.mark.parametrize(
    ("model_cls", "size_param", "kwargs", "error", "match"),
    [
        (42, "width", {}, TypeError, r"Got model_cls=42 \(int\), expected a class"),
        (MLP, 3, {}, TypeError, r"Got size_param=3, expected the name \(str\) of a constructor argument of MLP"),
        (MLP, "width", [("in_features", 4)], TypeError, r"Got model_kwargs of type list, expected a dict"),
        (MLP, "width", {"width": 8}, ValueError, r"expected them without the size parameter 'width'"),
        (MLP, "depth", {}, ValueError, r"MLP\(\) has no argument 'depth' .* its arguments are \['width', 'in_features'\]"),
        (MLP, "width", {"dropout": 0.1}, ValueError, r"MLP\(\) does not accept MLP\(dropout=0.1, width=8\)"),
        (Fussy, "width", {}, ValueError, r"Could not build Fussy\(width=8\): ValueError: width must be a multiple of 3"),
        (not_a_module, "width", {}, TypeError, r"not_a_module\(width=8\) returned list, expected a torch.nn.Module"),
        (BadCount, "width", {}, ValueError, r"BadCount.num_params\(\) gave 0, expected an int >= 1"),
        (NoParams, "width", {}, ValueError, r"NoParams \(trainable parameters .*\) gave 0, expected an int >= 1"),
    ],
)
def test_model_errors_say_what_came(model_cls, size_param, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        validate_model(model_cls, size_param, kwargs)


def test_build_model_on_meta_allocates_nothing_but_counts_the_same() -> None:
    meta = build_model(MLP, "width", 2048, {"in_features": 512}, device="meta")
    assert next(meta.parameters()).is_meta
    assert num_params(meta) == 512 * 2048 + 2048 + 2048 + 1


def _pairs(n: int) -> TensorDataset:
    return TensorDataset(torch.randn(n, 4), torch.randn(n, 1))


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(4), torch.zeros(1)


@pytest.mark.parametrize("dataset", [_pairs(5), DataLoader(_pairs(5), batch_size=2)])
def test_dataset_or_loader_passes_and_gives_its_length(dataset) -> None:
    assert validate_dataset(dataset) == 5


@pytest.mark.parametrize(
    ("dataset", "error", "match"),
    [
        ([(torch.zeros(4), torch.zeros(1))], TypeError, r"^Expected a torch.utils.data.Dataset or DataLoader, got list$"),
        (torch.zeros(3, 4), TypeError, r"^Expected a torch.utils.data.Dataset or DataLoader, got Tensor$"),
        (Stream(), TypeError, r"^Expected a torch.utils.data.Dataset with __len__ and __getitem__ \(map-style\), got Stream"),
        (_pairs(0), ValueError, r"^Expected a torch.utils.data.Dataset with at least one sample, got an empty TensorDataset"),
        (TensorDataset(torch.zeros(3, 4)), TypeError, r"^Expected a torch.utils.data.Dataset of \(input, target\) pairs or of single tensors, got items of type tuple of length 1"),
    ],
)
def test_dataset_errors_start_with_what_was_expected(dataset, error, match) -> None:
    with pytest.raises(error, match=match):
        validate_dataset(dataset)


@pytest.mark.parametrize("loss_fn", [nn.MSELoss(), torch.nn.functional.l1_loss, lambda a, b: (a - b).abs().mean()])
def test_callable_losses_pass(loss_fn) -> None:
    validate_loss(loss_fn)


@pytest.mark.parametrize(("loss_fn", "shown"), [("mse", r"'mse' \(str\)"), (None, r"None \(NoneType\)")])
def test_loss_must_be_callable(loss_fn, shown) -> None:
    with pytest.raises(TypeError, match=rf"^Got loss_fn={shown}, expected a callable"):
        validate_loss(loss_fn)
