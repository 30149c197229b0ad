"""forward_flops of the spectral layer and the fno generator against hand counts.

Convention (flops_fit.flops): 2 FLOPs per multiply-add, 5 n log2 n per complex
FFT of n points and 2.5 n log2 n per real-input / real-output one.
"""

from __future__ import annotations

import math

import pytest
import torch

from flops_fit.flops import forward_flops
from flops_fit.ptycho.layers import SpectralConv2d
from flops_fit.ptycho.models import build_model


def spectral_hand_count(cin: int, cout: int, n_rows: int, n_cols: int, m1: int, m2: int) -> float:
    """Forward FLOPs per sample of SpectralConv2d, transform by transform."""
    rfft2 = cin * 2.5 * n_rows * n_cols * math.log2(n_rows * n_cols)  # one 2-D real FFT per channel
    # Complex multiply-add (8 real FLOPs) per kept mode (2 m1 m2) per in/out pair.
    mixing = 8 * (2 * m1 * m2) * cin * cout
    row_ifft = cout * m2 * 5 * n_rows * math.log2(n_rows)  # complex, kept columns only
    col_irfft = cout * n_rows * 2.5 * n_cols * math.log2(n_cols)  # real output, every row
    return rfft2 + mixing + row_ifft + col_irfft


@pytest.mark.parametrize(
    ("cin", "cout", "n_rows", "n_cols", "m1", "m2", "batch"),
    [(2, 3, 16, 16, 4, 4, 1), (4, 4, 32, 32, 6, 7, 3), (1, 2, 8, 16, 2, 3, 2)],
)
def test_spectral_layer_matches_hand_count(
    cin: int, cout: int, n_rows: int, n_cols: int, m1: int, m2: int, batch: int
) -> None:
    layer = SpectralConv2d(cin, cout, m1, m2)
    measured = forward_flops(layer, torch.randn(batch, cin, n_rows, n_cols))
    assert measured == pytest.approx(spectral_hand_count(cin, cout, n_rows, n_cols, m1, m2))


def test_fno_matches_hand_count() -> None:
    w, m, n = 4, 3, 16
    pixels = n * n
    conv3 = 2 * 9 * w * w * pixels  # 3x3, w -> w, per sample
    expected = 2 * 9 * 1 * w * pixels + conv3  # lifter
    expected += 4 * (spectral_hand_count(w, w, n, n, m, m) + conv3)  # Fourier blocks
    expected += 2 * w * w * pixels  # 1x1 projection
    expected += 2 * conv3  # refiner
    expected += 2 * w * 2 * pixels  # 1x1 head to real / imaginary
    model = build_model("fno", modes=m, width=w, N=n)
    assert forward_flops(model, torch.rand(2, 1, n, n)) == pytest.approx(expected)
