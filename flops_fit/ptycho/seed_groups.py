"""Seeds of one FNO experiment trained together: the study's ``fn`` for the runner's group protocol.

:class:`StudyExperiment` is what :func:`~flops_fit.ptycho.study.run_study`
hands to :func:`~flops_fit.runner.run_sweep`: alone it is
:func:`~flops_fit.ptycho.experiment.train_and_evaluate`; its ``group_key`` and
``run_group`` let the runner give up to ``max_group`` seeds of one small
``fno`` experiment to :func:`train_and_evaluate_together`, which trains them
as one stacked model (:mod:`flops_fit.ptycho.stacking`) and measures each alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flops_fit.checks import check_int
from flops_fit.device import synchronize
from flops_fit.execution import seed_everything
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.experiment import (
    checked_data,
    fit_settings,
    measure_run,
    prepare_run,
    train_and_evaluate,
    train_args,
)

__all__ = ["STACK_MAX_WIDTH", "StudyExperiment", "train_and_evaluate_together"]


def train_and_evaluate_together(
    configs: list[dict[str, Any]],
    run_dirs: list[Path],
    *,
    device: str = "cpu",
    cache_dir: str | Path = "data_cache",
    progress: bool = True,
) -> list[dict[str, Any] | Exception]:
    """:func:`train_and_evaluate` for configs that differ only in ``seed``, trained as one stacked model.

    Member ``m`` is built right after ``seed_everything(configs[m]["seed"])``
    (its initial weights are those it gets alone) and trained by
    :func:`~flops_fit.ptycho.fitting.fit_members`; each is then measured
    alone. ``train_time_s`` is the group's training time over its size, and
    ``trained_together`` the group size.

    Returns
    -------
    list
        Per config, its measurements, or the exception that failed it.
    """
    others = [{k: v for k, v in c.items() if k != "seed"} for c in configs]
    if any(o != others[0] for o in others):
        raise ValueError("Got configs that differ in more than their seed, expected one experiment's seeds")
    data = checked_data(configs[0], cache_dir)
    prepared = []
    for config in configs:
        seed_everything(config["seed"])
        prepared.append(prepare_run(config, data, device))
    models, settings = [p[0] for p in prepared], prepared[0][2]
    start = time.perf_counter()
    histories = ptrain.fit_members(models, *train_args(data), seeds=[c["seed"] for c in configs],
                                   progress=progress, settings=settings, **fit_settings(configs[0], data, device))
    synchronize(torch.device(device))
    train_time = (time.perf_counter() - start) / len(configs)
    out: list[dict[str, Any] | Exception] = []
    for config, (model, fwd, _), history, run_dir in zip(configs, prepared, histories, run_dirs, strict=True):
        if isinstance(history, Exception):
            out.append(history)
            continue
        try:
            measured = measure_run(model, config, data, history, train_time, fwd, settings, device, run_dir)
            out.append({**measured, "trained_together": len(configs)})
        except Exception as exc:  # one member's evaluation failing fails that member only
            out.append(exc)
    return out


#: Widest ``fno`` whose seeds are trained together. Measured end to end in the CPU IsoFLOP
#: study (2 workers, 3 seeds stacked against each alone, samples/s per model): width 1
#: 2.8x, 2 1.6x, 3 1.6x, 4 1.5x, 6 1.3x, 8 1.3x, 12 0.85x (slower: its steps are no longer
#: dominated by per-op costs, and the stacked activations fall out of cache).
STACK_MAX_WIDTH = 8


@dataclass(frozen=True)
class StudyExperiment:
    """The function :func:`~flops_fit.runner.run_sweep` calls for a study, with seed grouping.

    Called as ``fn(config, run_dir, *, device)`` it is
    :func:`train_and_evaluate`. Its ``group_key`` and ``run_group`` let the
    runner hand up to ``max_group`` seeds of one ``fno`` experiment (of width at
    most :data:`STACK_MAX_WIDTH`) to
    :func:`train_and_evaluate_together` (``hybrid``'s skip concatenations
    couple stacked members, so it runs alone).

    Attributes
    ----------
    cache_dir : str
        Where simulated datasets are cached.
    progress : bool
        A tqdm bar over each run's epochs.
    max_group : int
        Seeds trained together at most; 1 trains every run alone.
    """

    cache_dir: str
    progress: bool = False
    max_group: int = 1

    def __post_init__(self) -> None:
        check_int("max_group", self.max_group, minimum=1)

    def __call__(self, config: dict[str, Any], run_dir: Path, *, device: str = "cpu") -> dict[str, Any]:
        return train_and_evaluate(config, run_dir, device=device, cache_dir=self.cache_dir, progress=self.progress)

    def group_key(self, config: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
        """Everything but the seed, for an ``fno`` config up to :data:`STACK_MAX_WIDTH` when grouping is on."""
        if self.max_group == 1 or config.get("architecture") != "fno" or config.get("fno_width", 0) > STACK_MAX_WIDTH:
            return None
        return tuple(sorted((k, v) for k, v in config.items() if k != "seed"))

    def run_group(self, configs: list[dict[str, Any]], run_dirs: list[Path], *,
                  device: str = "cpu") -> list[dict[str, Any] | Exception]:
        return train_and_evaluate_together(configs, run_dirs, device=device, cache_dir=self.cache_dir,
                                           progress=self.progress)
