"""Scaling-law fits: Chinchilla Approach 3 (parametric) and Approach 2 (IsoFLOP).

The public face of the fits, one module per job beneath it:

* :mod:`flops_fit.parametric_fit`: :func:`fit_parametric` (Approach 3);
* :mod:`flops_fit.isoflop_fit`: :func:`fit_isoflop` (Approach 2);
* :mod:`flops_fit.fit_inputs`: the checks and bootstrap draws both share;
* :mod:`flops_fit.fit_result`: :class:`Result`, what both return (parameters,
  bootstrap intervals, compute-optimal predictions, figure, JSON);
* :mod:`flops_fit.laws`: the closed forms (:func:`chinchilla_loss`,
  :func:`optimal_allocation`, :func:`estimate_flops_per_sample_per_param`).

Compute is ``C = k N D`` FLOPs (see :mod:`flops_fit.laws` for ``k``); for the
FNO study ``k = 3 * forward_flops_per_sample / N``, estimated with
`estimate_flops_per_sample_per_param`.

References
----------
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", sec. 3.
Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt".
"""

from __future__ import annotations

from flops_fit.fit_result import Result
from flops_fit.isoflop_fit import fit_isoflop
from flops_fit.laws import chinchilla_loss, estimate_flops_per_sample_per_param, optimal_allocation
from flops_fit.parametric_fit import fit_parametric

__all__ = [
    "Result",
    "chinchilla_loss",
    "estimate_flops_per_sample_per_param",
    "fit_isoflop",
    "fit_parametric",
    "optimal_allocation",
]
