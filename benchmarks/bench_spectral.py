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

from collections.abc import Callable

import torch
from _timing import TextbookSpectralConv2d, best_seconds
from torch import nn

from flops_fit.ptycho.layers import SpectralConv2d

BATCH, CHANNELS, GRID, M1, M2 = 16, 32, 64, 12, 13




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
