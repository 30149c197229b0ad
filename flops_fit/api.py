"""``find_optimal``: the compute-optimal size of any PyTorch model, in one call.

Validate (model, then dataset, then loss), plan an IsoFLOP sweep, and either
return the plan to look at, or train every experiment for exactly its
planned samples and fit the IsoFLOP scaling law (Hoffmann et al. 2022,
Approach 2).
"""

from __future__ import annotations

import concurrent.futures as cf
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from torch import nn

from flops_fit.contracts import validate_dataset, validate_loss, validate_model
from flops_fit.fingerprint import FINGERPRINT_KEYS, sweep_fingerprint
from flops_fit.planning import SweepPlan, plan_sweep, validate_budgets
from flops_fit.training import Trainer, TrainSettings

__all__ = ["find_optimal"]

_NEEDS_BUDGETS = (
    "find_optimal needs compute_budgets, the training budgets in FLOPs to plan for, "
    "e.g. find_optimal(MyModel, 'width', compute_budgets=[1e15, 1e16]) "
    "(add train=False to see the plan without training)"
)


def _first_input(dataset: Any) -> Any:
    """A batch of one: the first item's input, with a leading batch dimension."""
    from torch.utils.data import DataLoader, default_collate

    data = dataset.dataset if isinstance(dataset, DataLoader) else dataset
    collate = dataset.collate_fn if isinstance(dataset, DataLoader) else default_collate
    x, _ = collate([data[0]])
    return tuple(x) if isinstance(x, list) else x


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
    experiments = [replace(e, experiment_id="", hparams={**e.hparams, **fingerprint})
                   for e in plan.experiments]
    return replace(plan, experiments=tuple(experiments))


def find_optimal(
    model_cls: Callable[..., nn.Module],
    model_size_param: str,
    model_kwargs: Mapping[str, Any] | None = None,
    dataset: Any = None,
    loss_fn: Callable | None = None,
    compute_budgets: Sequence[float] | None = None,
    *,
    train: bool = True,
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
        Class (or function) building a ``torch.nn.Module``.
    model_size_param : str
        Constructor argument that sets the size (``"width"``, ``"d_model"``).
    model_kwargs : dict, optional
        The other constructor arguments.
    dataset : torch.utils.data.Dataset or DataLoader, optional
        Map-style, items ``(input, target)``; a seeded ``holdout_fraction`` of
        it scores every run (see :class:`~flops_fit.training.TrainSettings`).
    loss_fn : callable, optional
        ``loss_fn(output, target)`` -> scalar tensor.
    compute_budgets : sequence of float
        Training budgets in FLOPs. Required (checked after the validation).
    train : bool
        With a dataset and a loss, train and fit; False returns the plan.
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
        inspect (``print(plan)``, ``plan.to_frame()``), nothing trained.
    flops_fit.scaling.Result
        Otherwise: the IsoFLOP fit of the held-out losses (``final_loss``)
        against N (``model_params``) per budget.

    Raises
    ------
    TypeError, ValueError
        In this order: a bad model, a bad dataset, a bad loss, missing or bad
        budgets (fewer than 2 when training), bad settings or a dataset of
        fewer than 2 samples (when training), an infeasible budget. Nothing is
        planned or trained before all the inputs pass. After training, a
        ValueError if the fit fails (e.g. no budget has its minimum inside the
        sampled sizes); the runs stay in ``output_dir`` for resume.
    """
    validate_model(model_cls, model_size_param, model_kwargs, probe_size=_smallest(sizes))
    n_samples = validate_dataset(dataset) if dataset is not None else None
    if loss_fn is not None:
        validate_loss(loss_fn)
    if compute_budgets is None:
        raise ValueError(_NEEDS_BUDGETS)
    will_train = train and dataset is not None and loss_fn is not None
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
    plan = plan_sweep(
        model_cls, model_size_param, model_kwargs, compute_budgets,
        num_sizes_per_budget=num_sizes_per_budget, sizes=sizes, sample_input=sample_input,
        tokens_per_sample=tokens_per_sample, flops=flops, seed=seed, **plan_options,
    )
    if dataset is not None and loss_fn is not None:
        # What the runs train on is part of each id: the same folder with other data,
        # another loss or other settings starts new runs instead of resuming old ones.
        plan = _trained_on(plan, sweep_fingerprint(dataset, loss_fn, settings or TrainSettings()))
    if not will_train:
        if train and (dataset is not None or loss_fn is not None):
            missing = "loss_fn" if dataset is not None else "dataset"
            warnings.warn(f"train=True but {missing} is missing: returning the plan, nothing trained",
                          stacklevel=2)
        return plan
    return _train_and_fit(plan, model_cls, model_size_param, model_kwargs, dataset, loss_fn,
                          settings=settings, output_dir=output_dir, executor=executor, resume=resume,
                          device=device, seed=seed, progress=progress, fit_options=fit_options)


def _train_and_fit(plan: SweepPlan, model_cls: Callable[..., nn.Module], size_param: str,
                   model_kwargs: Mapping[str, Any] | None, dataset: Any, loss_fn: Callable, *,
                   settings: TrainSettings | None, output_dir: str | Path,
                   executor: cf.Executor | None, resume: bool, device: str, seed: int,
                   progress: bool, fit_options: Mapping[str, Any] | None) -> Any:
    from flops_fit.runner import run_sweep
    from flops_fit.scaling import estimate_flops_per_sample_per_param, fit_isoflop

    trainer = Trainer(model_cls, size_param, dataset, loss_fn, dict(model_kwargs or {}),
                      settings or TrainSettings())
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

