"""Generators of the grid-lines study and their spectral layer, at tiny sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flops_fit.flops import count_params
from flops_fit.ptycho.layers import ChannelsLastConv2d, SpectralConv2d, cap_modes, nchw_copy
from flops_fit.ptycho.models import ARCHITECTURES, INPUT_TRANSFORMS, build_model, to_complex


def _complex_weights(layer: SpectralConv2d) -> np.ndarray:
    """The layer's weights as complex ``(2 m1, m2, in, out)`` (kept rows, kept columns)."""
    w = layer.weight.detach().double().numpy()
    return (w[:, :, 0] + 1j * w[:, :, 1]).reshape(2 * layer.modes1, layer.modes2, *w.shape[1::2])


def _reference(layer: SpectralConv2d, x: torch.Tensor) -> np.ndarray:
    """Independent reference: full complex FFT, kept block times weights, inverse FFT, real part.

    The output is real, so its spectrum is Hermitian: every kept coefficient at
    (kr, kc) is also placed, conjugated, at (-kr, -kc), except on the zero and
    Nyquist columns, which are their own mirror.
    """
    xs = x.detach().double().numpy()
    batch, _, n_rows, n_cols = xs.shape
    w = _complex_weights(layer)
    spec = np.fft.fft2(xs)  # (B, C, H, W), complex
    out = np.zeros((batch, w.shape[-1], n_rows, n_cols), dtype=complex)
    rows = list(range(layer.modes1)) + list(range(n_rows - layer.modes1, n_rows))
    for r, kr in enumerate(rows):
        for kc in range(layer.modes2):
            value = np.einsum("bi,io->bo", spec[:, :, kr, kc], w[r, kc])
            out[:, :, kr, kc] += value
            if 0 < kc and 2 * kc != n_cols:
                out[:, :, -kr % n_rows, -kc % n_cols] += np.conj(value)
    return np.fft.ifft2(out).real


# (H, W, modes1, modes2): generic, Nyquist column kept, all rows kept, odd width, rectangular.
SPECTRAL_CASES = [(8, 8, 2, 3), (8, 8, 4, 5), (6, 7, 3, 4), (12, 10, 2, 2)]


@pytest.mark.parametrize(("n_rows", "n_cols", "m1", "m2"), SPECTRAL_CASES)
def test_spectral_conv_matches_full_fft_reference(n_rows: int, n_cols: int, m1: int, m2: int) -> None:
    torch.manual_seed(0)
    layer = SpectralConv2d(3, 2, m1, m2)
    x = torch.randn(2, 3, n_rows, n_cols)
    np.testing.assert_allclose(layer(x).detach().numpy(), _reference(layer, x), atol=1e-5)


@pytest.mark.parametrize(("n_rows", "n_cols", "m1", "m2"), SPECTRAL_CASES)
def test_spectral_conv_gradcheck_float64(n_rows: int, n_cols: int, m1: int, m2: int) -> None:
    torch.manual_seed(0)
    layer = SpectralConv2d(2, 1, m1, m2).double()
    x = torch.randn(1, 2, n_rows, n_cols, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()

    def apply(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"weight": weight}, (x,))

    assert torch.autograd.gradcheck(apply, (x, weight))


@pytest.mark.parametrize(("row_freq", "col_freq"), [(-1, 1), (-2, 0), (-1, 2), (1, 1)])
def test_negative_row_frequency_passes(row_freq: int, col_freq: int) -> None:
    # A plane wave whose rfft2 lives at row -k (index H - k). A layer keeping only the
    # positive corner (rows 0..m1-1) would zero it; with identity weights it must pass unchanged.
    n = 16
    layer = SpectralConv2d(1, 1, 3, 3)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, 0, 0, 0] = 1.0  # real part 1, imaginary 0, at every kept mode
    h, w = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    wave = torch.cos(2 * math.pi * (row_freq * h + col_freq * w) / n).float()[None, None]
    out = layer(wave)
    assert wave.abs().max() == pytest.approx(1.0)
    torch.testing.assert_close(out, wave, atol=1e-5, rtol=0)


