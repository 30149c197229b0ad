"""The user's model class: build it at one size, name it, count its parameters N.

``find_optimal`` and ``plan_sweep`` take any class (or function) whose size
is set by one constructor argument. Everything that builds or measures such
a model goes through here: :func:`build_at_size` (one model at one size),
:func:`model_params` (its N, the ``model_params`` column of every plan and
results table), :func:`model_name` (for messages) and :func:`to_device` (its
inputs). Checking the class before any work is :mod:`flops_fit.contracts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from flops_fit.checks import is_int
from flops_fit.flops import count_params

__all__ = ["build_at_size", "call_text", "model_name", "model_params", "to_device"]


def to_device(x: Any, device: str | torch.device) -> Any:
    """Move a tensor, or the tensors of a (nested) tuple/list, to ``device``; others pass through."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    return x


def model_name(model_cls: Any) -> str:
    """Readable name of a model class or builder function."""
    return getattr(model_cls, "__qualname__", None) or getattr(model_cls, "__name__", None) or repr(model_cls)


def call_text(model_cls: Any, kwargs: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{model_name(model_cls)}({args})"


def build_at_size(
    model_cls: Callable[..., nn.Module],
    size_param: str,
    size_value: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    device: str | torch.device | None = None,
    require_module: bool = True,
) -> nn.Module:
    """Build one model at one size.

    Parameters
    ----------
    model_cls : callable
        Class (or function) returning a ``torch.nn.Module``.
    size_param : str
        Name of the constructor argument that sets the size.
    size_value : Any
        Value of that argument.
    model_kwargs : mapping, optional
        The other constructor arguments.
    device : str or torch.device, optional
        Build under this default device; ``"meta"`` allocates no memory, which
        makes counting parameters of large candidates free.
    require_module : bool
        False also accepts an object that is not an ``nn.Module`` but has a
        ``num_params()`` method: enough to plan with 6·N (flops-fit's model
        contract), not to train or measure.

    Returns
    -------
    torch.nn.Module, or an object with ``num_params()`` when ``require_module`` is False

    Raises
    ------
    ValueError
        If the constructor raises; the message names the call and the error.
    TypeError
        If the constructor returns something that is not an ``nn.Module``.
    """
    kwargs = {**(model_kwargs or {}), size_param: size_value}
    try:
        if device is None:
            model = model_cls(**kwargs)
        else:
            with torch.device(device):
                model = model_cls(**kwargs)
    except Exception as exc:
        raise ValueError(
            f"Could not build {call_text(model_cls, kwargs)}: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(model, nn.Module):
        return model
    counted = callable(getattr(model, "num_params", None))
    if not counted:
        raise TypeError(
            f"{call_text(model_cls, kwargs)} returned {type(model).__name__}, expected a "
            "torch.nn.Module (or, to plan only, an object with a num_params() method)"
        )
    if require_module:
        raise TypeError(
            f"{call_text(model_cls, kwargs)} returned {type(model).__name__}, which has num_params() "
            "but is not a torch.nn.Module: it can be planned (6·N FLOPs per token) but not trained or "
            "measured; pass train=False, or make it an nn.Module"
        )
    return model


def model_params(model: Any) -> int:
    """Parameter count N: the model's own ``num_params()`` if it has one.

    Parameters
    ----------
    model : torch.nn.Module, or any object with ``num_params()``

    Returns
    -------
    int
        ``model.num_params()`` when defined (the user's definition wins, e.g.
        excluding embeddings as Kaplan et al. do), else
        :func:`flops_fit.flops.count_params` (trainable, complex counted twice).

    Raises
    ------
    ValueError
        If the count is not an int >= 1.
    """
    name = type(model).__name__
    if callable(getattr(model, "num_params", None)):
        n = model.num_params()
        where = f"{name}.num_params()"
    else:
        n = count_params(model)
        where = f"{name} (trainable parameters counted by flops_fit.flops.count_params)"
    if not is_int(n) or n <= 0:
        raise ValueError(f"{where} gave {n!r}, expected an int >= 1")
    return int(n)
