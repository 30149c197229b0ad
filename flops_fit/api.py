"""``find_optimal``: the compute-optimal size of any PyTorch model, in one call.

Validate (model, then dataset, then loss), plan an IsoFLOP sweep, and either
return the plan to look at, or train every experiment for exactly its
planned samples and fit the IsoFLOP scaling law (Hoffmann et al. 2022,
Approach 2).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from flops_fit.contracts import (
    as_pairs,
    default_probe_size,
    scalar_loss,
    validate_dataset,
    validate_loss,
    validate_model,
)
from flops_fit.fingerprint import FINGERPRINT_KEYS, sweep_fingerprint
from flops_fit.planning import SweepPlan, plan_sweep, validate_budgets
from flops_fit.training import Trainer, TrainSettings, split_indices
from flops_fit.user_model import build_at_size, call_text

__all__ = ["find_optimal"]

_NEEDS_BUDGETS = (
    "find_optimal needs compute_budgets, the training budgets in FLOPs to plan for, "
    "e.g. find_optimal(MyModel, 'width', compute_budgets=[1e15, 1e16]) "
    "(add train=False to see the plan without training)"
)


# plan_sweep's options that find_optimal passes through **plan_options.
_PLAN_OPTIONS = ("size_range", "spread", "target_tokens_per_param", "min_samples", "min_samples_per_param")


def _check_plan_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(_PLAN_OPTIONS))
    if not unknown:
        return
    hint = ("; flops_fit has no mock mode: train=False returns the plan without training, and tiny "
            "budgets train for real in seconds") if "mode" in unknown else ""
    raise TypeError(f"find_optimal() got unexpected keyword arguments {unknown}; its planning options "
                    f"are {list(_PLAN_OPTIONS)}{hint}")


def _first_batch(dataset: Any, n: int) -> tuple[Any, Any]:
    """``(input, target)`` of the first ``n`` items, batched (by a DataLoader's own collate_fn)."""
    pairs = as_pairs(dataset)
    data = pairs.dataset if isinstance(pairs, DataLoader) else pairs
    collate = pairs.collate_fn if isinstance(pairs, DataLoader) else default_collate
    x, y = collate([data[i] for i in range(min(n, len(data)))])
    return (tuple(x) if isinstance(x, list) else x), y


def _first_input(dataset: Any) -> Any:
    """A batch of one: the first item's input, with a leading batch dimension."""
    return _first_batch(dataset, 1)[0]


def _shapes(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    return [_shapes(v) for v in x] if isinstance(x, (tuple, list)) else type(x).__name__


def _check_one_batch(model_cls: Callable[..., nn.Module], size_param: str, size: Any,
                     model_kwargs: Mapping[str, Any] | None, dataset: Any, loss_fn: Callable) -> None:
    """Run the model at ``size`` and the loss on one batch of 2 samples, before any training.

    Parameters
    ----------
    model_cls, size_param, model_kwargs
        How to build the model (see :func:`flops_fit.user_model.build_at_size`).
    size : optional
        Size to build at; None: as :func:`flops_fit.contracts.validate_model` chooses.
    dataset : Dataset or DataLoader
        Validated by ``validate_dataset``; its first two items are batched.
    loss_fn : callable
        Validated by ``validate_loss``.

    Raises
    ------
    TypeError
        The model is not an ``nn.Module`` (a plain class can only be
        planned), or the loss does not return a scalar tensor.
    ValueError
        The model's forward or the loss raises on the batch; the message
        gives the shapes and the error.
    """
    size = default_probe_size(model_cls, size_param) if size is None else size
    model = build_at_size(model_cls, size_param, size, model_kwargs).eval()  # a check, not training
    x, y = _first_batch(dataset, 2)
    call = call_text(model_cls, {**(model_kwargs or {}), size_param: size})
    with torch.no_grad():
        try:
            out = model(*x) if isinstance(x, (tuple, list)) else model(x)
        except Exception as exc:
            raise ValueError(
                f"{call} failed on a batch of the dataset (input shape {_shapes(x)}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            loss = loss_fn(out, y)
        except Exception as exc:
            raise ValueError(
                f"loss_fn(output, target) failed on a batch of the dataset (output shape {_shapes(out)}, "
                f"target shape {_shapes(y)}): {type(exc).__name__}: {exc}"
            ) from exc
    scalar_loss(loss)


def _train_set_size(dataset: Any, eval_dataset: Any, settings: TrainSettings) -> int:
    """Distinct training samples: all of ``dataset`` beside an eval set, else its seeded split."""
    n = validate_dataset(dataset)
    if eval_dataset is not None:
        return n
    return len(split_indices(n, settings.holdout_fraction, settings.split_seed)[0])


def _smallest(sizes: Any) -> Any:
    """The smallest given size to validate the model at (None: let validate_model choose)."""
    try:
        return min(sizes) if sizes is not None and len(sizes) else None
    except TypeError:  # mixed or odd values: plan_sweep names the problem
        return None


def _check_training_inputs(n_samples: int, model_kwargs: Mapping[str, Any] | None, settings: Any, *,
                           will_train: bool) -> None:
    """What training needs beyond a valid dataset and loss: settings, samples to hold out and train on."""
    if settings is not None and not isinstance(settings, TrainSettings):
        raise TypeError(f"Got settings of type {type(settings).__name__}, expected a TrainSettings")
    if will_train and n_samples < 2:
        raise ValueError(
            f"Got a dataset of {n_samples} sample, expected at least 2: every run is scored "
            "on held-out samples and trained on the rest"
        )
    taken = sorted(set(FINGERPRINT_KEYS) & set(model_kwargs or {}))
    if taken:
        raise ValueError(
            f"Got model_kwargs named {taken}, expected other names: find_optimal records "
            f"what each run trains on under {list(FINGERPRINT_KEYS)}"
        )


def _trained_on(plan: SweepPlan, fingerprint: Mapping[str, str]) -> SweepPlan:
    """The plan with what its runs train on in every config, so the ids (and resume) follow it."""
    experiments = [dataclasses.replace(e, experiment_id="", hparams={**e.hparams, **fingerprint})
                   for e in plan.experiments]
    return dataclasses.replace(plan, experiments=tuple(experiments))


def find_optimal(
    model_cls: Callable[..., nn.Module],
    model_size_param: str,
    model_kwargs: Mapping[str, Any] | None = None,
    dataset: Any = None,
    loss_fn: Callable | None = None,
    compute_budgets: Sequence[float] | None = None,
    *,
    train: bool = True,
    eval_dataset: Any = None,
    output_dir: str | Path = "outputs",
    executor: cf.Executor | None = None,
    resume: bool = True,
    sample_input: Any = None,
    flops: Literal["auto", "6N", "measured"] = "auto",
    tokens_per_sample: float = 1,
    num_sizes_per_budget: int = 7,
    sizes: Sequence[Any] | None = None,
    settings: TrainSettings | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    fit_options: Mapping[str, Any] | None = None,
    **plan_options: Any,
) -> Any:
    """Plan (and optionally run and fit) an IsoFLOP sweep for ``model_cls``.

    Parameters
    ----------
    model_cls : callable
        Class (or function) building a ``torch.nn.Module``; to plan only, any
        object with ``num_params()`` (then 6·N FLOPs per token).
    model_size_param : str
        Constructor argument that sets the size (``"width"``, ``"d_model"``).
    model_kwargs : dict, optional
        The other constructor arguments.
    dataset : torch.utils.data.Dataset or DataLoader, optional
        Map-style, items ``(input, target)``, or single tensors (self-supervised:
        the loss gets ``(output, input)``). Unless ``eval_dataset`` is given, a
        seeded ``holdout_fraction`` of it scores every run (see
        :class:`~flops_fit.training.TrainSettings`).
    loss_fn : callable, optional
        ``loss_fn(output, target)`` -> scalar tensor; tried on one batch with
        the smallest model before anything trains.
    compute_budgets : sequence of float
        Training budgets in FLOPs. Required (checked after the validation).
    train : bool
        With a dataset and a loss, train and fit; False returns the plan.
    eval_dataset : Dataset or DataLoader, optional
        Held-out data scoring every run (e.g. split by file); then all of
        ``dataset`` trains.
    output_dir : str or Path
        Sweep folder for the runner (``runs.jsonl``, ``study_results.csv``).
    executor : concurrent.futures.Executor, optional
        Passed to :func:`flops_fit.runner.run_sweep`.
    resume : bool
        Skip experiments already finished in ``output_dir`` on the same data,
        loss and settings: each config records them (``dataset_fingerprint``,
        ``loss_fn``, ``train_settings``; see :mod:`flops_fit.fingerprint`), so
        another dataset in the same folder starts new runs.
    sample_input : tensor or tuple, optional
        A batch the model accepts, to measure FLOPs per sample
        (``3 × forward_flops``). Default: the dataset's first input when a
        dataset is given, else none (then 6·N per token).
    flops : {"auto", "6N", "measured"}
        Cost model, see :func:`~flops_fit.planning.plan_sweep`. "6N" keeps the
        transformer rule even when an input is available.
    tokens_per_sample, num_sizes_per_budget, sizes, **plan_options
        Passed to :func:`~flops_fit.planning.plan_sweep`.
    settings : TrainSettings, optional
        Batch size, learning rate, schedule and held-out fraction.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda[:i]"``, ``"mps"``.
    seed : int
        Seed of every run, part of each config (the runner seeds python,
        numpy and torch with it).
    progress : bool
        Show the sweep's progress bar.
    fit_options : dict, optional
        Passed to :func:`flops_fit.scaling.fit_isoflop` (``n_bootstrap``, ``seed``...).

    Returns
    -------
    SweepPlan
        When ``train=False`` or the dataset or loss is missing: a value to
        inspect (``print(plan)``, ``plan.to_frame()``), nothing trained. With
        a dataset, ``to_frame()`` shows each run's passes over it
        (``epochs``), and a UserWarning says when runs repeat it more than 4
        times (Muennighoff et al. 2023).
    flops_fit.scaling.Result
        Otherwise: the IsoFLOP fit of the held-out losses (``final_loss``)
        against N (``model_params``) per budget.

    Raises
    ------
    TypeError, ValueError
        In this order: an unknown keyword (there is no ``mode``), a bad model,
        a bad dataset (then ``eval_dataset``), a bad loss, a model or loss
        that fails on one batch (when training), missing or bad budgets
        (fewer than 2 when training), bad settings or a dataset of fewer than
        2 samples (when training), an infeasible budget. Nothing is
        planned or trained before all the inputs pass. After training, a
        ValueError if the fit fails (e.g. no budget has its minimum inside the
        sampled sizes); the runs stay in ``output_dir`` for resume.
    """
    _check_plan_options(plan_options)
    probe_size = _smallest(sizes)
    validate_model(model_cls, model_size_param, model_kwargs, probe_size=probe_size)
    n_samples = validate_dataset(dataset) if dataset is not None else None
    if eval_dataset is not None:
        validate_dataset(eval_dataset)
    if loss_fn is not None:
        validate_loss(loss_fn)
    will_train = train and dataset is not None and loss_fn is not None
    if will_train:
        _check_one_batch(model_cls, model_size_param, probe_size, model_kwargs, dataset, loss_fn)
    if compute_budgets is None:
        raise ValueError(_NEEDS_BUDGETS)
    budgets = validate_budgets(compute_budgets)
    if will_train and len(budgets) < 2:
        raise ValueError(
            f"find_optimal fits power laws across budgets, so training needs at least 2 "
            f"compute_budgets, got {[f'{b:g}' for b in budgets]}; add budgets, or pass train=False "
            "to see the plan"
        )
    if dataset is not None and loss_fn is not None:
        _check_training_inputs(n_samples, model_kwargs, settings, will_train=will_train)
    if sample_input is None and dataset is not None and flops != "6N":
        sample_input = _first_input(dataset)
    # The model and the budgets passed above, in the documented order: plan without checking them again.
    plan = plan_sweep(
        model_cls, model_size_param, model_kwargs, budgets,
        num_sizes_per_budget=num_sizes_per_budget, sizes=sizes, sample_input=sample_input,
        tokens_per_sample=tokens_per_sample, flops=flops, seed=seed, validated=True, **plan_options,
    )
    if dataset is not None and loss_fn is not None:
        # What the runs train on is part of each id: the same folder with other data,
        # another loss or other settings starts new runs instead of resuming old ones.
        plan = _trained_on(
            plan, sweep_fingerprint(dataset, loss_fn, settings or TrainSettings(), eval_dataset)
        )
    settings = settings or TrainSettings()
    if dataset is not None:
        plan = dataclasses.replace(plan, train_set_size=_train_set_size(dataset, eval_dataset, settings))
        if (note := plan.repeat_note()) is not None:
            warnings.warn(note, UserWarning, stacklevel=2)
    if not will_train:
        if train and (dataset is not None or loss_fn is not None):
            missing = "loss_fn" if dataset is not None else "dataset"
            warnings.warn(f"train=True but {missing} is missing: returning the plan, nothing trained",
                          stacklevel=2)
        return plan
    trainer = Trainer(model_cls, model_size_param, as_pairs(dataset), loss_fn, dict(model_kwargs or {}),
                      settings, None if eval_dataset is None else as_pairs(eval_dataset))
    return _train_and_fit(plan, trainer, output_dir=output_dir, executor=executor, resume=resume,
                          device=device, seed=seed, progress=progress, fit_options=fit_options)


def _train_and_fit(plan: SweepPlan, trainer: Trainer, *, output_dir: str | Path,
                   executor: cf.Executor | None, resume: bool, device: str, seed: int,
                   progress: bool, fit_options: Mapping[str, Any] | None) -> Any:
    from flops_fit.runner import run_sweep
    from flops_fit.scaling import estimate_flops_per_sample_per_param, fit_isoflop

    table = run_sweep(plan, trainer, output_dir, executor=executor, resume=resume,
                      progress=progress, device=device, seed=seed)
    # The configs carry the seed, so the runner's ids are the plan's; earlier sweeps in
    # the same folder are not this plan's business.
    ids = {e.experiment_id for e in plan.experiments}
    mine = table[table["status"].eq("ok") & table["experiment_id"].isin(ids)]
    failed = len(ids) - len(mine)
    if failed:
        warnings.warn(f"{failed} of {len(ids)} experiments did not finish ok (see {output_dir}); "
                      "fitting the rest", stacklevel=3)
    if mine.empty:
        table_path = Path(output_dir) / "study_results.csv"
        raise ValueError(f"No experiment finished ok; see the error column of {table_path}")
    # k in C = k·N·D, for turning budgets into allocations: 6 for transformers, measured otherwise.
    k = estimate_flops_per_sample_per_param(mine["train_samples"] * mine["flops_per_sample"],
                                            mine["model_params"], mine["train_samples"])
    options = {"flops_per_sample_per_param": k, **(fit_options or {})}
    try:
        return fit_isoflop(mine, budget="compute_budget", size="model_params", loss="final_loss",
                           data="train_samples", **options)
    except ValueError as exc:
        raise ValueError(
            f"Trained {len(mine)} experiments (recorded in {output_dir}, resumable) but could not fit "
            f"the IsoFLOP laws: {exc}. Sample sizes on both sides of each budget's optimum "
            "(sizes=..., or a larger spread=...) and run again; finished runs are skipped"
        ) from exc

