"""Check a user's model, dataset and loss before any work is done.

``find_optimal`` accepts any PyTorch model whose size is set by one
constructor argument, any map-style dataset of ``(input, target)`` pairs and
any callable loss. These checks run first, in that order, so a mistake is
reported in seconds with a message that says what came and what was
expected, instead of minutes into a sweep.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from flops_fit.flops import count_params

__all__ = [
    "DEFAULT_PROBE_SIZE",
    "build_model",
    "model_name",
    "num_params",
    "to_device",
    "validate_dataset",
    "validate_loss",
    "validate_model",
]

# Small enough to build instantly, large enough for models whose size must be
# divisible by a head count or a group count of 2, 4 or 8.
DEFAULT_PROBE_SIZE = 8


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


def _call_text(model_cls: Any, kwargs: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{model_name(model_cls)}({args})"


def build_model(
    model_cls: Callable[..., nn.Module],
    size_param: str,
    size_value: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    device: str | torch.device | None = None,
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

    Returns
    -------
    torch.nn.Module

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
            f"Could not build {_call_text(model_cls, kwargs)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{_call_text(model_cls, kwargs)} returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    return model


def num_params(model: nn.Module) -> int:
    """Parameter count N: the model's own ``num_params()`` if it has one.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    int
        ``model.num_params()`` when defined (the user's definition wins, e.g.
        excluding embeddings as Kaplan et al. do), else
        :func:`flops_fit.flops.count_params` (trainable, complex counted twice).

    Raises
    ------
    ValueError
        If the count is not a positive integer.
    """
    name = type(model).__name__
    if callable(getattr(model, "num_params", None)):
        n = model.num_params()
        where = f"{name}.num_params()"
    else:
        n = count_params(model)
        where = f"{name} (trainable parameters counted by flops_fit.flops.count_params)"
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"{where} gave {n!r}, expected a positive int")
    return int(n)


def _signature(model_cls: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(model_cls)
    except (TypeError, ValueError):  # some builtins and C extensions have none
        return None


def validate_model(
    model_cls: Any,
    size_param: Any,
    model_kwargs: Any = None,
    *,
    probe_size: Any = None,
) -> int:
    """Check that ``model_cls(**model_kwargs, <size_param>=size)`` builds a model.

    Parameters
    ----------
    model_cls : callable
        A class (or function) returning a ``torch.nn.Module``.
    size_param : str
        Name of the constructor argument that sets the model's size
        (``"width"``, ``"d_model"``...).
    model_kwargs : dict, optional
        The other constructor arguments; must not contain ``size_param``
        (the plan sets it).
    probe_size : optional
        Size to build at. Default: the constructor's own default for
        ``size_param`` if it has a numeric one, else ``DEFAULT_PROBE_SIZE`` (8).

    Returns
    -------
    int
        Parameter count of the probe model (see :func:`num_params`).

    Raises
    ------
    TypeError
        ``model_cls`` not callable, ``size_param`` not a string,
        ``model_kwargs`` not a dict, or the result not an ``nn.Module``.
    ValueError
        The constructor does not accept ``size_param`` or the given kwargs,
        ``size_param`` is also in ``model_kwargs``, the probe cannot be built,
        or it has no parameters.
    """
    if not callable(model_cls):
        raise TypeError(
            "model_cls must be a class (or function) that builds a torch.nn.Module, "
            f"got {model_cls!r} ({type(model_cls).__name__})"
        )
    if not isinstance(size_param, str) or not size_param:
        raise TypeError(
            "size_param must be the name (str) of a constructor argument of "
            f"{model_name(model_cls)}, got {size_param!r}"
        )
    if model_kwargs is None:
        model_kwargs = {}
    if not isinstance(model_kwargs, Mapping) or not all(isinstance(k, str) for k in model_kwargs):
        raise TypeError(
            f"model_kwargs must be a dict of constructor arguments, got {type(model_kwargs).__name__}"
        )
    if size_param in model_kwargs:
        raise ValueError(
            f"model_kwargs must not contain the size parameter {size_param!r} (the plan sets it); "
            f"got model_kwargs={dict(model_kwargs)!r}"
        )
    signature = _signature(model_cls)
    if probe_size is None:
        default = None
        if signature is not None and size_param in signature.parameters:
            default = signature.parameters[size_param].default
        numeric = isinstance(default, numbers.Real) and not isinstance(default, bool)
        probe_size = default if numeric and default > 0 else DEFAULT_PROBE_SIZE
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if size_param not in params and not takes_any:
            names = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
            raise ValueError(
                f"{model_name(model_cls)}() has no argument {size_param!r} to set the size; "
                f"its arguments are {names}"
            )
        try:
            signature.bind(**{**model_kwargs, size_param: probe_size})
        except TypeError as exc:
            raise ValueError(
                f"{model_name(model_cls)}() does not accept "
                f"{_call_text(model_cls, {**model_kwargs, size_param: probe_size})}: {exc}"
            ) from exc
    model = build_model(model_cls, size_param, probe_size, model_kwargs)
    return num_params(model)


def validate_dataset(dataset: Any) -> int:
    """Check that ``dataset`` is a map-style dataset of ``(input, target)`` pairs.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset or torch.utils.data.DataLoader
        A DataLoader is checked through its ``.dataset``.

    Returns
    -------
    int
        Number of samples.

    Raises
    ------
    TypeError
        Not a Dataset/DataLoader, no ``__len__``/``__getitem__`` (an
        ``IterableDataset`` cannot be split or counted exactly), or items that
        are not ``(input, target)`` pairs.
    ValueError
        An empty dataset.
    """
    if not isinstance(dataset, (Dataset, DataLoader)):
        raise TypeError(
            f"Expected a torch.utils.data.Dataset or DataLoader, got {type(dataset).__name__}"
        )
    data = dataset.dataset if isinstance(dataset, DataLoader) else dataset
    kind = type(data).__name__
    if not (callable(getattr(data, "__len__", None)) and callable(getattr(data, "__getitem__", None))):
        raise TypeError(
            "Expected a torch.utils.data.Dataset with __len__ and __getitem__ (map-style), "
            f"got {kind}"
        )
    n = len(data)
    if n <= 0:
        raise ValueError(f"Expected a torch.utils.data.Dataset with at least one sample, got an empty {kind}")
    item = data[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = f"{type(item).__name__} of length {len(item)}" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"Expected a torch.utils.data.Dataset of (input, target) pairs, got items of type {got}"
        )
    return n


def validate_loss(loss_fn: Any) -> None:
    """Check that ``loss_fn(output, target)`` can be called.

    Parameters
    ----------
    loss_fn : callable
        E.g. ``torch.nn.MSELoss()``; must return a scalar tensor (mean over the
        batch), which the trainer checks on the first step.

    Raises
    ------
    TypeError
        If ``loss_fn`` is not callable.
    """
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable, got {loss_fn!r} ({type(loss_fn).__name__}); "
            "e.g. torch.nn.MSELoss()"
        )
