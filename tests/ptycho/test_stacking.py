"""Stacked training: M models as one, each member the model it would be alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flops_fit.errors import DivergedError
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.layers import ChannelsLastConv2d, SpectralConv2d
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import simulate
from flops_fit.ptycho.stacking import member_slices, stack_inputs, stack_models, unstack_into

TINY = GridLinesConfig(N=16, size=40, nlines=30, train_stride=4, test_stride=8, poisson=False)


@pytest.fixture(scope="module")
def data():
    return simulate(TINY)


def _fno(seed: int, width: int = 3, transform: str = "none") -> nn.Module:
    torch.manual_seed(seed)
    return ptrain.InputScale(build_model("fno", modes=3, width=width, N=16, input_transform=transform), 7.0)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("members", [1, 2, 3])
@pytest.mark.parametrize("transform", ["none", "log1p", "instancenorm"])
def test_stacked_output_is_each_members_own(members: int, transform: str) -> None:
    models = [_fno(seed, transform=transform) for seed in range(members)]
    x = torch.rand(4, 1, 16, 16)
    wide = stack_models(models, check_input=x)
    inputs = [torch.rand(4, 1, 16, 16) for _ in models]
    with torch.no_grad():
        outs = member_slices(wide(stack_inputs(inputs)), members)
        for model, xm, out in zip(models, inputs, outs, strict=True):
            torch.testing.assert_close(out, model(xm), rtol=1e-5, atol=1e-6)


def test_stacked_gradients_are_each_members_own() -> None:
    models = [_fno(seed) for seed in range(2)]
    inputs = [torch.rand(4, 1, 16, 16) for _ in models]
    targets = [torch.randn(4, 2, 16, 16) for _ in models]
    wide = stack_models(models, check_input=inputs[0])
    preds = member_slices(wide(stack_inputs(inputs)), 2)
    sum((p - t).abs().mean() for p, t in zip(preds, targets, strict=True)).backward()
    for model, xm, t in zip(models, inputs, targets, strict=True):
        (model(xm) - t).abs().mean().backward()
    # The stacked gradients, split back per member, are each member's own.
    for name, layer in wide.named_modules():
        if isinstance(layer, nn.Conv2d | SpectralConv2d):
            for m, model in enumerate(models):
                member = model.get_submodule(name)
                grad = layer.weight.grad
                part = grad.view(-1, 2, *grad.shape[1:])[:, m] if isinstance(layer, SpectralConv2d) else grad.view(2, -1, *grad.shape[1:])[m]
                torch.testing.assert_close(part, member.weight.grad, rtol=1e-4, atol=1e-6)


def test_unstack_copies_the_trained_weights_back() -> None:
    models = [_fno(seed) for seed in range(3)]
    wide = stack_models(models, check_input=torch.rand(2, 1, 16, 16))
    with torch.no_grad():
        for p in wide.parameters():
            p.mul_(2.0)
    before = [_weights(m) for m in models]
    unstack_into(wide, models)
    for model, old in zip(models, before, strict=True):
        for p, q in zip(model.parameters(), old, strict=True):
            torch.testing.assert_close(p, 2.0 * q)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
@pytest.mark.parametrize("loss", ["mae", "physics"])
def test_fit_members_trains_each_member_as_alone(data, schedule: str, loss: str) -> None:
    seeds = [3, 5, 8]
    args = dict(samples=120, batch_size=16, lr=3e-3, loss=loss, schedule=schedule, progress=False)
    alone = []
    for i, seed in enumerate(seeds):
        model = _fno(i)
        history = ptrain.fit(model, data.train.X, data.train.Y, data.train.probe, seed=seed, **args)
        alone.append((history, _weights(model)))
    together = [_fno(i) for i in range(len(seeds))]
    results = ptrain.fit_members(together, data.train.X, data.train.Y, data.train.probe, seeds=seeds, **args)
    for (history, weights), result, model in zip(alone, results, together, strict=True):
        assert [h["samples_seen"] for h in result] == [h["samples_seen"] for h in history]
        np.testing.assert_allclose([h["train_loss"] for h in result], [h["train_loss"] for h in history], rtol=1e-4)
        for p, q in zip(model.parameters(), weights, strict=True):
            torch.testing.assert_close(p.detach(), q, rtol=1e-3, atol=1e-5)
    # Different seeds: the members really are different models.
    assert not torch.allclose(next(together[0].parameters()), next(together[1].parameters()))


def test_a_diverged_member_does_not_stop_the_others(data) -> None:
    args = dict(samples=60, progress=False)
    healthy = _fno(1)
    ref = _fno(1)
    ref_history = ptrain.fit(ref, data.train.X, data.train.Y, data.train.probe, seed=1, **args)
    poisoned = _fno(0)
    with torch.no_grad():
        next(poisoned.parameters()).fill_(float("nan"))
    results = ptrain.fit_members([poisoned, healthy], data.train.X, data.train.Y, data.train.probe,
                                 seeds=[0, 1], **args)
    assert isinstance(results[0], DivergedError)
    assert "diverged at epoch 1: loss is nan" in str(results[0])
    np.testing.assert_allclose([h["train_loss"] for h in results[1]], [h["train_loss"] for h in ref_history],
                               rtol=1e-4)
    assert all(torch.isfinite(p).all() for p in healthy.parameters())


def test_every_member_diverged_stops_early(data) -> None:
    models = [_fno(0), _fno(1)]
    with torch.no_grad():
        for model in models:
            next(model.parameters()).fill_(float("nan"))
    results = ptrain.fit_members(models, data.train.X, data.train.Y, data.train.probe, seeds=[0, 1],
                                 samples=49, progress=False)
    assert all(isinstance(r, DivergedError) for r in results)


def test_hybrid_couples_members_and_is_refused() -> None:
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(build_model("hybrid", modes=2, width=2, N=16))
    with pytest.raises(ValueError, match=r"stacked output differs from its members' by .* cannot be stacked"):
        stack_models(models, check_input=torch.rand(2, 1, 16, 16))


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ([], r"Got models=\[\], expected at least one model to stack"),
        ([_fno(0, width=2), _fno(1, width=3)], r"Got models of different structure or parameter shapes"),
        ([nn.Sequential(nn.Flatten(), nn.Linear(256, 2))] * 2,
         r"Got layer '1' of type Linear with parameters, expected only Conv2d, ConvTranspose2d and SpectralConv2d"),
        ([SpectralConv2d(2, 2, 2, 2, groups=2)] * 2, r"Got a SpectralConv2d with groups=2, expected 1 to stack it"),
    ],
)
def test_stack_models_refuses(models: list[nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stack_models(models, check_input=torch.rand(2, 1, 16, 16))


def test_members_with_different_buffers_are_refused() -> None:
    a, b = _fno(0), _fno(1)
    b.scale.fill_(3.0)
    with pytest.raises(ValueError, match=r"Got members whose buffer 'scale' differs, expected equal buffers"):
        stack_models([a, b], check_input=torch.rand(2, 1, 16, 16))


def test_fit_members_needs_one_seed_per_model(data) -> None:
    with pytest.raises(ValueError, match=r"Got 2 models and 1 seeds, expected at least one model and one seed each"):
        ptrain.fit_members([_fno(0), _fno(1)], data.train.X, data.train.Y, data.train.probe, seeds=[0], samples=10)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_spectral_conv_is_separate_layers_side_by_side(groups: int) -> None:
    torch.manual_seed(0)
    parts = [SpectralConv2d(2, 3, 3, 2) for _ in range(groups)]
    wide = stack_models(parts, check_input=torch.rand(2, 2, 8, 8))
    assert wide.groups == groups and wide.in_channels == 2 * groups
    x = torch.rand(3, 2 * groups, 8, 8)
    with torch.no_grad():
        want = torch.cat([layer(xg) for layer, xg in zip(parts, x.chunk(groups, dim=1), strict=True)], dim=1)
        torch.testing.assert_close(wide(x), want, rtol=1e-5, atol=1e-6)


def test_grouped_convs_keep_channels_last() -> None:
    torch.manual_seed(0)
    convs = [ChannelsLastConv2d(2, 4, 3, padding=1) for _ in range(3)]
    wide = stack_models(convs, check_input=torch.rand(2, 2, 8, 8))
    assert isinstance(wide, ChannelsLastConv2d) and wide.groups == 3
    assert wide(torch.rand(2, 6, 8, 8)).is_contiguous(memory_format=torch.channels_last)


def test_spectral_groups_must_divide_the_channels() -> None:
    with pytest.raises(ValueError, match=r"Got groups=2, expected a divisor of in_channels=3 and out_channels=4"):
        SpectralConv2d(3, 4, 2, 2, groups=2)
