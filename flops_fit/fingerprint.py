"""What a ``find_optimal`` sweep trains on, as config entries: data, loss, settings.

An experiment id is the hash of its config (:func:`flops_fit.results.experiment_id`),
and resume skips ids already finished. An IsoFLOP plan's config names the model,
its size and budget, but not the dataset, the loss or the training settings, so
a second call into the same folder with other data would "resume" the first
call's runs. :func:`sweep_fingerprint` gives the entries that tell them apart:

- ``dataset_fingerprint``: the dataset's type, length and a SHA-256 of up to 8
  evenly spaced items (tensor bytes, dtypes and shapes);
- ``loss_fn``: the loss's qualified name and its public scalar attributes
  (``torch.nn.modules.loss.HuberLoss(delta=2.0, reduction='mean')``), or a
  partial's function and bound arguments;
- ``train_settings``: the :class:`~flops_fit.training.TrainSettings` as JSON.

They are stable across processes (no memory addresses), so the same call
resumes, and readable in the results table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["FINGERPRINT_KEYS", "dataset_fingerprint", "loss_name", "sweep_fingerprint"]

FINGERPRINT_KEYS = ("dataset_fingerprint", "loss_fn", "train_settings")
_ITEMS_HASHED = 8
_SCALARS = (str, int, float, bool, type(None))


def _qualname(obj: Any) -> str:
    kind = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', type(kind).__name__)}"


def _feed(h: Any, value: Any) -> None:
    """Hash ``value``'s content: tensors and arrays by bytes, containers element-wise."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        t = (t if t.layout == torch.strided else t.to_dense()).contiguous()
        h.update(f"tensor{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray) and value.dtype != object:
        h.update(f"array{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}{len(value)}".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, Mapping):
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (*_SCALARS, bytes, np.generic)):
        h.update(repr(value).encode())
    else:  # an object's repr may hold a memory address: its type is the stable part
        h.update(_qualname(value).encode())


@contextlib.contextmanager
def _fixed_seeds() -> Iterator[None]:
    """Seed Python, numpy and torch for the block, then put their states back.

    Items drawn with random augmentation then hash the same in every call.
    """
    py, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 - the global one is the point
    with torch.random.fork_rng(devices=[]):
        random.seed(0)
        np.random.seed(0)  # noqa: NPY002
        torch.manual_seed(0)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)  # noqa: NPY002


def dataset_fingerprint(dataset: Any) -> str:
    """``"<type> n=<len> sha256:<16 hex>"`` of a map-style dataset (a DataLoader's own).

    The items are read with Python, numpy and torch seeded (their states are
    restored after), so a dataset that augments at random gets one fingerprint.

    Examples
    --------
    >>> from torch.utils.data import TensorDataset
    >>> dataset_fingerprint(TensorDataset(torch.zeros(4, 2), torch.ones(4)))[:40]
    'torch.utils.data.dataset.TensorDataset n'
    """
    data = dataset.dataset if isinstance(dataset, DataLoader) else dataset
    n = len(data)
    h = hashlib.sha256()
    with _fixed_seeds():
        for i in sorted({round(x) for x in np.linspace(0, n - 1, min(n, _ITEMS_HASHED))}):
            h.update(str(i).encode())
            _feed(h, data[i])
    return f"{_qualname(data)} n={n} sha256:{h.hexdigest()[:16]}"


def loss_name(loss_fn: Any) -> str:
    """Qualified name of a loss and, for an object, its public scalar attributes.

    Examples
    --------
    >>> loss_name(torch.nn.HuberLoss(delta=2.0))
    "torch.nn.modules.loss.HuberLoss(delta=2.0, reduction='mean')"
    """
    if isinstance(loss_fn, functools.partial):
        bound = [repr(a) if isinstance(a, _SCALARS) else _qualname(a) for a in loss_fn.args]
        bound += [f"{k}={v!r}" if isinstance(v, _SCALARS) else f"{k}={_qualname(v)}"
                  for k, v in sorted(loss_fn.keywords.items())]
        return f"functools.partial({', '.join([loss_name(loss_fn.func), *bound])})"
    name = _qualname(loss_fn)
    if isinstance(loss_fn, type) or not hasattr(loss_fn, "__dict__") or hasattr(loss_fn, "__code__"):
        return name  # a function or a class: its name is all that is stable
    fields = {k: v for k, v in vars(loss_fn).items()
              if not k.startswith("_") and k != "training" and isinstance(v, _SCALARS)}
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(fields.items()))})"


def sweep_fingerprint(
    dataset: Any, loss_fn: Any, settings: Any, eval_dataset: Any = None
) -> dict[str, str]:
    """The config entries (:data:`FINGERPRINT_KEYS`) naming what a sweep trains on.

    Parameters
    ----------
    dataset : Dataset or DataLoader
        Map-style (already validated).
    loss_fn : callable
    settings : dataclass instance
        The training settings (:class:`~flops_fit.training.TrainSettings`).
    eval_dataset : Dataset or DataLoader, optional
        A separate held-out set; its fingerprint joins the dataset's.

    Returns
    -------
    dict of str
        ``dataset_fingerprint``, ``loss_fn`` and ``train_settings``.
    """
    return {
        "dataset_fingerprint": dataset_fingerprint(dataset)
        + ("" if eval_dataset is None else f"+eval:{dataset_fingerprint(eval_dataset)}"),
        "loss_fn": loss_name(loss_fn),
        "train_settings": json.dumps(dataclasses.asdict(settings), sort_keys=True),
    }
