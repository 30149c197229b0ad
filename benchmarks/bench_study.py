"""The light FNO study end to end: wall time against its 90 s goal, and quality against baselines.

Runs ``run_study(light=True)`` with its defaults in a fresh folder (simulation
included), then scores two baselines on the same test object:

* the same architecture untrained (what training must beat), and
* a constant object (the mean amplitude, zero phase): phase SSIM on phase
  mapped to [0, 1] with data range 1 is high even for a flat phase, so this
  is the floor a phase SSIM should be read against.

Prints the wall time as a ratio to the 90 s goal and the metrics side by side.

    python benchmarks/bench_study.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flops_fit.metrics import complex_metrics
from flops_fit.ptycho import experiment, study
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import stitch
from flops_fit.ptycho.train import InputScale, input_scale

GOAL_S = 90.0
KEYS = ["ssim_phase", "psnr_phase", "mae_phase", "ssim_amp", "psnr_amp", "frc50_phase", "final_test_loss"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        csv = study.run_study(Path(tmp) / "light", light=True, progress=False)
        wall = time.perf_counter() - start
        row = pd.read_csv(csv).iloc[0]
        data = load_or_simulate(GridLinesConfig.light(), Path(tmp) / "light" / "data_cache")

    torch.manual_seed(0)
    untrained = InputScale(build_model("fno", modes=12, width=32), input_scale(data.train.X))
    base = experiment.evaluate(untrained, data)
    _, truth = stitch(data.test.Y, data.test)
    flat = complex_metrics(np.full_like(truth, np.abs(truth).mean()), truth)

    print(f"light study: {row['train_samples']:.0f} samples, train {row['train_time_s']:.1f} s, "
          f"wall {wall:.1f} s (goal {GOAL_S:.0f} s): ratio {wall / GOAL_S:.2f}")
    print(f"  {row['model_params']:,.0f} parameters, {row['flops_per_sample'] / 1e6:.0f} MFLOP forward/sample, "
          f"{3 * row['flops_per_sample'] * row['train_samples'] / row['train_time_s'] / 1e9:.1f} GFLOP/s in training, "
          f"inference {row['inference_time_s'] * 1e3:.2f} ms/sample")
    print(f"  {'metric':16s} {'trained':>9s} {'untrained':>9s} {'constant':>9s}")
    for key in KEYS:
        const = flat.get(key, float("nan"))
        print(f"  {key:16s} {row[key]:9.3f} {base[key]:9.3f} {const:9.3f}")


if __name__ == "__main__":
    main()
