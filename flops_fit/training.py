"""A generic trainer: exactly D training samples, then the held-out loss.

An IsoFLOP experiment is defined by its budget, so it must see exactly the
``train_samples`` its plan affords, not "one epoch": the sample order is a
concatenation of shuffled passes over the training split, cut at D (the
last pass may be partial, the last batch short). The optimiser is AdamW with
a linear warm-up and a cosine decay to a floor over exactly those steps, the
schedule Hoffmann et al. (2022) found matters for IsoFLOP comparisons (a
cosine cycle matched to the run's length). The score is the mean loss on a
held-out split that is the same for every experiment of a sweep.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, default_collate

from flops_fit.checks import check_int, is_int, is_number
from flops_fit.contracts import scalar_loss as _scalar_loss
from flops_fit.errors import DivergedError
from flops_fit.user_model import build_at_size, to_device

__all__ = [
    "TrainSettings",
    "Trainer",
    "evaluate",
    "lr_factor",
    "sample_order",
    "split_indices",
    "time_train_step",
    "train_for_samples",
]


# TrainSettings field -> (what is allowed, test); NaN fails every comparison.
_SETTING_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "batch_size": ("an int >= 1", lambda v: v >= 1),
    "lr": ("a finite number > 0", lambda v: 0 < v < math.inf),
    "weight_decay": ("a finite number >= 0", lambda v: 0 <= v < math.inf),
    "warmup_fraction": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "min_lr_ratio": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "holdout_fraction": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "grad_clip": ("None or a finite number > 0 (a negative max norm reverses every gradient)",
                  lambda v: 0 < v < math.inf),
    "split_seed": ("an int >= 0", lambda v: v >= 0),
}
_INT_SETTINGS = ("batch_size", "split_seed")


@dataclass(frozen=True)
class TrainSettings:
    """How the generic trainer trains.

    Attributes
    ----------
    batch_size : int
        Samples per optimiser step (the last step of a run may be smaller).
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW's decoupled weight decay (torch's default).
    warmup_fraction : float
        Fraction of the run's steps spent warming up linearly (at least one step).
    min_lr_ratio : float
        Cosine floor as a fraction of ``lr``; 0.1 as in Hoffmann et al. (2022).
    holdout_fraction : float
        Fraction of the dataset held out for the final loss (at least one sample).
    grad_clip : float or None
        Max global gradient norm (None: no clipping).
    split_seed : int
        Seed of the train/held-out split, fixed so every experiment of a sweep
        is scored on the same samples (independent of the run's seed).
    """

    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    holdout_fraction: float = 0.1
    grad_clip: float | None = 1.0
    split_seed: int = 0

    def __post_init__(self) -> None:
        # Every setting is checked here: a bad one (a negative grad_clip reverses every
        # gradient) would otherwise train wrongly, or fail every run of a sweep later.
        for name, (allowed, test) in _SETTING_RULES.items():
            value = getattr(self, name)
            if value is None and name == "grad_clip":
                continue
            integral = name in _INT_SETTINGS
            if not (is_int(value) if integral else is_number(value)):
                raise TypeError(f"Got {name}={value!r}, expected {allowed}")
            if not test(value):
                raise ValueError(f"Got {name}={value!r}, expected {allowed}")
            object.__setattr__(self, name, int(value) if integral else float(value))  # plain, JSON-able


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps``
    steps, then a half cosine from 1 down to ``min_ratio``, reached on the
    last step.

    Examples
    --------
    >>> [round(lr_factor(s, 5, 1, 0.1), 3) for s in range(5)]
    [1.0, 1.0, 0.775, 0.325, 0.1]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps - 1
    progress = (step - warmup_steps) / decay_steps if decay_steps > 0 else 1.0
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def split_indices(n: int, holdout_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded (train, held-out) split of ``range(n)``; held-out gets round(n·fraction), >= 1."""
    if n < 2:
        raise ValueError(f"Need at least 2 samples to hold some out for the final loss, got {n}")
    n_hold = min(n - 1, max(1, round(n * holdout_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[n_hold:], order[:n_hold]


def sample_order(indices: list[int], num_samples: int, generator: torch.Generator | None = None) -> list[int]:
    """Exactly ``num_samples`` indices: shuffled passes over ``indices``, the last one cut short."""
    order: list[int] = []
    while len(order) < num_samples:
        perm = torch.randperm(len(indices), generator=generator).tolist()
        order.extend(indices[i] for i in perm[: num_samples - len(order)])
    return order


def _forward(model: nn.Module, x: Any) -> Any:
    return model(*x) if isinstance(x, (tuple, list)) else model(x)


def _batch_size(x: Any) -> int:
    return len(x[0]) if isinstance(x, (tuple, list)) else len(x)


def _loader(dataset: Dataset, order: list[int], batch_size: int, collate_fn: Callable | None) -> DataLoader:
    sampler = BatchSampler(order, batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn or default_collate)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, indices: list[int], loss_fn: Callable, *,
             batch_size: int = 32, device: str = "cpu", collate_fn: Callable | None = None) -> float:
    """Sample-weighted mean of ``loss_fn`` over ``dataset[indices]``, in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for x, y in _loader(dataset, list(indices), batch_size, collate_fn):
            n = _batch_size(x)
            loss = _scalar_loss(loss_fn(_forward(model, to_device(x, device)), to_device(y, device)))
            total += float(loss) * n
            count += n
    finally:
        model.train(was_training)
    return total / count


def train_for_samples(
    model: nn.Module,
    dataset: Dataset,
    loss_fn: Callable,
    num_samples: int,
    *,
    train_indices: list[int],
    settings: TrainSettings | None = None,
    device: str = "cpu",
    collate_fn: Callable | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Train ``model`` in place on exactly ``num_samples`` samples drawn from ``train_indices``.

    Parameters
    ----------
    model : torch.nn.Module
        Already on ``device``.
    dataset : torch.utils.data.Dataset
        Map-style, items ``(input, target)``; ``input`` a tensor or a tuple of
        tensors passed as positional arguments.
    loss_fn : callable
        ``loss_fn(output, target)`` -> scalar tensor, mean over the batch.
    num_samples : int
        Training samples D (>= 1); ``ceil(D / batch_size)`` optimiser steps.
    train_indices : list of int
        The training split; the order is drawn from torch's global generator
        (the runner seeds it).
    settings : TrainSettings, optional
        Defaults to ``TrainSettings()``.
    device : str
    collate_fn : callable, optional
        Batches items (a DataLoader's own, when one was given).

    Returns
    -------
    summary : dict
        ``samples_seen``, ``steps``, ``epochs`` (passes over the split,
        fractional), ``final_train_loss`` (mean of the last up to 10 steps).
    history : list of dict
        Per step: ``step``, ``samples``, ``lr``, ``loss``.

    Raises
    ------
    flops_fit.errors.DivergedError
        If a training loss is NaN or infinite.
    """
    check_int("num_samples", num_samples, minimum=1)
    settings = settings or TrainSettings()
    total_steps = math.ceil(num_samples / settings.batch_size)
    warmup = max(1, round(settings.warmup_fraction * total_steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup, settings.min_lr_ratio)
    )
    order = sample_order(train_indices, num_samples)
    model.train()
    seen, history = 0, []
    for step, (x, y) in enumerate(_loader(dataset, order, settings.batch_size, collate_fn)):
        lr = optimizer.param_groups[0]["lr"]
        loss = _scalar_loss(loss_fn(_forward(model, to_device(x, device)), to_device(y, device)))
        value = float(loss.detach())
        seen += _batch_size(x)
        if not math.isfinite(value):
            raise DivergedError(f"training loss is {value} at step {step + 1}/{total_steps} "
                                f"after {seen} samples (lr {lr:.3g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        history.append({"step": step + 1, "samples": seen, "lr": lr, "loss": value})
    last = [h["loss"] for h in history[-10:]]
    summary = {
        "samples_seen": seen,
        "steps": len(history),
        "epochs": seen / len(train_indices),
        "final_train_loss": sum(last) / len(last),
    }
    return summary, history


@dataclass(frozen=True)
class Trainer:
    """The function :func:`flops_fit.runner.run_sweep` calls for an IsoFLOP plan.

    ``Trainer(...)(config, run_dir, device=...)`` builds
    ``model_cls(**model_kwargs, <size_param>=config[size_param])``, trains it
    on exactly ``config["train_samples"]`` samples and returns the held-out
    loss. A dataclass, not a closure, so it pickles to process executors
    (when the model class, dataset and loss do).

    Attributes
    ----------
    model_cls, size_param, model_kwargs
        How to build the model (the real kwargs, not the config's JSON copies).
    dataset : Dataset or DataLoader
        A DataLoader contributes its dataset and ``collate_fn`` (its batch
        size and sampler are not used: the plan sets the order).
    loss_fn : callable
    settings : TrainSettings
    eval_dataset : Dataset or DataLoader, optional
        Held-out data that scores every run (all of it); then all of
        ``dataset`` trains. Default: a seeded ``settings.holdout_fraction`` of
        ``dataset`` (a split by sample; pass this for a split by file, by
        subject, or any split the samples' order does not give).
    """

    model_cls: Callable[..., nn.Module]
    size_param: str
    dataset: Any
    loss_fn: Callable
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    settings: TrainSettings = TrainSettings()
    eval_dataset: Any = None

    def __call__(self, config: Mapping[str, Any], run_dir: str | Path, *, device: str = "cpu") -> dict[str, Any]:
        """Train one experiment; returns flat measurements (see the module docstring)."""
        for key in ("train_samples", self.size_param):
            if key not in config:
                raise KeyError(f"config has no {key!r}; the Trainer runs plans made by plan_sweep")
        dataset, collate_fn = _unwrap(self.dataset)
        if self.eval_dataset is None:
            train_idx, hold_idx = split_indices(len(dataset), self.settings.holdout_fraction,
                                                self.settings.split_seed)
            eval_set, eval_collate = dataset, collate_fn
        else:
            eval_set, eval_collate = _unwrap(self.eval_dataset)
            train_idx, hold_idx = list(range(len(dataset))), list(range(len(eval_set)))
        model = build_at_size(self.model_cls, self.size_param, config[self.size_param], self.model_kwargs)
        model.to(device)
        t0 = time.perf_counter()
        summary, history = train_for_samples(
            model, dataset, self.loss_fn, int(config["train_samples"]), train_indices=train_idx,
            settings=self.settings, device=device, collate_fn=collate_fn,
        )
        train_time = time.perf_counter() - t0
        final = evaluate(model, eval_set, hold_idx, self.loss_fn, batch_size=self.settings.batch_size,
                         device=device, collate_fn=eval_collate)
        if not math.isfinite(final):
            raise DivergedError(f"held-out loss is {final} after {summary['samples_seen']} samples")
        _write_history(Path(run_dir) / "history.csv", history)
        out = {"final_loss": final, **summary, "holdout_samples": len(hold_idx), "train_time_s": train_time}
        if config.get("flops_per_sample") is not None:
            out["train_flops"] = summary["samples_seen"] * float(config["flops_per_sample"])
        return out


def _unwrap(data: Any) -> tuple[Dataset, Callable | None]:
    """A DataLoader's dataset and collate_fn (its sampler and batch size are not used)."""
    if isinstance(data, DataLoader):
        return data.dataset, data.collate_fn
    return data, None


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "samples", "lr", "loss"])
        writer.writeheader()
        writer.writerows(history)


def _synthetic_loss(output: Any) -> torch.Tensor:
    """Mean square of every floating output: a stand-in loss with the same backward."""
    if isinstance(output, torch.Tensor):
        tensors = [output]
    elif isinstance(output, Mapping):
        tensors = list(output.values())
    else:
        tensors = list(output)
    parts = [(torch.view_as_real(t) if t.is_complex() else t).float().square().mean()
             for t in tensors if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]
    if not parts:
        raise TypeError("time_train_step needs a model with a floating-point output")
    return torch.stack(parts).sum()


def time_train_step(model: nn.Module, sample_input: Any, *, device: str = "cpu", steps: int = 3,
                    batch_size: int = 8) -> float:
    """Median seconds per sample of an AdamW training step (forward, backward, update).

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``device`` and trained in place (throw it away afterwards).
    sample_input : tensor or tuple of tensors
        The first item along the batch dimension is repeated ``batch_size`` times.
    device : str
    steps : int
        Timed steps after one untimed warm-up step.
    batch_size : int

    Returns
    -------
    float
        Median step time / ``batch_size``, in seconds. A stand-in loss (mean
        square of the output) replaces the real one, whose cost is negligible.
    """
    check_int("steps", steps, minimum=1)
    check_int("batch_size", batch_size, minimum=1)

    def batch(t: Any) -> Any:
        if isinstance(t, torch.Tensor):
            return t[:1].expand(batch_size, *t.shape[1:]).contiguous().to(device)
        return type(t)(batch(v) for v in t)

    x = batch(sample_input)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    kind = str(device).split(":")[0]
    sync = {"cuda": torch.cuda.synchronize, "mps": getattr(torch, "mps", None) and torch.mps.synchronize}.get(kind)
    sync = sync or (lambda: None)
    times = []
    for i in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _synthetic_loss(_forward(model, x)).backward()
        optimizer.step()
        sync()
        if i:  # the first step pays for allocation and kernel selection
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch_size
