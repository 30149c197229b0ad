"""Train several models of one architecture as one: each layer runs once for all of them.

A small generator leaves a CPU idle: at widths 2-8 a training step is mostly
the fixed cost of a few hundred small ops (oneDNN primitive calls, FFT plans,
autograd bookkeeping), not arithmetic. The seeds of one IsoFLOP point have
the same architecture, size and step count, so :func:`stack_models` lays ``M``
of them side by side as one model whose every channel-mixing layer is
*grouped*: member ``m`` owns channel block ``m`` of every activation, so the
members stay exactly independent (each one's output and gradients are its
own, up to the order of float summation) while each op, its dispatch and its
autograd node serve all ``M``.

* :class:`~torch.nn.Conv2d` (and :class:`ChannelsLastConv2d`) and
  :class:`~torch.nn.ConvTranspose2d` become the same layer with ``M`` times
  the groups; oneDNN's grouped convolutions at 2-6 channels per group cost
  less than the separate calls (measured in ``benchmarks/bench_fno_train.py``).
* :class:`~flops_fit.ptycho.layers.SpectralConv2d` becomes one with
  ``groups=M``: one FFT per direction and one ``bmm`` for all members.
* Elementwise layers (GELU, residual sums, the input transforms, a per-channel
  instance norm) need nothing.

Why by hand: ``torch.func.stack_module_state`` + ``vmap`` needs a batching
rule per op (the hand-written spectral backward has none) and would run a
model's Python once per member anyway; the grouped layers are ordinary
modules that autograd, Adam and ``state_dict`` treat as one model.

A model whose forward mixes channels some other way (a ``cat`` along
channels, as :class:`~flops_fit.ptycho.models.Hybrid`'s skips) would couple
the members: :func:`stack_models` checks the stacked output against the
members' own on a random input and refuses such a model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from flops_fit.ptycho.layers import SpectralConv2d

__all__ = ["member_slices", "stack_inputs", "stack_models", "unstack_into"]

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _stack_layer(layers: Sequence[nn.Module]) -> nn.Module:
    """One layer computing ``layers`` side by side on model-major channel blocks."""
    first, m = layers[0], len(layers)
    wide = copy.deepcopy(first)
    if isinstance(first, _CONVS):
        # Conv weights are (out, in / groups, k, k); ConvTranspose (in, out / groups, k, k): both
        # stack along dim 0, and M times the groups keeps every member's blocks on its own.
        wide.in_channels, wide.out_channels = m * first.in_channels, m * first.out_channels
        wide.groups = m * first.groups
        names = ["weight", "bias"]
    elif isinstance(first, SpectralConv2d):
        if first.groups != 1:
            raise ValueError(f"Got a SpectralConv2d with groups={first.groups}, expected 1 to stack it")
        wide.in_channels, wide.out_channels, wide.groups = m * first.in_channels, m * first.out_channels, m
        names = ["weight"]
    else:
        raise AssertionError(type(first))  # _stackable() chose the layer
    for name in names:
        if getattr(first, name, None) is None:
            continue
        values = [getattr(layer, name).detach() for layer in layers]
        if isinstance(first, SpectralConv2d):  # (K, C, 2, O) each -> (K, M, C, 2, O) -> (K M, C, 2, O)
            stacked = torch.stack(values, dim=1).flatten(0, 1)
        else:
            stacked = torch.cat(values, dim=0)
        setattr(wide, name, nn.Parameter(stacked.clone()))
    return wide


def _stackable(module: nn.Module) -> bool:
    return isinstance(module, (*_CONVS, SpectralConv2d))


def _member_part(wide: nn.Module, name: str, m: int, members: int) -> torch.Tensor:
    """Member ``m``'s share of the stacked parameter ``name`` of layer ``wide``."""
    value = getattr(wide, name)
    if isinstance(wide, SpectralConv2d):
        return value.view(-1, members, *value.shape[1:])[:, m]
    return value.view(members, -1, *value.shape[1:])[m]


