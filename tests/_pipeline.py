"""One tiny real sweep through find_optimal, run twice: the second call must train nothing."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fit_result import Result
from flops_fit.planning import SweepPlan
from flops_fit.results import LOG_NAME, load_results


def _outcome(call: Callable[[], Any]) -> Any:
    """The fitted parameters, or the reason the fit could not be made (tiny runs rarely bracket an optimum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # repeats, edge minima: pinned elsewhere
        try:
            result = call()
        except ValueError as exc:
            assert "could not fit the IsoFLOP laws" in str(exc), exc
            return str(exc)
    assert isinstance(result, Result) and result.method == "isoflop"
    return result.params


def plan_train_fit_resume(find: Callable[..., Any], output_dir: Path) -> tuple[SweepPlan, pd.DataFrame]:
    """``find(train=False)`` then ``find(output_dir=...)`` twice; checks every run and the resume.

    Returns the plan and the results table for example-specific checks.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan = find(train=False)
    first = _outcome(lambda: find(output_dir=output_dir))
    lines = (output_dir / LOG_NAME).read_text().count("\n")
    table = load_results(output_dir).set_index("experiment_id")
    assert len(table) == lines == plan.num_experiments
    for e in plan.experiments:
        row = table.loc[e.experiment_id]
        assert row["status"] == "ok", row["error"]
        assert row["samples_seen"] == e.train_samples  # exactly the planned samples
        assert abs(row["train_flops"] - e.compute_budget) <= e.flops_per_sample / 2
        assert np.isfinite(row["final_loss"])
    again = _outcome(lambda: find(output_dir=output_dir))
    assert (output_dir / LOG_NAME).read_text().count("\n") == lines  # nothing trained twice
    assert again == first
    return plan, table


def same_runs(folder: Path, plan: SweepPlan, size: str) -> bool:
    """Whether ``folder``'s runs are the plan's: budget, size, samples and FLOPs per sample (not the ids)."""
    key = ("compute_budget", size, "train_samples", "flops_per_sample")
    committed = [json.loads(line)["config"] for line in (folder / LOG_NAME).read_text().splitlines()]
    return sorted(tuple(c[k] for k in key) for c in committed) == sorted(tuple(c[k] for k in key)
                                                                         for c in plan.configs())
