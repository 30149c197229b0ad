"""Synthetic results tables and plot readers shared by the Pareto and explorer tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["pairs", "points", "synthetic_results"]


def synthetic_results(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small synthetic FNO results table with two failed runs."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "architecture": rng.choice(["fno", "hybrid"], n),
        "fno_input_transform": rng.choice(["none", "log", "sqrt"], n),
        "fno_modes": rng.choice([4, 8], n),
        "fno_width": rng.choice([4, 8], n),
        "model_params": np.round(10 ** rng.uniform(3, 6, n)),
        "inference_time_s": 10 ** rng.uniform(-4, -2, n),
        "train_flops": 10 ** rng.uniform(9, 12, n),
        "ssim_phase": np.round(rng.uniform(0.3, 0.95, n), 2),
        "mae_phase": rng.uniform(0.05, 0.5, n),
        "status": "ok",
    })
    df.loc[[3, 7], ["ssim_phase", "mae_phase", "inference_time_s"]] = np.nan
    df.loc[[3, 7], "status"] = "failed"
    return df


def points(ax, gid: str) -> set[tuple[float, float]]:
    pts = [c.get_offsets() for c in ax.collections if c.get_gid() == gid]
    return {tuple(map(float, p)) for arr in pts for p in np.asarray(arr)}


def pairs(df: pd.DataFrame, x: str, y: str) -> set[tuple[float, float]]:
    return set(zip(df[x].astype(float), df[y].astype(float), strict=True))
