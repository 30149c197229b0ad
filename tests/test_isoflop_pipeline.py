"""Plan -> run -> fit on a known loss surface: the IsoFLOP pipeline recovers it.

The FNO IsoFLOP plan is real (measured, FFT-aware FLOPs of ``fno`` widths); each
experiment's "training" returns the loss of a Chinchilla-form surface at the
planned N and D instead, so the fit must give back the surface's parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _reference import CHINCHILLA

from flops_fit.ptycho import study
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.runner import run_sweep
from flops_fit.scaling import fit_parametric

TRUTH = CHINCHILLA  # Hoffmann et al. (2022), Approach 3 estimates
TINY = GridLinesConfig(N=16, size=48, nlines=40, train_stride=2, test_stride=4)


def surface(n: float, d: float) -> float:
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]


def surface_run(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, float]:
    return {"final_test_loss": surface(config["model_params"], config["train_samples"])}


def test_fit_of_an_fno_isoflop_plan_recovers_the_surface(tmp_path: Path) -> None:
    plan = study.isoflop_plan([1e9, 1e10, 1e11, 1e12], data=TINY, modes=4,
                              widths=[2, 3, 4, 6, 8, 12, 16], num_sizes_per_budget=5)
    df = run_sweep(plan, surface_run, tmp_path, progress=False)
    assert (df["status"] == "ok").all() and len(df) == plan.num_experiments >= 16
    # The plan's own D and C: training FLOPs of every experiment hit its budget.
    assert np.allclose(df["train_samples"] * df["flops_per_sample"], df["compute_budget"], rtol=1e-2)
    fit = fit_parametric(df["model_params"], df["train_samples"], df["final_test_loss"])
    for name, value in TRUTH.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), name