def test_spectral_weights_count_only_kept_modes() -> None:
    layer = SpectralConv2d(3, 5, 4, 2)
    # 2 signs x 4 rows x 2 columns kept, complex (2 reals) per in/out pair.
    assert count_params(layer) == 2 * 4 * 2 * 3 * 5 * 2


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("transform", sorted(INPUT_TRANSFORMS))
@pytest.mark.parametrize("modes", [2, 4])
def test_shapes_and_backward(architecture: str, transform: str, modes: int) -> None:
    torch.manual_seed(0)
    model = build_model(architecture, modes=modes, width=4, input_transform=transform, N=16)
    x = torch.rand(2, 1, 16, 16)
    out = model(x)
    assert out.shape == (2, 2, 16, 16)
    assert out.dtype == torch.float32
    out.abs().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


def test_hybrid_caps_modes_per_level_and_allocates_only_used_weights() -> None:
    model = build_model("hybrid", modes=6, width=2, N=16)
    layers = [block.spectral for block in model.encoder] + [model.bottleneck.spectral]
    # Levels on 16, 8, 4, 2 px grids; the bottleneck (2 px) asks for 6 // 2 = 3 modes.
    expected = [(6, 6), (4, 5), (2, 3), (1, 2), (1, 2)]
    assert [(s.modes1, s.modes2) for s in layers] == expected
    assert [tuple(s.weight.shape) for s in layers] == [
        (2 * m1 * m2, 2 * 2**i, 2, 2 * 2**i) for i, (m1, m2) in enumerate(expected[:4])
    ] + [(2 * 1 * 2, 16, 2, 16)]


@pytest.mark.parametrize(("modes", "n", "expected"), [(12, 64, (12, 12)), (12, 16, (8, 9)), (3, 2, (1, 2)), (1, 9, (1, 1))])
def test_cap_modes(modes: int, n: int, expected: tuple[int, int]) -> None:
    assert cap_modes(modes, n) == expected


def test_fno_parameter_count_at_study_size() -> None:
    w, m = 32, 12
    conv3 = 9 * w * w + w
    spectral = 2 * (2 * m * m) * w * w  # both row signs, complex = 2 reals
    expected = (9 * w + w) + conv3 + 4 * (spectral + conv3) + (w * w + w) + 2 * conv3 + (2 * w + 2)
    assert count_params(build_model("fno", modes=m, width=w, N=64)) == expected == 2_425_474


