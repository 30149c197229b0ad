"""Old home of the IsoFLOP planner, kept for one release: import from :mod:`flops_fit.planning`.

:func:`plan_sweep` lives in :mod:`flops_fit.planning.isoflop`,
:func:`validate_budgets` in :mod:`flops_fit.planning.inputs` and the
constants in :mod:`flops_fit.planning.common`; all are re-exported by
:mod:`flops_fit.planning`.
"""

from __future__ import annotations

from flops_fit.planning import CHINCHILLA_TOKENS_PER_PARAM, SIX_N, plan_sweep, validate_budgets

__all__ = ["CHINCHILLA_TOKENS_PER_PARAM", "SIX_N", "plan_sweep", "validate_budgets"]
