"""Check a user's model, dataset and loss before any work is done.

``find_optimal`` accepts any PyTorch model whose size is set by one
constructor argument, any map-style dataset of ``(input, target)`` pairs (or
of single tensors, for self-supervised data: the target is the input) and
any callable ``loss(output, target)``. These checks run first, in that
order, so a mistake is reported in seconds with a message that says what
came and what was expected, instead of minutes into a sweep.
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
    "as_pairs",
    "build_model",
    "default_probe_size",
    "model_name",
    "num_params",
    "scalar_loss",
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
            f"Could not build {_call_text(model_cls, kwargs)}: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(model, nn.Module):
        return model
    counted = callable(getattr(model, "num_params", None))
    if not counted:
        raise TypeError(
            f"{_call_text(model_cls, kwargs)} returned {type(model).__name__}, expected a "
            "torch.nn.Module (or, to plan only, an object with a num_params() method)"
        )
    if require_module:
        raise TypeError(
            f"{_call_text(model_cls, kwargs)} returned {type(model).__name__}, which has num_params() "
            "but is not a torch.nn.Module: it can be planned (6·N FLOPs per token) but not trained or "
            "measured; pass train=False, or make it an nn.Module"
        )
    return model


def num_params(model: Any) -> int:
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


def default_probe_size(model_cls: Any, size_param: str) -> Any:
    """Size to probe a model at: the constructor's numeric default for ``size_param`` if > 0, else 8."""
    signature = _signature(model_cls)
    default = None
    if signature is not None and size_param in signature.parameters:
        default = signature.parameters[size_param].default
    numeric = isinstance(default, numbers.Real) and not isinstance(default, bool)
    return default if numeric and default > 0 else DEFAULT_PROBE_SIZE


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
        A class (or function) returning a ``torch.nn.Module``, or (to plan
        only, with 6·N FLOPs per token) any object with a ``num_params()``
        method, as flops-fit's model contract allows.
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
        ``model_kwargs`` not a dict, or the result neither an ``nn.Module``
        nor an object with ``num_params()``.
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
        probe_size = default_probe_size(model_cls, size_param)
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
    model = build_model(model_cls, size_param, probe_size, model_kwargs, require_module=False)
    return num_params(model)


def validate_dataset(dataset: Any) -> int:
    """Check that ``dataset`` is a map-style dataset of ``(input, target)`` pairs or of tensors.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset or torch.utils.data.DataLoader
        A DataLoader is checked through its ``.dataset``. Items that are
        single tensors are valid (self-supervised data such as token
        sequences): training passes each as both input and target
        (:func:`as_pairs`).

    Returns
    -------
    int
        Number of samples.

    Raises
    ------
    TypeError
        Not a Dataset/DataLoader, no ``__len__``/``__getitem__`` (an
        ``IterableDataset`` cannot be split or counted exactly), or items that
        are neither ``(input, target)`` pairs nor tensors.
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
    if isinstance(item, torch.Tensor):  # self-supervised: the target is the input (see as_pairs)
        return n
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = f"{type(item).__name__} of length {len(item)}" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"Expected a torch.utils.data.Dataset of (input, target) pairs or of single tensors, "
            f"got items of type {got}"
        )
    return n


class _SelfTargeted(Dataset):
    """Items ``(x, x)`` for a dataset whose items are single tensors ``x``."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x = self.data[i]
        return x, x


def as_pairs(dataset: Any) -> Any:
    """The dataset with ``(input, target)`` items: single-tensor items ``x`` become ``(x, x)``.

    A self-supervised loss then sees the input as its target, e.g. a language
    model's ``loss(logits, tokens)`` shifts by one token itself. A DataLoader
    keeps its ``collate_fn`` (it must accept ``(x, x)`` pairs, as
    ``default_collate`` does). Datasets of pairs come back unchanged.
    """
    data = dataset.dataset if isinstance(dataset, DataLoader) else dataset
    if not isinstance(data[0], torch.Tensor):
        return dataset
    if isinstance(dataset, DataLoader):
        return DataLoader(_SelfTargeted(data), collate_fn=dataset.collate_fn)
    return _SelfTargeted(data)


def validate_loss(loss_fn: Any) -> None:
    """Check that ``loss_fn(output, target)`` can be called.

    Parameters
    ----------
    loss_fn : callable
        E.g. ``torch.nn.MSELoss()``; must return a scalar tensor (mean over the
        batch), which ``find_optimal`` checks on one batch before training.

    Raises
    ------
    TypeError
        If ``loss_fn`` is not callable, is a class (``nn.MSELoss`` instead
        of ``nn.MSELoss()``), or cannot take two positional arguments.
    """
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable, got {loss_fn!r} ({type(loss_fn).__name__}); "
            "e.g. torch.nn.MSELoss()"
        )
    if inspect.isclass(loss_fn):
        raise TypeError(
            f"loss_fn must be a loss function or instance, got the class {loss_fn.__name__}; "
            f"pass an instance, e.g. {loss_fn.__name__}()"
        )
    signature = _signature(loss_fn)
    if signature is not None:
        try:
            signature.bind(None, None)
        except TypeError:
            raise TypeError(
                f"loss_fn must take (output, target), got {model_name(loss_fn)}{signature}"
            ) from None


def scalar_loss(loss: Any) -> torch.Tensor:
    """``loss`` as a 0-d tensor; a TypeError unless it is a one-element tensor."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"loss_fn must return a scalar tensor (mean over the batch), got {got}")
    return loss.reshape(())
