"""Check a user's model, dataset and loss before any work is done.

``find_optimal`` accepts any PyTorch model whose size is set by one
constructor argument, any map-style dataset of ``(input, target)`` pairs (or
of single tensors, for self-supervised data: the target is the input) and
any callable ``loss(output, target)``. These checks run first, in that
order, so a mistake is reported in seconds with a message that says what
came and what was expected, instead of minutes into a sweep.

Building the model at a size and counting its parameters live in
:mod:`flops_fit.user_model`; ``build_model``, ``num_params``, ``model_name``
and ``to_device`` are re-exported here under their old names for one release.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from flops_fit.checks import is_number
from flops_fit.user_model import build_at_size, call_text, model_name, model_params, to_device

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

# Old names, kept for one release: flops_fit.user_model holds these now.
build_model = build_at_size
num_params = model_params


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
    return default if is_number(default) and default > 0 else DEFAULT_PROBE_SIZE


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
        Parameter count of the probe model (see :func:`flops_fit.user_model.model_params`).

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
            f"Got model_cls={model_cls!r} ({type(model_cls).__name__}), expected a class (or function) "
            "that builds a torch.nn.Module"
        )
    if not isinstance(size_param, str) or not size_param:
        raise TypeError(
            f"Got size_param={size_param!r}, expected the name (str) of a constructor argument of "
            f"{model_name(model_cls)}"
        )
    if model_kwargs is None:
        model_kwargs = {}
    if not isinstance(model_kwargs, Mapping) or not all(isinstance(k, str) for k in model_kwargs):
        raise TypeError(
            f"Got model_kwargs of type {type(model_kwargs).__name__}, expected a dict of constructor arguments"
        )
    if size_param in model_kwargs:
        raise ValueError(
            f"Got model_kwargs={dict(model_kwargs)!r}, expected them without the size parameter "
            f"{size_param!r} (the plan sets it)"
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
                f"{call_text(model_cls, {**model_kwargs, size_param: probe_size})}: {exc}"
            ) from exc
    model = build_at_size(model_cls, size_param, probe_size, model_kwargs, require_module=False)
    return model_params(model)


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
            f"Got loss_fn={loss_fn!r} ({type(loss_fn).__name__}), expected a callable, "
            "e.g. torch.nn.MSELoss()"
        )
    if inspect.isclass(loss_fn):
        raise TypeError(
            f"Got loss_fn=the class {loss_fn.__name__}, expected a loss function or instance; "
            f"pass an instance, e.g. {loss_fn.__name__}()"
        )
    signature = _signature(loss_fn)
    if signature is not None:
        try:
            signature.bind(None, None)
        except TypeError:
            raise TypeError(
                f"Got loss_fn={model_name(loss_fn)}{signature}, expected one that takes (output, target)"
            ) from None


def scalar_loss(loss: Any) -> torch.Tensor:
    """``loss`` as a 0-d tensor; a TypeError unless it is a one-element tensor."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"Got a loss of {got} from loss_fn, expected a scalar tensor (mean over the batch)")
    return loss.reshape(())
