"""Coerce notebook parameters that arrive as strings, and resolve notebook paths.

papermill's ``-p name value`` turns only ``True``, ``False`` and ``None`` into
Python values and numbers like ``1e2`` into floats; everything else arrives as
a string (``-p light true`` gives ``"true"``, which is truthy even when it says
``"false"``). Each notebook therefore coerces its parameters in the cell after
the ``parameters`` cell with these helpers, which accept the spellings a person
types and stop the notebook with a message naming the parameter, what was
received and what is allowed.

Relative paths in notebook parameters are resolved against :func:`project_root`
so a notebook behaves the same whether papermill runs it from the repository
root or nbmake runs it from ``notebooks/``.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ROOT_ENV_VAR",
    "as_bool",
    "as_float",
    "as_fraction",
    "as_int",
    "as_list",
    "as_optional_float",
    "as_optional_float_list",
    "as_optional_int",
    "as_path",
    "project_root",
]

# Overrides the directory relative notebook paths are resolved against (tests
# use it to send a notebook's default outputs to a temporary folder).
ROOT_ENV_VAR = "FLOPS_FIT_ROOT"

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_BOOL_CHOICES = "true/false/yes/no/on/off/1/0"
# Strings that mean "no value" for optional parameters (papermill only maps ``None``).
_NONE_STRINGS = frozenset({"", "none", "null"})

T = TypeVar("T", str, int, float)


def as_bool(value: Any, name: str) -> bool:
    """Read a yes/no parameter.

    Parameters
    ----------
    value : bool, int or str
        A real bool, the int 0 or 1, or one of the strings
        true/false/yes/no/on/off/1/0 in any case, surrounding spaces allowed.
    name : str
        Parameter name, used in the error message.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        For anything else, e.g. ``"maybe"`` or ``2``.

    Examples
    --------
    >>> as_bool(" Yes ", "light")
    True
    >>> as_bool(0, "light")
    False
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"Got {name}={value!r}, expected one of {_BOOL_CHOICES}")


