"""Suite-wide settings, and the light study the notebook tests share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest
import torch
from _models import MLP

from flops_fit.notebook import ROOT_ENV_VAR
from flops_fit.planning import SweepPlan, plan_sweep

matplotlib.use("Agg")  # headless: no display in CI

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.py runs these on one)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tensors in the tests are tiny: OpenMP fan-out costs more than it saves,
    # and on a busy machine every parallel region can stall for a scheduler slice.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_planning(monkeypatch):
    """Planning must not start while any input is bad: find_optimal's plan_sweep raises if reached."""

    def boom(*args, **kwargs):
        raise AssertionError("planning started before validation finished")

    monkeypatch.setattr("flops_fit.api.plan_sweep", boom)


@pytest.fixture(scope="module")
def mlp_plan() -> SweepPlan:
    return plan_sweep(MLP, "width", {"in_features": 4}, [1e6, 1e7, 1e8])


@dataclass(frozen=True)
class LightStudy:
    """What the README's papermill command left: its project root, results folder, notebook."""

    root: Path  # FLOPS_FIT_ROOT of the run: relative notebook paths start here
    outputs: Path  # <root>/outputs/fno_study, the notebook's default output_dir
    notebook: Path  # the executed out.ipynb
    wall_s: float
    stderr: str


@pytest.fixture(scope="session")
def light_study(tmp_path_factory: pytest.TempPathFactory) -> LightStudy:
    """Run ``papermill notebooks/fno_study.ipynb out.ipynb -p light true`` once per session.

    It runs from the repository root exactly as typed, with ``FLOPS_FIT_ROOT``
    pointing at a temporary folder, so the notebook's default ``output_dir``
    ("outputs/fno_study", relative to the project root) lands there;
    ``out.ipynb`` is written to the repository root as typed (it is
    git-ignored) and moved into the temporary folder afterwards (a user's own
    ``out.ipynb`` is put back). The notebook tests, the explore chain and the
    browser test all read this one run (the light study, about a minute and
    a half on 2 CPU cores).
    """
    root = tmp_path_factory.mktemp("light_study")
    out, backup, executed = REPO / "out.ipynb", root / "out.ipynb.before", root / "out.ipynb"
    if out.exists():
        shutil.move(out, backup)
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("papermill")), "notebooks/fno_study.ipynb",
             "out.ipynb", "-p", "light", "true"],
            cwd=REPO, env={**os.environ, ROOT_ENV_VAR: str(root)}, capture_output=True, text=True,
            timeout=900,
        )
        wall = time.perf_counter() - start
        if out.exists():
            shutil.move(out, executed)
    finally:
        if backup.exists():
            shutil.move(backup, out)
    if proc.returncode != 0:
        pytest.fail(f"the README's papermill command failed:\n{proc.stderr[-4000:]}")
    return LightStudy(root, root / "outputs" / "fno_study", executed, wall, proc.stderr)
