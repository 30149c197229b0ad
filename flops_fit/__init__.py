"""flops_fit: plan, run and analyse compute-aware model studies.

The pipeline, by stage::

    planning/ , contracts, api  ->  training, runner  ->  results  ->  pareto, explorer, scaling  ->  notebooks
    flops (cost of a model)         ptycho/ (the built-in FNO study), examples/

docs/ARCHITECTURE.md maps every module and the import rules tests/test_architecture.py enforces.

Public names are imported lazily, so ``import flops_fit`` stays fast and
pulls in torch, pandas or matplotlib only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "find_optimal": "api",
    "validate_model": "contracts",
    "validate_dataset": "contracts",
    "validate_loss": "contracts",
    "Experiment": "planning",
    "SweepPlan": "planning",
    "plan_sweep": "planning",
    "grid": "planning",
    "TrainSettings": "training",
    "count_params": "flops",
    "forward_flops": "flops",
    "run_sweep": "runner",
    "time_inference": "timing",
    "resolve_device": "runner",
    "DivergedError": "errors",
    "make_executor": "executors",
    "DaskExecutor": "executors",
    "SubmititExecutor": "executors",
    "ResultsStore": "results",
    "load_results": "results",
    "experiment_id": "results",
    "complex_metrics": "metrics",
    "pareto_front": "pareto",
    "plot_pareto": "pareto",
    "explore": "explorer",
    "fit_isoflop": "scaling",
    "fit_parametric": "scaling",
    "isoflop_bias": "scaling_check",
    "compare_approaches": "scaling_check",
    "holdout_check": "fit_holdout",
    "seeds_for_width": "fit_precision",
    "plan_new_budget": "fit_precision",
    "Result": "fit_result",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'flops_fit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flops_fit.{_EXPORTS[name]}"), name)
    globals()[name] = value  # cache: the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
