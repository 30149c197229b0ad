"""The FNO study: which generator, how big, at what cost, for grid-lines ptychography.

Two modes share one per-experiment function,
:func:`flops_fit.ptycho.experiment.train_and_evaluate`:

* a hyperparameter grid (:func:`study_grid`): architecture x input transform
  x Fourier modes x width, each trained for a number of epochs;
* an IsoFLOP sweep (:func:`isoflop_plan`): for each compute budget, ``fno``
  generators of several widths, each trained on exactly the number of samples
  its budget buys (``budget = 3 x forward FLOPs x samples``).

:func:`run_study` runs either through :func:`flops_fit.runner.run_sweep` and
leaves ``study_results.csv`` and ``pareto_plot.png`` in the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import torch

from flops_fit.checks import check_choice, check_int, is_int
from flops_fit.planning import SweepPlan, grid, plan_sweep
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.experiment import (
    MODEL_ARGS,
    StudyData,
    build_study_model,
    load_data,
    mean_patch_baseline,
    study_data,
    study_keys,
)
from flops_fit.ptycho.fitting import scaled_lr
from flops_fit.ptycho.models import ARCHITECTURES, INPUT_TRANSFORMS, build_model
from flops_fit.ptycho.seed_groups import StudyExperiment
from flops_fit.records import FLOOR_NAME
from flops_fit.runner import check_output_dir, run_sweep

__all__ = [
    "CPU_BUDGETS",
    "CPU_WIDTHS",
    "FULL_AXES",
    "GPU_BUDGETS",
    "GPU_WIDTHS",
    "ISOFLOP_SIZES_PER_BUDGET",
    "SEEDS_TOGETHER",
    "LIGHT_EPOCHS",
    "isoflop_plan",
    "run_study",
    "study_grid",
]

#: The full grid: 2 x 3 x 3 x 3 = 54 experiments.
FULL_AXES: dict[str, list[Any]] = {
    "architecture": ["hybrid", "fno"],
    "fno_input_transform": ["none", "log1p", "sqrt"],
    "fno_modes": [12, 16, 24],
    "fno_width": [32, 48, 64],
}
#: The light grid: 2 x 2 = 4 experiments on the N = 32 light data, a front of
#: small and larger models of both architectures that trains in about a minute.
LIGHT_AXES: dict[str, list[Any]] = {
    "architecture": ["fno", "hybrid"],
    "fno_input_transform": ["none"],
    "fno_modes": [12],
    "fno_width": [4, 8],
}
#: Epochs when none are given: the reference trains 20-60. Three light epochs
#: (8,112 samples): after two, hybrid w4 depends on its seed (phase SSIM 0.79,
#: 0.88, 0.89 for seeds 1, 0, 2, against the floor's 0.85); after three it
#: clears the floor for both seeds tried (0.93, 0.92).
FULL_EPOCHS = 20
LIGHT_EPOCHS = 3
#: IsoFLOP budgets (training FLOPs) sized for 2 CPU cores on the ``light_isoflop``
#: data (N = 32): 1.5 decades, widths 2-12 at each, about 10 minutes per seed with
#: two workers (most of it widths 2-3 at 1e12; measured, see notebooks/example_isoflop).
CPU_BUDGETS = (3e10, 1e11, 3e11, 1e12)
#: Budgets for one GPU, with ``light=False`` and ``widths=GPU_WIDTHS``: about
#: 2e17 FLOPs in all, a few hours at 15 TFLOP/s sustained.
GPU_BUDGETS = (1e15, 3e15, 1e16, 3e16)
GPU_WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96, 128)
#: Widths an IsoFLOP sweep picks from on a CPU (the size parameter of ``fno``).
CPU_WIDTHS = [2, 3, 4, 6, 8, 12, 16]
#: Widths trained per budget: six of CPU_WIDTHS span 2-12 at the CPU budgets.
ISOFLOP_SIZES_PER_BUDGET = 6
#: Seeds of one experiment trained together as one stacked model (``run_study(seeds_together=...)``).
SEEDS_TOGETHER = 3

# The reference's optimiser settings; IsoFLOP runs anneal (see train.fit).
_TRAINING_DEFAULTS = {"batch_size": 16, "lr": 1e-3, "loss": "mae", "schedule": "constant"}


def _check_names(values: Sequence[str] | None, allowed: Sequence[str], what: str) -> None:
    for v in values or []:
        check_choice(what, v, sorted(allowed))


def study_grid(
    light: bool = False,
    *,
    architectures: Sequence[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    axes: Mapping[str, Sequence[Any]] | None = None,
    data: GridLinesConfig | None = None,
) -> SweepPlan:
    """The study's hyperparameter grid as a :class:`~flops_fit.planning.SweepPlan`.

    Parameters
    ----------
    light : bool
        ``True``: four CPU-sized experiments (``fno`` and ``hybrid`` at widths
        4 and 8, transform ``none``, 12 modes) on the light data preset
        (N = 32). ``False``: the full
        grid ``{hybrid, fno} x {none, log1p, sqrt} x {12, 16, 24} x {32, 48, 64}``.
    architectures : sequence of str, optional
        Narrow the grid to these architectures.
    epochs : int, optional
        Training epochs per experiment (default 3 light, 20 full).
    seed : int
        Seed of every experiment.
    axes : mapping, optional
        Replace grid axes, e.g. ``{"fno_width": [8, 16]}``; keys must be
        among ``architecture, fno_input_transform, fno_modes, fno_width``.
    data : GridLinesConfig, optional
        Simulate this instead of the light/full preset (recorded in the
        ``data`` column as JSON).
    """
    _check_names(list(axes or {}), list(FULL_AXES), "axis")
    if epochs is not None:
        check_int("epochs", epochs, minimum=1)
    chosen = {
        **(LIGHT_AXES if light else FULL_AXES),
        **{k: list(v) for k, v in (axes or {}).items()},
    }
    if architectures:
        chosen["architecture"] = list(architectures)
    _check_names(chosen["architecture"], list(ARCHITECTURES), "architecture")
    _check_names(chosen["fno_input_transform"], list(INPUT_TRANSFORMS), "fno_input_transform")
    default_epochs = LIGHT_EPOCHS if light else FULL_EPOCHS
    chosen_data = study_data(light, data)
    return grid(
        **chosen,
        epochs=[epochs or default_epochs],
        data=[chosen_data.spec],
        # the content behind a preset name: a changed preset changes the ids (no stale resume)
        data_key=[chosen_data.key],
        seed=[seed],
        **{k: [v] for k, v in _TRAINING_DEFAULTS.items()},
    )


def isoflop_plan(
    compute_budgets: Sequence[float],
    *,
    light: bool = True,
    widths: Sequence[int] | None = None,
    modes: int = 12,
    input_transform: str = "none",
    num_sizes_per_budget: int = ISOFLOP_SIZES_PER_BUDGET,
    data: GridLinesConfig | None = None,
) -> SweepPlan:
    """An IsoFLOP sweep of ``fno`` widths, with FFT-aware measured FLOPs.

    Parameters
    ----------
    compute_budgets : sequence of float
        Training budgets in FLOPs (``3 x forward FLOPs x samples``).
    light : bool
        Data preset whose patch size sets the model input.
    widths : sequence of int, optional
        Candidate widths (the size parameter); default a CPU-sized range 2..16.
    modes, input_transform : int, str
        Fixed for every experiment.
    num_sizes_per_budget : int
        Widths trained per budget.
    data : GridLinesConfig, optional
        Custom data instead of the preset (sets the input size ``N``).
    """
    n = study_data(light, data, isoflop=True).config.N
    return _plan_widths(compute_budgets, n, widths=widths, modes=modes, input_transform=input_transform,
                        num_sizes_per_budget=num_sizes_per_budget)


def _plan_widths(compute_budgets: Sequence[float], n: int, *, widths: Sequence[int] | None, modes: int,
                 input_transform: str, num_sizes_per_budget: int) -> SweepPlan:
    """:func:`isoflop_plan` for ``n x n`` patches (the data resolved by the caller)."""
    _check_names([input_transform], list(INPUT_TRANSFORMS), "input_transform")
    return plan_sweep(
        build_model,
        MODEL_ARGS["fno_width"],
        {"architecture": "fno", "modes": modes, "input_transform": input_transform, "N": n},
        compute_budgets,
        sizes=list(widths or CPU_WIDTHS),
        num_sizes_per_budget=num_sizes_per_budget,
        sample_input=torch.zeros(1, 1, n, n),
    )


def _isoflop_configs(plan: SweepPlan, *, data: StudyData, seed: int) -> list[dict[str, Any]]:
    """Study configs (the grid's keys) for each experiment of an IsoFLOP plan."""
    kwargs = plan.model_kwargs
    return [
        {
            "architecture": kwargs["architecture"],
            **study_keys({**kwargs, plan.size_param: int(e.size_value)}),
            "epochs": None,
            "train_samples": int(e.train_samples),
            "compute_budget": float(e.compute_budget),
            "data": data.spec,
            "data_key": data.key,
            "seed": seed,
            **_TRAINING_DEFAULTS,
            "schedule": "cosine",
        }
        for e in plan.experiments
    ]


def _seeds(seed: int | Sequence[int]) -> list[int]:
    seeds = [seed] if is_int(seed) else seed
    if (
        isinstance(seeds, (str, bytes))
        or not isinstance(seeds, Sequence)
        or not seeds
        or any(not is_int(s) or s < 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(
            f"Got seed={seed!r}, expected an int >= 0 or a non-empty list of distinct ints >= 0"
        )
    return [int(s) for s in seeds]


def _check_models(configs: Sequence[Mapping[str, Any]], *, N: int) -> None:
    """Build each distinct model of the sweep on the meta device (no memory, no data).

    A width, mode count or transform the model rejects then fails before the
    data are simulated, with the model's own message, instead of in every run.
    Every config of a study shares one dataset, hence one patch size ``N``.
    """
    seen = set()
    for c in configs:
        key = (c["architecture"], *(c[k] for k in MODEL_ARGS))
        if key not in seen:
            seen.add(key)
            with torch.device("meta"):
                build_study_model(c, N=N)


def run_study(
    output_dir: str | Path,
    *,
    light: bool = False,
    epochs: int | None = None,
    seed: int | Sequence[int] = 0,
    device: str = "auto",
    architectures: Sequence[str] | None = None,
    executor: Executor | None = None,
    resume: bool = True,
    compute_budgets: Sequence[float] | None = None,
    widths: Sequence[int] | None = None,
    axes: Mapping[str, Sequence[Any]] | None = None,
    data: GridLinesConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    seeds_together: int = SEEDS_TOGETHER,
) -> Path:
    """Run the FNO study and write its results table and Pareto plot.

    Parameters
    ----------
    output_dir : str or pathlib.Path
        Sweep folder: ``runs.jsonl``, ``study_results.csv``,
        ``pareto_plot.png`` and ``runs/<experiment_id>/``.
    light : bool
        CPU-sized study: the light grid and data preset (an IsoFLOP sweep
        uses the ``light_isoflop`` preset: N = 32, 8 train objects).
    epochs, architectures : see :func:`study_grid`.
    seed : int or sequence of int
        Seed of every experiment; several seeds repeat every experiment once
        per seed (an IsoFLOP fit needs repeats to tell a dip from noise).
    device : str
        ``"auto"`` picks CUDA, then MPS, then the CPU.
    executor : concurrent.futures.Executor, optional
        Runs experiments in parallel (see :mod:`flops_fit.executors`).
    resume : bool
        Skip experiments already finished in ``output_dir``.
    compute_budgets : sequence of float, optional
        Training budgets in FLOPs: run an IsoFLOP sweep of ``fno`` widths
        (see :func:`isoflop_plan`) instead of the grid.
    widths : sequence of int, optional
        Candidate widths of the IsoFLOP sweep.
    axes, data : see :func:`study_grid`. In IsoFLOP mode ``axes`` may fix
        ``fno_modes`` and ``fno_input_transform`` to one value each.
    cache_dir : str or pathlib.Path, optional
        Simulated-data cache (default ``<output_dir>/data_cache``).
    batch_size : int, optional
        Training batch of every experiment, with the learning rate of
        :func:`~flops_fit.ptycho.fitting.scaled_lr` (square-root rule from the
        reference's 16 / 1e-3). Default: the reference's. A GPU needs a
        larger batch to be busy (``benchmarks/gpu_check.py`` measures it).
    seeds_together : int
        With several seeds, train up to this many seeds of one ``fno``
        experiment at once, as one stacked model
        (:mod:`flops_fit.ptycho.stacking`): each seed is the model it would
        be alone, up to float rounding, and small widths train faster (1 trains
        every run alone). Each run still gets its own row; ``train_time_s`` is
        its share of the group's time and ``trained_together`` the group size.

    Returns
    -------
    pathlib.Path
        The path of ``study_results.csv``.
    """
    from flops_fit.pareto import plot_pareto  # plotting only after training

    output_dir = Path(output_dir)
    seeds = _seeds(seed)
    if compute_budgets is not None:
        if architectures and list(architectures) != ["fno"]:
            raise ValueError(
                f"An IsoFLOP study sweeps fno widths; got architectures={list(architectures)}"
            )
        fixed = {k: list(v) for k, v in (axes or {}).items()}
        _check_names(list(fixed), ["fno_modes", "fno_input_transform"], "IsoFLOP axis")
        if any(len(v) != 1 for v in fixed.values()):
            raise ValueError(
                f"An IsoFLOP study fixes modes and transform to one value each; got axes={fixed}"
            )
        chosen_data = study_data(light, data, isoflop=True)  # once per study
        plan = _plan_widths(
            compute_budgets,
            chosen_data.config.N,
            widths=widths,
            modes=fixed.get("fno_modes", [12])[0],
            input_transform=fixed.get("fno_input_transform", ["none"])[0],
            num_sizes_per_budget=ISOFLOP_SIZES_PER_BUDGET,
        )
        configs = [c for s in seeds for c in _isoflop_configs(plan, data=chosen_data, seed=s)]
    else:
        plan = study_grid(light, architectures=architectures, epochs=epochs, seed=seeds[0], axes=axes, data=data)
        chosen_data = study_data(light, data)
        configs = [{**c, "seed": s} for s in seeds for c in plan.configs()]
    if batch_size is not None:
        configs = [{**c, "batch_size": batch_size, "lr": scaled_lr(batch_size)} for c in configs]
    _check_models(configs, N=chosen_data.config.N)
    check_output_dir(output_dir)  # a busy folder fails now, not after minutes of simulation
    cache = str(cache_dir or output_dir / "data_cache")
    # The data once, here, before any run: a config the simulation rejects fails now, not
    # in every run; and workers read the cache instead of each simulating it.
    baseline = mean_patch_baseline(load_data(chosen_data.spec, cache))
    fn = StudyExperiment(cache, progress=progress, max_group=seeds_together)
    df = run_sweep(
        configs,
        fn,
        output_dir,
        executor=executor,
        resume=resume,
        progress=progress,
        device=device,
        seed=seeds[0],
    )
    (output_dir / FLOOR_NAME).write_text(json.dumps(baseline, indent=1))  # what load_floor reads
    ok = df[df["status"] == "ok"] if "status" in df else df
    if len(ok):
        ax = plot_pareto(ok, "model_params", "ssim_phase", hue="architecture")
        ax.axhline(
            baseline["ssim_phase"],
            color="0.5",
            linestyle="--",
            linewidth=1,
            label="mean training patch (learns nothing)",
        )
        ax.legend(fontsize=8)
        ax.figure.savefig(output_dir / "pareto_plot.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(ax.figure)
    return output_dir / "study_results.csv"
