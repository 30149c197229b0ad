"""Shared pieces of the spectral-layer benchmarks: a textbook reference layer and a fair timer."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["TextbookSpectralConv2d", "best_seconds"]


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
        fn()  # warm-up
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