def _number(value: Any, name: str, kind: str) -> float | int:
    """Parse a real number from a number or a numeric string; reject bools and NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"Got {name}={value!r}, expected {kind}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number: float | int = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"Got {name}={value!r}, expected {kind}") from None
    else:
        number = value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"Got {name}={value!r}, expected {kind} (finite)")
    return number


def as_int(value: Any, name: str, *, min: int | None = None) -> int:
    """Read an integer parameter.

    Parameters
    ----------
    value : int, float or str
        An int, an integral float (papermill turns ``-p epochs 1e2`` into
        ``100.0``) or a string holding either.
    name : str
        Parameter name, used in the error message.
    min : int, optional
        Smallest allowed value (inclusive).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        For bools, non-numeric strings, non-integral numbers and values below
        ``min``.

    Examples
    --------
    >>> as_int("1e2", "epochs", min=1)
    100
    """
    kind = "an integer" if min is None else f"an integer >= {min}"
    number = _number(value, name, kind)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(f"Got {name}={value!r}, expected {kind}")
        number = int(number)
    if min is not None and number < min:
        raise ValueError(f"Got {name}={value!r}, expected {kind}")
    return number


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_STRINGS)


def as_optional_int(value: Any, name: str, *, min: int | None = None) -> int | None:
    """Like :func:`as_int`, but ``None`` (or the strings ``"none"``, ``"null"``, ``""``) gives None.

    Examples
    --------
    >>> as_optional_int("None", "epochs") is None
    True
    """
    return None if _is_none(value) else as_int(value, name, min=min)


def as_float(value: Any, name: str, *, positive: bool = False) -> float:
    """Read a finite real parameter.

    Parameters
    ----------
    value : int, float or str
        A number or a numeric string (``"1e12"``).
    name : str
        Parameter name, used in the error message.
    positive : bool
        Require a value > 0.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For bools, non-numeric strings, NaN, infinities, and values <= 0 when
        ``positive``.

    Examples
    --------
    >>> as_float(" 1e12 ", "budget", positive=True)
    1000000000000.0
    """
    kind = "a positive number" if positive else "a number"
    number = float(_number(value, name, kind))
    if positive and not number > 0:
        raise ValueError(f"Got {name}={value!r}, expected {kind}")
    return number


def as_fraction(value: Any, name: str) -> float:
    """Read a number in [0, 1] (a share or a probability), as :func:`as_float` reads numbers.

    Examples
    --------
    >>> as_fraction("0.9", "min_p_interior")
    0.9
    """
    number = as_float(value, name)
    if not 0 <= number <= 1:
        raise ValueError(f"Got {name}={value!r}, expected a number in [0, 1]")
    return number


def as_optional_float(value: Any, name: str, *, positive: bool = False) -> float | None:
    """Like :func:`as_float`, but ``None`` (or the strings ``"none"``, ``"null"``, ``""``) gives None.

    Examples
    --------
    >>> as_optional_float("none", "budget") is None
    True
    """
    return None if _is_none(value) else as_float(value, name, positive=positive)


def _split(value: str, name: str) -> list[Any]:
    """Items of a list typed as a string: ``"a, b"`` or a Python/JSON literal ``"['a', 'b']"``."""
    text = value.strip()
    if text[:1] in "[(":
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"Got {name}={value!r}, expected a list like ['a', 'b'] or a comma-separated string a,b"
            ) from None
        if not isinstance(parsed, (list, tuple)):
            raise ValueError(f"Got {name}={value!r}, expected a list")
        return list(parsed)
    return [part.strip() for part in text.split(",")]


def as_list(
    value: Any,
    name: str,
    *,
    item: type[T] = str,
    allowed: Iterable[str] | None = None,
) -> list[T] | None:
    """Read a list parameter; None means "not given".

    Parameters
    ----------
    value : None, list, tuple, str or a single number
        A list or tuple; a comma-separated string (``"fno,hybrid"``); a
        Python/JSON list literal (``"['fno', 'hybrid']"``); ``None`` or the
        strings ``"none"``/``"null"``/``""``; for numeric items also a single
        number (papermill turns ``-p compute_budgets 1e12`` into a float).
    name : str
        Parameter name, used in the error message.
    item : {str, int, float}
        Type of each item; numeric items are read with :func:`as_int` /
        :func:`as_float`.
    allowed : iterable of str, optional
        Allowed values for string items (e.g. a registry's keys).

    Returns
    -------
    list or None
        None when no value was given, else a non-empty list.

    Raises
    ------
    ValueError
        For an empty list, an item of the wrong type, or a string item not in
        ``allowed``.

    Examples
    --------
    >>> as_list("fno, hybrid", "architectures", allowed=["fno", "hybrid"])
    ['fno', 'hybrid']
    >>> as_list("1e12,1e13", "compute_budgets", item=float)
    [1000000000000.0, 10000000000000.0]
    """
    if item not in (str, int, float):
        raise TypeError(f"Got item={item!r}, expected str, int or float")
    if _is_none(value):
        return None
    if isinstance(value, str):
        items = _split(value, name)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif item is not str and isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]
    else:
        raise ValueError(f"Got {name}={value!r}, expected a list or a comma-separated string")
    if not items or items == [""]:
        raise ValueError(f"Got {name}={value!r}, expected a non-empty list (or None for the default)")
    out: list[Any] = []
    for i, raw in enumerate(items):
        label = f"{name}[{i}]"
        if item is str:
            if not isinstance(raw, str) or not raw.strip():
                raise ValueError(f"Got {label}={raw!r}, expected a non-empty string")
            out.append(raw.strip())
        elif item is int:
            out.append(as_int(raw, label))
        else:
            out.append(as_float(raw, label))
    if allowed is not None:
        choices = sorted(allowed)
        for entry in out:
            if entry not in choices:
                raise ValueError(f"Got {name}={entry!r}, expected one of {choices}")
    return out


def as_optional_float_list(value: Any, name: str) -> list[float] | None:
    """Read an optional list of positive finite numbers, e.g. compute budgets in FLOPs.

    Examples
    --------
    >>> as_optional_float_list("1e12, 1e13", "compute_budgets")
    [1000000000000.0, 10000000000000.0]
    >>> as_optional_float_list(None, "compute_budgets") is None
    True
    """
    numbers = as_list(value, name, item=float)
    if numbers is None:
        return None
    return [as_float(x, f"{name}[{i}]", positive=True) for i, x in enumerate(numbers)]


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Directory that relative notebook paths are resolved against.

    In order: the environment variable ``FLOPS_FIT_ROOT`` if set; else the
    nearest directory at or above ``start`` (default: the working directory)
    that holds a ``pyproject.toml``; else ``start`` itself. papermill runs a
    notebook in the directory it was started from (usually the repository
    root) and nbmake in the notebook's folder; both find the same root.

    Parameters
    ----------
    start : path-like, optional
        Where to start looking (default: the current working directory).

    Returns
    -------
    pathlib.Path
        An absolute path.
    """
    override = os.environ.get(ROOT_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    here = Path.cwd() if start is None else Path(start)
    here = here.expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def as_path(value: Any, name: str, *, must_exist: bool = False) -> Path:
    """Read a path parameter; relative paths are taken from :func:`project_root`.

    Parameters
    ----------
    value : str or path-like
        Absolute, ``~``-prefixed, or relative to the project root.
    name : str
        Parameter name, used in the error message.
    must_exist : bool
        Raise when the path does not exist (e.g. a results folder to load).

    Returns
    -------
    pathlib.Path
        An absolute path.

    Raises
    ------
    ValueError
        For a value that is not a non-empty string or path.
    FileNotFoundError
        When ``must_exist`` and nothing exists at the path.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"Got {name}={value!r}, expected a path")
    path = Path(str(value).strip()).expanduser()
    root = project_root()
    if not path.is_absolute():
        path = root / path
    path = path.resolve()
    if must_exist and not path.exists():
        raise FileNotFoundError(
            f"Got {name}={value!r}, expected an existing path: {str(path)!r} does not exist "
            f"(relative paths are resolved against {str(root)!r})"
        )
    return path
