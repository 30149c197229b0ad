"""forward_flops and count_params against hand counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flops_fit.flops import count_params, fft_flops, forward_flops, train_flops


@pytest.mark.parametrize(("cin", "cout", "k", "hw", "batch"), [(1, 4, 3, 8, 1), (3, 5, 3, 16, 4), (2, 2, 1, 5, 2)])
def test_conv_matches_hand_count(cin: int, cout: int, k: int, hw: int, batch: int) -> None:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    # One multiply-add (2 FLOPs) per weight per output pixel.
    expected = 2 * cin * cout * k * k * hw * hw
    assert forward_flops(conv, torch.randn(batch, cin, hw, hw)) == expected


def test_conv_differs_from_six_n_rule() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    per_sample = forward_flops(conv, torch.randn(1, 4, 32, 32))
    # Weights are reused at all 32x32 pixels, so 2N per sample undercounts by 1024x.
    assert per_sample == 2 * count_params(conv) * 32 * 32


class _RoundTrip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:])


class _ComplexFFT(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x.to(torch.complex64)).real


@pytest.mark.parametrize("n", [8, 16, 32])
def test_real_fft_pair_counts_half_of_complex(n: int) -> None:
    x = torch.randn(2, 3, n, n)
    points = n * n
    # 3 channels per sample, one rfft2 and one irfft2 each at 2.5 n log2 n.
    assert forward_flops(_RoundTrip(), x) == pytest.approx(3 * 2 * 2.5 * points * math.log2(points))
    assert forward_flops(_ComplexFFT(), x) == pytest.approx(3 * 5 * points * math.log2(points))


class _ComplexLinear(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(cin, cout, dtype=torch.complex64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,io->bo", x.to(torch.complex64), self.w).real


def test_complex_matmul_is_four_real_ones() -> None:
    layer = _ComplexLinear(4, 5)
    # A complex multiply-add is 8 real FLOPs.
    assert forward_flops(layer, torch.randn(3, 4)) == 8 * 4 * 5
    assert count_params(layer) == 2 * 4 * 5


def test_count_params_skips_frozen() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    model[0].weight.requires_grad_(False)
    assert count_params(model) == 3 * 2 * 0 + 2 + 2 * 2 + 2


def test_forward_flops_restores_training_mode() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    forward_flops(model, torch.randn(1, 2))
    assert model.training


@pytest.mark.parametrize(
    ("bad", "match"),
    [(3.0, r"Got sample_input of type float, expected a batched tensor"),
     ((), r"Got sample_input of type tuple, expected a batched tensor"),
     (torch.zeros(0, 2), r"sample_input has an empty batch \(shape \(0, 2\)\)")],
)
def test_forward_flops_rejects_bad_input(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forward_flops(nn.Linear(2, 2), bad)  # type: ignore[arg-type]


def test_fft_and_train_flops_scalars() -> None:
    assert fft_flops(1) == 0.0
    assert fft_flops(1024) == 5 * 1024 * 10
    assert fft_flops(1024, real=True) == 2.5 * 1024 * 10
    assert train_flops(100.0, 7) == 2100.0


class _Attention(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_counts_both_matmuls_on_every_device(device: str) -> None:
    batch, heads, t, d = 2, 3, 16, 8
    q = torch.randn(batch, heads, t, d, device=device)
    # Q K^T and A V: 2·t·t·d FLOPs each per head, no saving for the causal mask.
    assert forward_flops(_Attention(), q) == heads * 2 * (2 * t * t * d)