def test_hybrid_parameter_count_matches_hand_count() -> None:
    w, m, n = 4, 3, 16
    chans = [w, 2 * w, 4 * w, 8 * w]
    grids = [n, n // 2, n // 4, n // 8]

    def block(c: int, modes: int, grid: int) -> int:
        m1, m2 = cap_modes(modes, grid)
        return 2 * (2 * m1 * m2) * c * c + 9 * c * c + c

    expected = (9 * w + w) + (9 * w * w + w)  # lifter
    expected += sum(block(c, m, g) for c, g in zip(chans, grids, strict=True))
    expected += sum(4 * c * 2 * c + 2 * c for c in chans[:-1])  # Conv2x2 stride 2
    expected += block(chans[-1], max(1, m // 2), grids[-1])
    expected += sum(4 * 2 * c * c + c for c in chans[:-1])  # ConvTranspose2x2
    expected += sum(9 * 2 * c * c + c + 9 * c * c + c for c in chans[:-1])  # decoder convs
    expected += 2 * w + 2
    assert count_params(build_model("hybrid", modes=m, width=w, N=n)) == expected


def test_input_transforms_match_numpy() -> None:
    x = torch.rand(3, 1, 8, 8) * 5
    xs = x.numpy().astype(np.float64)
    np.testing.assert_allclose(INPUT_TRANSFORMS["none"]()(x).numpy(), xs, rtol=1e-6)
    np.testing.assert_allclose(INPUT_TRANSFORMS["log1p"]()(x).numpy(), np.log1p(xs), rtol=1e-6)
    np.testing.assert_allclose(INPUT_TRANSFORMS["sqrt"]()(x).numpy(), np.sqrt(xs), rtol=1e-6)
    mean = xs.mean(axis=(2, 3), keepdims=True)
    var = xs.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(
        INPUT_TRANSFORMS["instancenorm"]()(x).numpy(), (xs - mean) / np.sqrt(var + 1e-5), atol=1e-5
    )


def test_to_complex() -> None:
    out = torch.arange(16.0).view(2, 2, 2, 2)
    z = to_complex(out)
    assert z.shape == (2, 2, 2) and z.dtype == torch.complex64
    torch.testing.assert_close(z.real, out[:, 0])
    torch.testing.assert_close(z.imag, out[:, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"architecture": "fnoo"}, r"Got architecture='fnoo', expected one of \['fno', 'hybrid'\]"),
        ({"input_transform": "log"},
         r"Got input_transform='log', expected one of \['instancenorm', 'log1p', 'none', 'sqrt'\]"),
        ({"modes": 0}, r"Got modes=0, expected an int >= 1"),
        ({"modes": 2.0}, r"Got modes=2.0, expected an int >= 1"),
        ({"width": -1}, r"Got width=-1, expected an int >= 1"),
        ({"width": True}, r"Got width=True, expected an int >= 1"),
        ({"N": 0}, r"Got N=0, expected an int >= 1"),
        ({"modes": 9}, r"Got modes=9 for N=16, expected at most N // 2 = 8 per sign"),
        ({"depth": 3}, r"Got unknown option\(s\) \['depth'\] for architecture='fno', expected some of \['n_blocks'\]"),
        ({"n_blocks": 0}, r"Got n_blocks=0, expected an int >= 1"),
        ({"architecture": "hybrid", "n_blocks": 2},
         r"Got unknown option\(s\) \['n_blocks'\] for architecture='hybrid', expected some of \['n_levels'\]"),
        ({"architecture": "hybrid", "n_levels": 0}, r"Got n_levels=0, expected an int >= 1"),
        ({"architecture": "hybrid", "N": 20},
         r"Got N=20 for hybrid with n_levels=4, expected a multiple of 8"),
    ],
)
def test_build_model_validation(kwargs: dict, match: str) -> None:
    args = {"architecture": "fno", "modes": 2, "width": 4, "N": 16} | kwargs
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("architecture"), **args)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 2, 2, 2), r"Got in_channels=0, expected an int >= 1"),
        ((2, 2, 2, -1), r"Got modes2=-1, expected an int >= 1"),
    ],
)
def test_spectral_conv_validation(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpectralConv2d(*args)


def test_spectral_conv_input_validation() -> None:
    layer = SpectralConv2d(2, 2, 5, 3)
    with pytest.raises(ValueError, match=r"Got input of shape \(1, 3, 16, 16\), expected \(B, 2, H, W\)"):
        layer(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"Got modes=\(5, 3\) for a 8x16 grid, which holds at most \(4, 9\)"):
        layer(torch.zeros(1, 2, 8, 16))


def test_to_complex_validation() -> None:
    with pytest.raises(ValueError, match=r"Got output of shape \(2, 3, 4, 4\), expected \(B, 2, N, N\)"):
        to_complex(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("width", [1, 3])
def test_channels_last_model_equals_nchw_model(architecture: str, width: int) -> None:
    # The layout is a speed choice only: outputs and every gradient match the NCHW model.
    torch.manual_seed(0)
    model = build_model(architecture, modes=2, width=width, N=16)
    plain = nchw_copy(model)
    assert not any(isinstance(m, ChannelsLastConv2d) for m in plain.modules())
    x = torch.rand(3, 1, 16, 16)
    outs = []
    for m in (model, plain):
        out = m(x)
        out.square().sum().backward()
        outs.append((out, {n: p.grad for n, p in m.named_parameters()}))
    (a, ga), (b, gb) = outs
    if width > 1:  # with one channel the two layouts are the same strides
        assert a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)


def test_spectral_conv_keeps_the_input_layout() -> None:
    layer = SpectralConv2d(3, 3, 2, 2)
    x = torch.rand(2, 3, 8, 8)
    assert layer(x).is_contiguous()
    nhwc = layer(x.contiguous(memory_format=torch.channels_last))
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    torch.testing.assert_close(nhwc, layer(x))
