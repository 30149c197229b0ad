"""What the planning modules share: config values as JSON scalars, number formatting, cost constants.

Public inside :mod:`flops_fit.planning` (its modules import these by name);
not part of the package's top-level API.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "REPEAT_EPOCHS",
    "SCALARS",
    "SIX_N",
    "fmt",
    "jsonable",
    "scalar",
]

# The types a config value may have: what JSON holds and hashes the same every time.
SCALARS = (str, int, float, bool, type(None))
# Training FLOPs per parameter per token of a dense transformer: a multiply-add
# (2 FLOPs) per weight forward, twice that backward (Kaplan et al. 2020).
SIX_N = 6.0
# Compute-optimal tokens per parameter found by Hoffmann et al. (2022); the
# centre around which plan_sweep spreads its sizes.
CHINCHILLA_TOKENS_PER_PARAM = 20.0
# Muennighoff et al. (2023), "Scaling Data-Constrained Language Models": up to about 4
# epochs repeated data is almost as good as fresh data; beyond, its value decays fast.
REPEAT_EPOCHS = 4.0


def scalar(value: Any) -> Any:
    """A JSON scalar for a config value: numpy scalars unwrapped, others as JSON text or repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, SCALARS):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its repr (for model kwargs such as classes)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def fmt(x: float) -> str:
    """A FLOP count or budget in 3 significant digits (``1e+15``, ``3.2e+09``)."""
    return f"{x:.3g}"
