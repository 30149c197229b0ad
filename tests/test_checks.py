"""flops_fit.checks: one wording for every boundary check."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.checks import (
    check_choice,
    check_int,
    check_number,
    check_positive_float,
    is_int,
    is_number,
)


@pytest.mark.parametrize(("value", "expected"), [(3, True), (np.int64(3), True), (True, False),
                                                 (np.bool_(True), False), (3.0, False), ("3", False)])
def test_is_int(value, expected: bool) -> None:
    assert is_int(value) is expected


@pytest.mark.parametrize(("value", "expected"), [(3, True), (2.5, True), (np.float32(1), True),
                                                 (False, False), ("1", False), (None, False)])
def test_is_number(value, expected: bool) -> None:
    assert is_number(value) is expected


def test_check_int_returns_a_plain_int() -> None:
    out = check_int("n", np.int32(4), minimum=1)
    assert out == 4 and type(out) is int


@pytest.mark.parametrize(("value", "minimum", "error", "match"), [
    (0, 1, ValueError, r"^Got n=0, expected an int >= 1$"),
    (True, 1, ValueError, r"^Got n=True, expected an int >= 1$"),
    (2.0, None, ValueError, r"^Got n=2\.0, expected an int$"),
])
def test_check_int_errors(value, minimum, error, match: str) -> None:
    with pytest.raises(error, match=match):
        check_int("n", value, minimum=minimum)


def test_check_int_type_error_only_for_the_type() -> None:
    with pytest.raises(TypeError, match=r"^Got n='2', expected an int >= 1$"):
        check_int("n", "2", minimum=1, type_error=TypeError)
    with pytest.raises(ValueError, match=r"^Got n=0, expected an int >= 1$"):
        check_int("n", 0, minimum=1, type_error=TypeError)


@pytest.mark.parametrize(("value", "match"), [
    (0.0, r"^Got lr=0\.0, expected a finite number > 0$"),
    (float("inf"), r"^Got lr=inf, expected a finite number > 0$"),
    (float("nan"), r"^Got lr=nan, expected a finite number > 0$"),
    (True, r"^Got lr=True, expected a finite number > 0$"),
])
def test_check_positive_float_errors(value, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_positive_float("lr", value)


def test_check_positive_float_bounds() -> None:
    assert check_positive_float("x", float("inf"), finite=False) == float("inf")
    with pytest.raises(ValueError, match=r"^Got x=1\.0, expected a finite number > 1$"):
        check_positive_float("x", 1.0, above=1.0)


def test_check_number_uses_the_words_given() -> None:
    assert check_number("p", 0.5, allowed="a number in [0, 1]", test=lambda v: 0 <= v <= 1) == 0.5
    with pytest.raises(ValueError, match=r"^Got p=2, expected a number in \[0, 1\]$"):
        check_number("p", 2, allowed="a number in [0, 1]", test=lambda v: 0 <= v <= 1)


def test_check_choice() -> None:
    assert check_choice("kind", "dask", ["process", "dask"]) == "dask"
    with pytest.raises(ValueError, match=r"^Got kind='ray', expected one of \['process', 'dask'\]$"):
        check_choice("kind", "ray", ("process", "dask"))
