"""Simulation throughput against the bare batched FFT of the same shapes.

Run: ``python benchmarks/bench_simulate.py [--repeats 3]`` (about a minute). Prints, per config,
patterns/s of ``simulate`` (with and without Poisson noise) and of two bounds
measured in the same process on the same shapes:

- ``fft``: ``torch.fft.fft2`` of complex64 ``(n, N, N)`` (the transform the simulator uses);
- ``fft+poisson``: that FFT plus numpy's Poisson draw of an ``(n, N, N)`` float64 array
  (the noise the physics requires; it costs several FFTs).

Goal: ``simulate / fft >= 0.5``. Timings are minima over repeats (shared machine).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.probe import ideal_disk_probe
from flops_fit.ptycho.simulate import simulate


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(name: str, cfg: GridLinesConfig, repeats: int) -> None:
    n = cfg.n_patches("train") + cfg.n_patches("test")
    rng = np.random.default_rng(0)
    psi = torch.from_numpy(
        (
            rng.standard_normal((n, cfg.N, cfg.N)) + 1j * rng.standard_normal((n, cfg.N, cfg.N))
        ).astype(np.complex64)
    ) * torch.from_numpy(ideal_disk_probe(cfg.N))
    lam = (torch.fft.fft2(psi, norm="ortho").abs() ** 2).double().numpy()
    lam *= cfg.nphotons / lam.sum(axis=(1, 2)).mean()  # the simulator's photon budget

    t_fft = best_time(lambda: torch.fft.fft2(psi, norm="ortho"), repeats)
    t_poisson = best_time(lambda: rng.poisson(lam), repeats)
    t_sim = best_time(lambda: simulate(cfg), repeats)
    t_clean = best_time(lambda: simulate(cfg.replace(poisson=False)), repeats)

    def rate(t: float) -> str:
        return f"{n / t:>10,.0f} patterns/s ({t * 1e3:7.1f} ms)"

    print(f"\n{name}: {n} patterns of {cfg.N} x {cfg.N}, torch threads {torch.get_num_threads()}")
    print(f"  bare fft2                   {rate(t_fft)}")
    print(f"  poisson draw                {rate(t_poisson)}")
    print(f"  simulate (poisson)          {rate(t_sim)}")
    print(f"  simulate (noiseless)        {rate(t_clean)}")
    print(f"  ratio simulate/fft          {t_fft / t_sim:.3f}   (goal >= 0.5)")
    print(f"  ratio noiseless/fft         {t_fft / t_clean:.3f}")
    print(f"  ratio simulate/(fft+poisson) {(t_fft + t_poisson) / t_sim:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench("light preset", GridLinesConfig.light(), args.repeats)
    # many patterns per object: the FFT-bound regime of the reference scan
    bench("reference scan, N=64 size=392 strides 4/10", GridLinesConfig(), args.repeats)


if __name__ == "__main__":
    main()
