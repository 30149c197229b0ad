"""Notebook parameter coercion: the spellings papermill delivers, and the messages for the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flops_fit.notebook import (
    ROOT_ENV_VAR,
    as_bool,
    as_float,
    as_fraction,
    as_int,
    as_list,
    as_optional_float,
    as_optional_float_list,
    as_optional_int,
    as_path,
    project_root,
)

BOOL_MSG = "expected one of true/false/yes/no/on/off/1/0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("yes", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
        (" 0\n", False),
    ],
)
def test_as_bool_accepts(value: object, expected: bool) -> None:
    assert as_bool(value, "light") is expected


@pytest.mark.parametrize("value", ["maybe", "", "tru", "2", 2, -1, 0.5, None, [True]])
def test_as_bool_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Got light={value!r}, {BOOL_MSG}")):
        as_bool(value, "light")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (0, 0), (1e2, 100), (20.0, 20), ("20", 20), (" 7 ", 7), ("1e2", 100), ("-4", -4)],
)
def test_as_int_accepts(value: object, expected: int) -> None:
    out = as_int(value, "epochs")
    assert out == expected and type(out) is int


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (-3, {"min": 1}, "Got epochs=-3, expected an integer >= 1"),
        ("-3", {"min": 1}, "Got epochs='-3', expected an integer >= 1"),
        (0, {"min": 1}, "Got epochs=0, expected an integer >= 1"),
        (2.5, {}, "Got epochs=2.5, expected an integer"),
        ("2.5", {"min": 1}, "Got epochs='2.5', expected an integer >= 1"),
        ("ten", {}, "Got epochs='ten', expected an integer"),
        (True, {}, "Got epochs=True, expected an integer"),
        (None, {}, "Got epochs=None, expected an integer"),
        (float("nan"), {}, "Got epochs=nan, expected an integer (finite)"),
        ("inf", {}, "Got epochs='inf', expected an integer (finite)"),
    ],
)
def test_as_int_rejects(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        as_int(value, "epochs", **kwargs)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("None", None), ("null", None), (" ", None), ("5", 5)])
def test_as_optional_int(value: object, expected: int | None) -> None:
    assert as_optional_int(value, "epochs", min=1) == expected


def test_as_optional_int_still_checks_min() -> None:
    with pytest.raises(ValueError, match=re.escape("Got epochs=-1, expected an integer >= 1")):
        as_optional_int(-1, "epochs", min=1)


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (2.5, 2.5), ("1e12", 1e12), (" -0.5 ", -0.5)])
def test_as_float_accepts(value: object, expected: float) -> None:
    assert as_float(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "positive", "message"),
    [
        ("abc", False, "Got x='abc', expected a number"),
        (False, False, "Got x=False, expected a number"),
        ("nan", False, "Got x='nan', expected a number (finite)"),
        (0, True, "Got x=0, expected a positive number"),
        ("-1e3", True, "Got x='-1e3', expected a positive number"),
    ],
)
def test_as_float_rejects(value: object, positive: bool, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        as_float(value, "x", positive=positive)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("NONE", None), ("", None), ("2e15", 2e15), (3, 3.0)])
def test_as_optional_float(value: object, expected: float | None) -> None:
    assert as_optional_float(value, "budget", positive=True) == expected


def test_as_optional_float_still_checks_sign() -> None:
    with pytest.raises(ValueError, match=re.escape("Got budget='-1', expected a positive number")):
        as_optional_float("-1", "budget", positive=True)


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), ("0.9", 0.9), (1, 1.0), (" 1e-1 ", 0.1)])
def test_as_fraction_accepts(value: object, expected: float) -> None:
    assert as_fraction(value, "p") == expected


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "Got p='1.5', expected a number in [0, 1]"),
    (-0.1, "Got p=-0.1, expected a number in [0, 1]"),
    ("most", "Got p='most', expected a number"),
])
def test_as_fraction_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        as_fraction(value, "p")


ARCHS = ["fno", "hybrid"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("None", None),
        ("", None),
        ("fno", ["fno"]),
        ("fno,hybrid", ["fno", "hybrid"]),
        (" fno , hybrid ", ["fno", "hybrid"]),
        ("['fno', 'hybrid']", ["fno", "hybrid"]),
        ('["hybrid"]', ["hybrid"]),
        ("('fno',)", ["fno"]),
        (["fno"], ["fno"]),
        (("hybrid", "fno"), ["hybrid", "fno"]),
    ],
)
def test_as_list_of_names(value: object, expected: list[str] | None) -> None:
    assert as_list(value, "architectures", allowed=ARCHS) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fnoo", "Got architectures='fnoo', expected one of ['fno', 'hybrid']"),
        ("fno,cnn", "Got architectures='cnn', expected one of ['fno', 'hybrid']"),
        (["FNO"], "Got architectures='FNO', expected one of ['fno', 'hybrid']"),
        ([], "Got architectures=[], expected a non-empty list (or None for the default)"),
        ("fno,,hybrid", "Got architectures[1]='', expected a non-empty string"),
        ("[fno]", "Got architectures='[fno]', expected a list like ['a', 'b'] or a comma-separated string a,b"),
        ("[1, 2]", "Got architectures[0]=1, expected a non-empty string"),
        (3, "Got architectures=3, expected a list or a comma-separated string"),
        ("{'fno': 1}", "Got architectures=\"{'fno': 1}\", expected one of ['fno', 'hybrid']"),
    ],
)
def test_as_list_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        as_list(value, "architectures", allowed=ARCHS)


def test_as_list_literal_that_is_not_a_list() -> None:
    with pytest.raises(ValueError, match=re.escape("Got xs='(1)', expected a list")):
        as_list("(1)", "xs", item=int)


def test_as_list_numeric_items() -> None:
    assert as_list("1, 2,3", "modes", item=int) == [1, 2, 3]
    assert as_list([12.0, "16"], "modes", item=int) == [12, 16]
    with pytest.raises(ValueError, match=re.escape("Got modes[1]='x', expected an integer")):
        as_list("1,x", "modes", item=int)


def test_as_list_rejects_unknown_item_type() -> None:
    with pytest.raises(TypeError, match="Got item=.*, expected str, int or float"):
        as_list("a", "xs", item=bytes)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("none", None),
        ("1e12,1e13", [1e12, 1e13]),
        ("[1e12, 3e12]", [1e12, 3e12]),
        ([1e12, "2e12"], [1e12, 2e12]),
        (1e12, [1e12]),
        (5, [5.0]),
        ("1e12", [1e12]),
    ],
)
def test_as_optional_float_list_accepts(value: object, expected: list[float] | None) -> None:
    assert as_optional_float_list(value, "compute_budgets") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e12,-1", "Got compute_budgets[1]=-1.0, expected a positive number"),
        ("0", "Got compute_budgets[0]=0.0, expected a positive number"),
        ("1e12,big", "Got compute_budgets[1]='big', expected a number"),
        ("1e12,nan", "Got compute_budgets[1]='nan', expected a number (finite)"),
        ("[]", "Got compute_budgets='[]', expected a non-empty list (or None for the default)"),
        (True, "Got compute_budgets=True, expected a list or a comma-separated string"),
    ],
)
def test_as_optional_float_list_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        as_optional_float_list(value, "compute_budgets")


def test_project_root_walks_up_to_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV_VAR, raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    inner = tmp_path / "notebooks" / "deep"
    inner.mkdir(parents=True)
    assert project_root(inner) == tmp_path.resolve()
    monkeypatch.chdir(inner)
    assert project_root() == tmp_path.resolve()


def test_project_root_falls_back_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV_VAR, raising=False)
    # No pyproject.toml above the filesystem root's temp folders is assumed; guard it.
    if any((p / "pyproject.toml").is_file() for p in (tmp_path, *tmp_path.parents)):
        pytest.skip("a pyproject.toml sits above the temporary folder")
    assert project_root(tmp_path) == tmp_path.resolve()


def test_project_root_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV_VAR, str(tmp_path))
    assert project_root("/") == tmp_path.resolve()


def test_as_path_resolves_against_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV_VAR, str(tmp_path))
    (tmp_path / "results").mkdir()
    assert as_path("results", "results_dir", must_exist=True) == tmp_path.resolve() / "results"
    assert as_path("outputs/new", "output_dir") == tmp_path.resolve() / "outputs" / "new"
    assert as_path(str(tmp_path / "results"), "results_dir") == tmp_path.resolve() / "results"


def test_as_path_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV_VAR, str(tmp_path))
    missing = tmp_path.resolve() / "nope"
    message = (
        f"Got results_dir='nope', expected an existing path: {str(missing)!r} does not exist "
        f"(relative paths are resolved against {str(tmp_path.resolve())!r})"
    )
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        as_path("nope", "results_dir", must_exist=True)


@pytest.mark.parametrize("value", [None, "", "  ", 3])
def test_as_path_rejects_non_paths(value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Got results_dir={value!r}, expected a path")):
        as_path(value, "results_dir")
