"""What both scaling-law fits check and share: input columns and arrays, options, bootstrap draws.

:mod:`flops_fit.parametric_fit` (Approach 3) and :mod:`flops_fit.isoflop_fit`
(Approach 2) validate with these, so a bad input reads the same in both, and
draw their bootstrap resamples the same way. Public for other checks of a
fit (they are not part of the package's top-level API).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from flops_fit.checks import check_number

__all__ = ["check_options", "column", "positive", "resample_counts"]


def positive(name: str, x: ArrayLike) -> np.ndarray:
    """``x`` as a 1-D float array whose finite values are positive (NaN passes: a failed run)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"Got {name} with shape {arr.shape}, expected a 1-D array")
    bad = np.isfinite(arr) & (arr <= 0) | np.isinf(arr)
    if bad.any():
        raise ValueError(f"Got {name} with non-positive or infinite values "
                         f"{arr[bad][:5].tolist()}, expected positive finite numbers")
    return arr


def check_options(n_bootstrap, ci_level, k) -> None:
    """The options both fits take: resamples, interval coverage, ``k`` in ``C = k N D``."""
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"Got n_bootstrap={n_bootstrap!r}, expected an integer >= 0")
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"Got ci_level={ci_level!r}, expected a number in (0, 1)")
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"Got flops_per_sample_per_param={k!r}, expected a positive number")


def check_min_p_interior(min_p_interior, n_bootstrap) -> float:
    """Approach 2's ``min_p_interior`` (a share in [0, 1]; above 0 it needs a bootstrap), as a float."""
    min_p_interior = check_number("min_p_interior", min_p_interior, allowed="a number in [0, 1]",
                                  test=lambda v: 0 <= v <= 1)
    if min_p_interior > 0 and not n_bootstrap:
        raise ValueError(f"Got min_p_interior={min_p_interior:g} with n_bootstrap=0, expected "
                         "n_bootstrap > 0: p_interior is measured on bootstrap resamples")
    return min_p_interior


def column(df: pd.DataFrame, role: str, name: str) -> np.ndarray:
    """Column ``name`` of ``df`` as floats (non-numbers NaN); ``role`` names the argument."""
    if name not in df.columns:
        raise ValueError(f"Got {role}={name!r}, expected a column of df: {list(df.columns)}")
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` points as counts per point, shape ``(size, n)``."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size)
