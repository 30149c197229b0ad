"""Errors that more than one stage raises or reads.

:class:`DivergedError` is raised by the trainers (:mod:`flops_fit.training`,
:mod:`flops_fit.ptycho.fitting`) and recognised by the runner, which also
gives a run this error when a loss it returns is not finite. It lives here,
below both, so that the trainers need not import the runner.
"""

from __future__ import annotations

__all__ = ["DivergedError"]


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss (the message says where)."""
