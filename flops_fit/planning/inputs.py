"""Checks on what a plan is asked for: compute budgets, candidate sizes, the IsoFLOP options.

Pure checks, no model built: :func:`~flops_fit.planning.isoflop.plan_sweep`
runs them before it probes anything, and ``find_optimal`` runs
:func:`validate_budgets` in its own order (model, dataset, loss, budgets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flops_fit.checks import check_choice, check_int, check_number, is_number

__all__ = ["FLOPS_RULES", "check_plan_options", "check_sizes", "validate_budgets"]

FLOPS_RULES = ("auto", "6N", "measured")
_BUDGET_EXAMPLE = "e.g. compute_budgets=[1e15, 1e16]"


def validate_budgets(compute_budgets: Any) -> tuple[float, ...]:
    """Check compute budgets and return them as ascending floats.

    Parameters
    ----------
    compute_budgets : sequence of float, or one float
        Training budgets in FLOPs.

    Returns
    -------
    tuple of float

    Raises
    ------
    ValueError
        Missing, empty, non-numeric, non-finite, <= 0 or repeated budgets.
    """
    if compute_budgets is None:
        raise ValueError(f"compute_budgets is required: training budgets in FLOPs, {_BUDGET_EXAMPLE}")
    if is_number(compute_budgets):
        compute_budgets = [compute_budgets]
    if isinstance(compute_budgets, (str, bytes, Mapping)) or not isinstance(
        compute_budgets, (Sequence, np.ndarray)
    ):
        raise ValueError(
            f"Got compute_budgets={compute_budgets!r} ({type(compute_budgets).__name__}), expected a list "
            f"of FLOP budgets; {_BUDGET_EXAMPLE}"
        )
    if len(compute_budgets) == 0:
        raise ValueError(f"compute_budgets is empty; give at least one budget in FLOPs, {_BUDGET_EXAMPLE}")
    budgets = []
    for i, b in enumerate(compute_budgets):
        if not is_number(b):
            raise ValueError(f"Got compute_budgets[{i}]={b!r} ({type(b).__name__}), expected a number of FLOPs")
        if not math.isfinite(b) or b <= 0:
            raise ValueError(f"Got compute_budgets[{i}]={b:g}, expected a finite number of FLOPs > 0")
        budgets.append(float(b))
    repeated = sorted({b for b in budgets if budgets.count(b) > 1})
    if repeated:
        raise ValueError(f"compute_budgets has repeated values: [{', '.join(f'{b:g}' for b in repeated)}]")
    return tuple(sorted(budgets))


def check_sizes(sizes: Any) -> list[Any]:
    """Given candidate sizes as plain numbers: a non-empty list of distinct values > 0."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)) or len(sizes) == 0:
        raise ValueError(f"Got sizes={sizes!r}, expected a non-empty list of size values")
    values = [s.item() if isinstance(s, np.generic) else s for s in sizes]
    for i, s in enumerate(values):
        check_number(f"sizes[{i}]", s, allowed="a number > 0", test=lambda v: v > 0)
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise ValueError(f"sizes has repeated values: {repeated}")
    return values


def check_plan_options(*, num_sizes_per_budget: Any, sizes: Any, sample_input: Any, tokens_per_sample: Any,
                       flops: Any, size_range: Any, spread: Any, target_tokens_per_param: Any) -> list[Any] | None:
    """Check :func:`~flops_fit.planning.isoflop.plan_sweep`'s options; return the given sizes (or None)."""
    check_int("num_sizes_per_budget", num_sizes_per_budget, minimum=1)
    check_choice("flops", flops, FLOPS_RULES)
    if flops == "measured" and sample_input is None:
        raise ValueError("flops='measured' needs a sample_input (a batch the model accepts)")
    check_number("tokens_per_sample", tokens_per_sample, allowed="a number > 0", test=lambda v: v > 0)
    check_number("spread", spread, allowed="a number > 1", test=lambda v: v > 1)
    check_number("target_tokens_per_param", target_tokens_per_param, allowed="a number > 0",
                 test=lambda v: v > 0)
    lo, hi = size_range
    if not (0 < lo <= hi):
        raise ValueError(f"Got size_range={size_range!r}, expected (low, high) with 0 < low <= high")
    return check_sizes(sizes) if sizes is not None else None
