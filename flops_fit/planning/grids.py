"""A hyperparameter grid: :func:`grid`, the Cartesian product of values as a :class:`SweepPlan`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from flops_fit.planning.common import SCALARS
from flops_fit.planning.experiment import Experiment
from flops_fit.planning.plan import SweepPlan

__all__ = ["grid"]


def grid(**axes: Any) -> SweepPlan:
    """Plan the Cartesian product of hyperparameter values.

    Parameters
    ----------
    **axes
        ``name=[values]`` (a single value counts as one); values are str,
        int, float, bool or None. The last axis varies fastest.

    Returns
    -------
    SweepPlan
        ``kind="grid"``; each experiment's config is one combination.

    Raises
    ------
    ValueError, TypeError
        No axes, an empty axis, repeated values, an unsupported value type,
        or the reserved name ``experiment_id``.

    Examples
    --------
    >>> grid(width=[16, 32], lr=1e-3).num_experiments
    2
    """
    if not axes:
        raise ValueError("grid() needs at least one axis, e.g. grid(width=[16, 32], lr=[1e-3, 3e-4])")
    if "experiment_id" in axes:
        raise ValueError("grid axis name 'experiment_id' is reserved (it is the hash of each config)")
    values: dict[str, list[Any]] = {}
    for name, axis in axes.items():
        if isinstance(axis, (*SCALARS, np.generic)):
            axis = [axis]
        if not isinstance(axis, (Sequence, np.ndarray)):
            raise TypeError(f"Got grid axis {name}={axis!r} ({type(axis).__name__}), expected a list of values "
                            "(or one value)")
        items = [v.item() if isinstance(v, np.generic) else v for v in axis]
        if not items:
            raise ValueError(f"grid axis {name!r} is empty; give at least one value")
        for v in items:
            if not isinstance(v, SCALARS):
                raise TypeError(
                    f"Got a value {v!r} ({type(v).__name__}) on grid axis {name!r}, expected a str, int, float, bool or None"
                )
        keys = [json.dumps(v) for v in items]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"grid axis {name!r} has repeated values: {repeated}")
        values[name] = items
    names = list(values)
    experiments = [Experiment(hparams=dict(zip(names, combo, strict=True)))
                   for combo in itertools.product(*values.values())]
    return SweepPlan(experiments=tuple(experiments), kind="grid")
