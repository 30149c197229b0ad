"""The light FNO study end to end: wall time against its 90 s goal, quality against its floors.

Runs ``run_study(light=True)`` with its defaults in a fresh folder (simulation
included) and reads every run against two references on the same test object:

* the learn-nothing floor, ``baseline.json`` (the mean training patch predicted
  everywhere): the study's goal is every light run at least 0.04 phase SSIM and
  3 dB phase PSNR above it;
* the same architecture untrained (what training must beat).

Prints each run's metrics and margins over the floor, and the wall time as a
ratio to the 90 s goal (machines are noisy: read the ratio on free cores).

    python benchmarks/bench_study.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from flops_fit.ptycho import experiment, study
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.fitting import InputScale, input_scale
from flops_fit.ptycho.models import build_model

GOAL_S = 90.0
MARGINS = {"ssim_phase": 0.04, "psnr_phase": 3.0}  # required gain over the floor


def run_once(folder: Path) -> tuple[float, pd.DataFrame, dict]:
    start = time.perf_counter()
    csv = study.run_study(folder, light=True, progress=False)
    wall = time.perf_counter() - start
    return wall, pd.read_csv(csv), json.loads((folder / "baseline.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="fresh runs (simulation included)")
    args = parser.parse_args()
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            wall, df, floor = run_once(Path(tmp) / f"light{i}")
            walls.append(wall)
            print(f"run {i}: wall {wall:.1f} s = {wall / GOAL_S:.2f} of the {GOAL_S:.0f} s goal "
                  f"({df['train_time_s'].sum():.1f} s training)")
        data = load_or_simulate(GridLinesConfig.light(), Path(tmp) / "light0" / "data_cache")

    print(f"\n{'run':12s} {'params':>9s} {'samples':>8s} {'train s':>8s} {'SSIM':>6s} {'dSSIM':>6s} "
          f"{'PSNR':>6s} {'dPSNR':>6s} {'MAE':>6s} {'amp SSIM':>8s} {'untrained SSIM':>14s}  ok?")
    for _, row in df.sort_values("model_params").iterrows():
        torch.manual_seed(0)
        untrained = InputScale(
            build_model(row["architecture"], modes=int(row["fno_modes"]), width=int(row["fno_width"]),
                        N=data.train.N),
            input_scale(data.train.X),
        )
        base = experiment.evaluate(untrained, data)
        d_ssim = row["ssim_phase"] - floor["ssim_phase"]
        d_psnr = row["psnr_phase"] - floor["psnr_phase"]
        ok = d_ssim >= MARGINS["ssim_phase"] and d_psnr >= MARGINS["psnr_phase"]
        print(f"{row['architecture'] + ' w' + str(row['fno_width']):12s} {row['model_params']:9,.0f} "
              f"{row['train_samples']:8.0f} {row['train_time_s']:8.1f} {row['ssim_phase']:6.3f} "
              f"{d_ssim:+6.3f} {row['psnr_phase']:6.2f} {d_psnr:+6.2f} {row['mae_phase']:6.3f} "
              f"{row['ssim_amp']:8.3f} {base['ssim_phase']:14.3f}  {'yes' if ok else 'NO'}")
    print(f"{'floor':12s} {'':9s} {'':8s} {'':8s} {floor['ssim_phase']:6.3f} {'':6s} "
          f"{floor['psnr_phase']:6.2f} {'':6s} {floor['mae_phase']:6.3f} {floor['ssim_amp']:8.3f}")
    print(f"\nwall time over {len(walls)} run(s): {', '.join(f'{w:.1f}' for w in walls)} s; "
          f"best {min(walls) / GOAL_S:.2f} of the goal")


if __name__ == "__main__":
    main()
