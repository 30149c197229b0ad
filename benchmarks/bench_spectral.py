"""Forward+backward speed of SpectralConv2d against neuraloperator and a textbook layer.

Setting (from the models issue): 32 channels in and out, 64x64 grid, batch 16,
24 x 13 kept modes (rows 0..11 and -12..-1, columns 0..12), which is
neuraloperator's ``SpectralConv(32, 32, n_modes=(24, 24))``.

References measured in this process, interleaved round by round (the best
round of each counts, so load from other users of the machine penalises
everyone alike):

* neuraloperator's ``SpectralConv`` (optional: install with
  ``pip install -e '.[bench]'``; the comparison is skipped when it is absent),
* the textbook layer of Li et al. (2021): ``rfft2``, two complex einsums on the
  positive and negative row corners, ``irfft2``.

Runs once with one thread and once with all threads, since on a shared
2-core machine OpenMP barriers can make two threads slower than one.

Usage: ``python benchmarks/bench_spectral.py``
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from flops_fit.ptycho.layers import SpectralConv2d

BATCH, CHANNELS, GRID, M1, M2 = 16, 32, 64, 12, 13


class TextbookSpectralConv2d(nn.Module):
    """Li et al. (2021) reference layer: complex einsum per corner, full-size output spectrum."""

    def __init__(self, cin: int, cout: int, m1: int, m2: int) -> None:
        super().__init__()
        scale = 1.0 / (cin * cout)
        self.m1, self.m2, self.cout = m1, m2, cout
        self.w1 = nn.Parameter(scale * torch.rand(cin, cout, m1, m2, dtype=torch.cfloat))
        self.w2 = nn.Parameter(scale * torch.rand(cin, cout, m1, m2, dtype=torch.cfloat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x_ft = torch.fft.rfft2(x)
        out = torch.zeros(b, self.cout, h, w // 2 + 1, dtype=torch.cfloat)
        out[:, :, : self.m1, : self.m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, : self.m1, : self.m2], self.w1)
        out[:, :, -self.m1 :, : self.m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, -self.m1 :, : self.m2], self.w2)
        return torch.fft.irfft2(out, s=(h, w))


def best_seconds(fns: dict[str, Callable[[], object]], *, rounds: int = 5, min_time: float = 0.3) -> dict[str, float]:
    """Best time per call of each function over interleaved rounds of at least ``min_time`` s."""
    reps = {}
    for name, fn in fns.items():
        fn()  # warm-up (plans, allocator)
        start = time.perf_counter()
        fn()
        reps[name] = max(1, int(min_time / max(time.perf_counter() - start, 1e-6)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / reps[name])
    return best


def forward_backward(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    grad = torch.randn(x.shape[0], CHANNELS, *x.shape[2:])

    def step() -> None:
        x.grad = None
        layer(x).backward(grad)

    return step


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, CHANNELS, GRID, GRID, requires_grad=True)
    layers: dict[str, nn.Module] = {
        "flops_fit SpectralConv2d": SpectralConv2d(CHANNELS, CHANNELS, M1, M2),
        "textbook (Li et al.)": TextbookSpectralConv2d(CHANNELS, CHANNELS, M1, M2),
    }
    try:
        from neuralop.layers.spectral_convolution import SpectralConv
    except ImportError:
        print("neuraloperator not installed (pip install -e '.[bench]'): skipping that comparison")
    else:
        layers["neuraloperator SpectralConv"] = SpectralConv(CHANNELS, CHANNELS, n_modes=(2 * M1, 2 * (M2 - 1)))
    print(f"forward+backward, batch {BATCH}, {CHANNELS} channels, {GRID}x{GRID}, {2 * M1}x{M2} modes")
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        times = best_seconds({name: forward_backward(layer, x) for name, layer in layers.items()})
        ours = times["flops_fit SpectralConv2d"]
        print(f"\n{threads} thread(s)")
        for name, seconds in times.items():
            print(f"  {name:28s} {BATCH / seconds:8.1f} samples/s   speed ratio ours/this {seconds / ours:5.2f}")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