def stack_models(models: Sequence[nn.Module], *, check_input: torch.Tensor) -> nn.Module:
    """``M`` models of one architecture as one model on model-major channel blocks.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Same architecture and sizes (the same module tree and parameter
        shapes); their parameters are copied, not shared. Parameters outside
        convolutions and spectral layers are not supported.
    check_input : torch.Tensor
        A batch of one member's input, ``(B, C, ...)`` with ``B >= 1``: the
        stacked model's output on the members' inputs side by side (this batch
        rolled by ``m`` for member ``m``) is checked against each member's own.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, M C, ...)`` (member ``m`` on channels ``[m C, (m + 1) C)``,
        see :func:`stack_inputs`) to ``(B, M C', ...)`` the same way.

    Raises
    ------
    ValueError
        Fewer than one model, models that differ in structure, buffers that
        differ between members, a parameterised layer that cannot be
        stacked, or a forward pass that couples the members.
    """
    models = list(models)
    if not models:
        raise ValueError("Got models=[], expected at least one model to stack")
    first = models[0]
    trees = [[(name, type(mod)) for name, mod in model.named_modules()] for model in models]
    shapes = [[(name, tuple(p.shape)) for name, p in model.named_parameters()] for model in models]
    if any(tree != trees[0] for tree in trees) or any(shape != shapes[0] for shape in shapes):
        raise ValueError("Got models of different structure or parameter shapes, expected one architecture and size")
    for (name, buffer) in first.named_buffers():
        if any(not torch.equal(buffer, dict(model.named_buffers())[name]) for model in models[1:]):
            raise ValueError(f"Got members whose buffer {name!r} differs, expected equal buffers to stack them")
    wide = _stack_layer(models) if _stackable(first) else copy.deepcopy(first)
    for name, module in list(first.named_modules()):
        if not name and _stackable(module):
            continue  # the model is one layer, stacked above
        if _stackable(module):
            layers = [model.get_submodule(name) for model in models]
            parent, _, attr = name.rpartition(".")
            setattr(wide.get_submodule(parent) if parent else wide, attr, _stack_layer(layers))
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"Got layer {name!r} of type {type(module).__name__} with parameters, expected only "
                "Conv2d, ConvTranspose2d and SpectralConv2d layers to hold parameters"
            )
    _check_independent(wide, models, check_input)
    return wide


def _check_independent(wide: nn.Module, models: list[nn.Module], check_input: torch.Tensor) -> None:
    """Raise unless ``wide`` on the members' inputs side by side gives each member's own output."""
    device = next(iter(wide.parameters())).device
    inputs = [check_input.roll(m, dims=0).to(device) for m in range(len(models))]
    with torch.no_grad():
        own = [model(x) for model, x in zip(models, inputs, strict=True)]
        stacked = member_slices(wide(stack_inputs(inputs)), len(models))
    scale = max(float(o.abs().max()) for o in own) or 1.0
    worst = max(float((s - o).abs().max()) for s, o in zip(stacked, own, strict=True)) / scale
    if worst > 1e-4:
        raise ValueError(
            f"Got a model whose stacked output differs from its members' by {worst:.1e} (relative), "
            "expected independent members: its forward mixes channels outside convolutions "
            "(a cat or reshape along channels?), so it cannot be stacked"
        )


def stack_inputs(inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Members' inputs ``(B, C, ...)`` each -> ``(B, M C, ...)``, member ``m`` on block ``m``."""
    return torch.cat(list(inputs), dim=1)


def member_slices(output: torch.Tensor, members: int) -> list[torch.Tensor]:
    """A stacked model's output ``(B, M C, ...)`` -> the members' ``(B, C, ...)`` (views)."""
    return list(output.chunk(members, dim=1))


def unstack_into(wide: nn.Module, models: Sequence[nn.Module]) -> None:
    """Copy the trained parameters of ``wide`` (from :func:`stack_models`) back into its members."""
    models = list(models)
    with torch.no_grad():
        for name, module in wide.named_modules():
            if not _stackable(module):
                continue
            for m, model in enumerate(models):
                member = model.get_submodule(name)
                for pname, param in member.named_parameters(recurse=False):
                    param.copy_(_member_part(module, pname, m, len(models)))
