"""Argument checks with one wording: ``Got name=value, expected ...``.

Every boundary in flops_fit (plan options, training settings, model and
dataset configs) checks its numbers with these, so a wrong value always reads
the same way and says what came and what is allowed. ``bool`` is never a
number here, although Python makes it an ``int``: ``workers=True`` is a
mistake, not one worker.

Examples
--------
>>> check_int("workers", 2, minimum=1)
2
>>> check_int("workers", 0, minimum=1)
Traceback (most recent call last):
...
ValueError: Got workers=0, expected an int >= 1
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["check_choice", "check_int", "check_number", "check_positive_float", "is_int", "is_number"]


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for ``bool`` (and everything else)."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for real numbers (int, float, numpy scalars), False for ``bool``."""
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, *, minimum: int | None = None,
              type_error: type[Exception] = ValueError) -> int:
    """``value`` as a plain int, or an error ``Got {name}={value!r}, expected an int >= {minimum}``.

    Parameters
    ----------
    name : str
        The argument's name, as the caller typed it.
    value : Any
        What came.
    minimum : int, optional
        Smallest allowed value.
    type_error : exception class
        Raised when ``value`` is not an int (``TypeError`` where the caller's
        contract says so); a value below ``minimum`` is always a ``ValueError``.
    """
    expected = "an int" if minimum is None else f"an int >= {minimum}"
    if not is_int(value):
        raise type_error(f"Got {name}={value!r}, expected {expected}")
    if minimum is not None and value < minimum:
        raise ValueError(f"Got {name}={value!r}, expected {expected}")
    return int(value)


def check_number(name: str, value: Any, *, allowed: str, test: Any = None,
                 type_error: type[Exception] = ValueError) -> float:
    """``value`` as a float when it is a number passing ``test``; else ``Got ..., expected {allowed}``.

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        What came.
    allowed : str
        What is allowed, in words (``"a number > 1"``, ``"a number in [0, 1]"``).
    test : callable, optional
        ``test(value) -> bool``; NaN fails every comparison, so ``lambda v: v > 0``
        also rejects NaN.
    type_error : exception class
        Raised when ``value`` is not a number (a failed ``test`` is a ``ValueError``).
    """
    if not is_number(value):
        raise type_error(f"Got {name}={value!r}, expected {allowed}")
    if test is not None and not test(value):
        raise ValueError(f"Got {name}={value!r}, expected {allowed}")
    return float(value)


def check_positive_float(name: str, value: Any, *, above: float = 0.0, finite: bool = True,
                         type_error: type[Exception] = ValueError) -> float:
    """``value`` as a float > ``above`` (and finite unless ``finite=False``)."""
    allowed = f"a {'finite ' if finite else ''}number > {above:g}"
    return check_number(name, value, allowed=allowed, type_error=type_error,
                        test=lambda v: v > above and (not finite or math.isfinite(v)))


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else ``Got {name}={value!r}, expected one of [...]``."""
    options = list(allowed)
    if value not in options:
        raise ValueError(f"Got {name}={value!r}, expected one of {options}")
    return value
