"""Old home of :class:`~flops_fit.fit_result.Result`, kept for one release.

``result.py`` beside ``results.py`` was one letter from the sweep's on-disk
record; the fit's result is :mod:`flops_fit.fit_result` now and the closed
forms it evaluates are :mod:`flops_fit.laws`. Import from there.
"""

from __future__ import annotations

from flops_fit.fit_result import Result
from flops_fit.laws import (
    chinchilla_loss,
    estimate_flops_per_sample_per_param,
    nan_resamples,
    optimal_allocation,
)

__all__ = [
    "Result",
    "chinchilla_loss",
    "estimate_flops_per_sample_per_param",
    "nan_resamples",
    "optimal_allocation",
]
