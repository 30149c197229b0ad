"""Turn intent into a list of experiments, before anything trains.

Two kinds of plan, one type (:class:`SweepPlan`):

* :func:`plan_sweep` — an IsoFLOP sweep (Chinchilla "Approach 2"): for each
  compute budget C, several model sizes N, each trained on the
  D = C / (FLOPs per sample) samples the budget affords.
* :func:`grid` — the Cartesian product of hyperparameter values.

One module per job, each importing only those before it::

    common      config values as JSON scalars, number formatting, cost constants
    experiment  Experiment: one run's flat config and its id
    plan        SweepPlan: the experiments, their cost table, JSON, time estimate
    grids       grid(): the Cartesian product of hyperparameter values
    inputs      checks on budgets, sizes and IsoFLOP options
    isoflop     plan_sweep(): probe sizes, choose them per budget
"""

from __future__ import annotations

from flops_fit.planning.common import CHINCHILLA_TOKENS_PER_PARAM, REPEAT_EPOCHS, SIX_N
from flops_fit.planning.experiment import Experiment
from flops_fit.planning.grids import grid
from flops_fit.planning.inputs import validate_budgets
from flops_fit.planning.isoflop import plan_sweep
from flops_fit.planning.plan import SweepPlan

__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "REPEAT_EPOCHS",
    "SIX_N",
    "Experiment",
    "SweepPlan",
    "grid",
    "plan_sweep",
    "validate_budgets",
]
