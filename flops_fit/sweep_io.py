"""What goes into a sweep and what comes out of each run, checked.

The runner (:mod:`flops_fit.runner`) calls these on both sides of the
experiment contract: the configs it is given (flat dicts of JSON scalars, a
seed each, no bookkeeping names), the measurements ``fn`` returns (flat,
no config value changed, every loss finite), and the record of a run whose
worker died before it could report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch

from flops_fit.checks import is_int
from flops_fit.planning.common import SCALARS
from flops_fit.results import BOOKKEEPING_COLUMNS, experiment_id

__all__ = [
    "RESERVED",
    "VERSION_NAMES",
    "check_measurements",
    "check_seed",
    "configs_by_id",
    "error_text",
    "group_todo",
    "lost_record",
    "plain",
]

VERSION_NAMES = ("python", "torch", "numpy", "flops_fit")
#: Names a config or a measurement may not use: the runner writes these columns.
RESERVED = frozenset(BOOKKEEPING_COLUMNS) | {f"version_{n}" for n in VERSION_NAMES}
_SEED_MAX = 2**32 - 1  # numpy's legacy seeding accepts [0, 2**32 - 1]


def check_seed(seed: Any, name: str) -> int:
    """``seed`` as an int, or ``Got {name}=..., expected an int in [0, 2**32 - 1]``."""
    if not is_int(seed) or not 0 <= seed <= _SEED_MAX:
        raise ValueError(f"Got {name}={seed!r}, expected an int in [0, 2**32 - 1]")
    return int(seed)


def error_text(exc: BaseException) -> str:
    """``"ExcType: message"`` (or just ``"ExcType"``): the ``error`` column of a failed run."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def plain(value: Any) -> Any:
    """numpy scalars, 0-d arrays and 0-d tensors -> the Python number."""
    if type(value) in SCALARS:  # the common case, without torch's slow isinstance hook
        return value
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray | torch.Tensor) and value.ndim == 0):
        return value.item()
    return value


def check_measurements(out: Any, config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The measurements fn returned (config echoes dropped), and why the run failed, or None.

    A measurement may repeat a config entry with the same value (it is the
    config column already); a different value, or a bookkeeping name, fails
    the run but keeps the other measurements.
    """
    if not isinstance(out, Mapping):
        raise TypeError(f"fn must return a dict of measurements, got {type(out).__name__}")
    measurements = {}
    for key, value in out.items():
        if not isinstance(key, str):
            raise TypeError(f"fn returned measurement key {key!r} of type {type(key).__name__}, expected str")
        value = plain(value)
        if not isinstance(value, SCALARS):
            raise TypeError(
                f"fn returned measurement {key!r} of type {type(value).__name__}; "
                "expected a flat dict of numbers, strings, bools or None"
            )
        measurements[key] = value
    reserved = sorted(k for k in measurements if k in RESERVED)
    changed = [f"{k}={v!r} (config: {config[k]!r})" for k, v in measurements.items() if k in config and v != config[k]]
    kept = {k: v for k, v in measurements.items() if k not in config and k not in RESERVED}
    if reserved:
        return kept, f"ValueError: fn returned {reserved}, which are bookkeeping columns; rename them"
    if changed:
        return kept, (
            f"ValueError: fn returned {', '.join(changed)}; a measurement may repeat a config "
            "value but not change it: rename it"
        )
    diverged = _non_finite_losses(kept)
    return kept, f"DivergedError: non-finite {', '.join(diverged)}" if diverged else None


def _non_finite_losses(measurements: Mapping[str, Any]) -> list[str]:
    return [
        k
        for k, v in measurements.items()
        if "loss" in k.lower() and isinstance(v, float) and not math.isfinite(v)
    ]


_BROKEN_POOL_HINT = (
    " (a worker process died: killed, out of memory, or crashed; in a script, a process pool "
    "needs the sweep under `if __name__ == \"__main__\":` since spawned workers import the main module)"
)


def lost_record(eid: str, config: dict[str, Any], device: str, exc: BaseException) -> dict[str, Any]:
    """Record of an experiment whose worker failed (killed, unpicklable fn...)."""
    hint = _BROKEN_POOL_HINT if isinstance(exc, BrokenProcessPool) else ""
    return {
        "experiment_id": eid,
        "config": config,
        "measurements": {},
        "status": "failed",
        "error": error_text(exc) + hint,
        "started_at": None,
        "wall_time_s": None,
        "device": device,
        "versions": {},
    }


def configs_by_id(experiments: Any, seed: int) -> dict[str, dict[str, Any]]:
    """Validated configs by experiment id (seed filled in; duplicates dropped)."""
    if callable(getattr(experiments, "configs", None)):
        experiments = experiments.configs()
    if isinstance(experiments, Mapping):
        raise TypeError("Got a single dict, expected an iterable of config dicts (wrap one config in a list)")
    if isinstance(experiments, str | bytes) or not isinstance(experiments, Iterable):
        raise TypeError(
            f"Got experiments of type {type(experiments).__name__}, expected an iterable of "
            "config dicts or a SweepPlan (an object with .configs())"
        )
    configs: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(experiments):
        if not isinstance(raw, Mapping):
            raise TypeError(f"Experiment {i} is a {type(raw).__name__}, expected a dict of hyperparameters")
        config = {}
        for key, value in raw.items():
            value = plain(value)
            if not isinstance(key, str) or not isinstance(value, SCALARS):
                raise TypeError(
                    f"Experiment {i} has {key!r}: {value!r} ({type(value).__name__}); expected a flat "
                    "dict of str keys and number, string, bool or None values"
                )
            if key in RESERVED:
                raise ValueError(f"Experiment {i} uses the bookkeeping column name {key!r}; rename it")
            config[key] = value
        config["seed"] = check_seed(config.get("seed", seed), f"experiment {i} seed")
        configs.setdefault(experiment_id(config), config)
    return configs


def group_todo(todo: list[tuple[str, dict[str, Any]]], fn: Any) -> list[list[tuple[str, dict[str, Any]]]]:
    """The experiments to run, in groups that ``fn.run_group`` trains together (else one each).

    An ``fn`` with ``group_key(config)`` and ``run_group(configs, run_dirs, *,
    device)`` gets experiments whose key is equal and not None together, at
    most ``fn.max_group`` (default 4) per group, in the order they come.
    """
    key_of, run_group = getattr(fn, "group_key", None), getattr(fn, "run_group", None)
    if not callable(key_of) or not callable(run_group):
        return [[item] for item in todo]
    size = getattr(fn, "max_group", 4)
    if not is_int(size) or size < 1:
        raise ValueError(f"Got fn.max_group={size!r}, expected an int >= 1")
    open_groups: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
    groups: list[list[tuple[str, dict[str, Any]]]] = []
    for item in todo:
        key = key_of(item[1])
        group = None if key is None else open_groups.get(key)
        if group is None or len(group) >= size:
            group = []
            groups.append(group)
            if key is not None:
                open_groups[key] = group
        group.append(item)
    return groups
