"""The conda environment and pyproject.toml must name the same packages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"pytorch": "torch"}
# Extras that environment.yml deliberately leaves out (comparison benchmarks only).
EXCLUDED_EXTRAS = {"bench"}


def _name(requirement: str) -> str:
    """Package name of a requirement string, lower case, extras and versions dropped."""
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra not in EXCLUDED_EXTRAS:
            reqs += items
    names = {_name(r) for r in reqs}
    # dask[distributed] brings the `distributed` package, which conda lists on its own.
    if any(r.replace(" ", "").startswith("dask[distributed]") for r in reqs):
        names.add("distributed")
    return names


def _conda_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = _name(dep)
            names.add(CONDA_TO_PYPI.get(name, name))
    return names - {"python", "pip"}


def test_environment_yml_matches_pyproject() -> None:
    pyproject, conda = _pyproject_packages(), _conda_packages()
    assert conda == pyproject, (
        f"only in environment.yml: {sorted(conda - pyproject)}; "
        f"only in pyproject.toml: {sorted(pyproject - conda)}"
    )


def test_environment_yml_installs_the_package_editable() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections and any(line.startswith("-e .") for line in pip_sections[0])


@pytest.mark.parametrize("pin", ["torch==2.13.0"])
def test_constraints_pin_the_cpu_torch(pin: str) -> None:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    assert pin in lines


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and re.search(r"^make test$", ci, re.M)
