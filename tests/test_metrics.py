"""Reconstruction metrics: perfect scores, scikit-image parity, invariances, FRC, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import uniform_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from flops_fit.metrics import (
    METRIC_KEYS,
    MS_SSIM_WEIGHTS,
    align_phase,
    complex_metrics,
    frc_crossing,
    frc_curve,
    mae,
    ms_ssim,
    phase_to_unit,
    psnr,
    ssim,
)


def _object(size: int, seed: int = 0) -> np.ndarray:
    """A smooth complex test object: amplitude 0.5..3, phase within +-1 rad."""
    rng = np.random.default_rng(seed)
    amp = 0.5 + 2.5 * uniform_filter(rng.random((size, size)), 5)
    amp = 0.5 + 2.5 * (amp - amp.min()) / (amp.max() - amp.min())
    phi = uniform_filter(rng.standard_normal((size, size)), 7) * 3
    return amp * np.exp(1j * np.clip(phi, -1, 1))


@pytest.fixture(scope="module")
def pair():
    target = _object(48)
    rng = np.random.default_rng(1)
    pred = target + 0.15 * (
        rng.standard_normal(target.shape) + 1j * rng.standard_normal(target.shape)
    )
    return pred, target


@pytest.mark.parametrize("phase_align", ["plane", "mean"])
def test_identity_gives_perfect_scores(phase_align):
    z = _object(40)
    scores = complex_metrics(z, z, phase_align=phase_align)
    assert tuple(scores) == METRIC_KEYS
    for channel in ("amp", "phase"):
        assert scores[f"mae_{channel}"] == 0 and scores[f"mse_{channel}"] == 0
        assert scores[f"psnr_{channel}"] == math.inf
        assert scores[f"ssim_{channel}"] == pytest.approx(1.0, abs=1e-12)
        assert scores[f"ms_ssim_{channel}"] == pytest.approx(1.0, abs=1e-12)
        assert scores[f"frc50_{channel}"] == scores[f"frc1over7_{channel}"] == 20.0  # Nyquist


def test_parity_with_scikit_image(pair):
    pred, target = pair
    scores = complex_metrics(pred, target)
    amp_t = np.abs(target)
    amp_p = np.abs(pred) * amp_t.mean() / np.abs(pred).mean()
    span = amp_t.max() - amp_t.min()
    expected_ssim = structural_similarity(amp_t, amp_p, win_size=7, data_range=span)
    assert scores["ssim_amp"] == pytest.approx(expected_ssim, abs=1e-6)
    assert scores["psnr_amp"] == pytest.approx(
        peak_signal_noise_ratio(amp_t, amp_p, data_range=span), abs=1e-6
    )
    phi_t, phi_p = align_phase(np.angle(target)), align_phase(np.angle(pred))
    expected_phase = structural_similarity(
        (phi_t + np.pi) / (2 * np.pi), (phi_p + np.pi) / (2 * np.pi), win_size=7, data_range=1.0
    )
    assert scores["ssim_phase"] == pytest.approx(expected_phase, abs=1e-6)
    assert scores["mae_phase"] == pytest.approx(np.abs(phi_p - phi_t).mean(), abs=1e-12)
    assert scores["mse_amp"] == pytest.approx(((amp_p - amp_t) ** 2).mean(), abs=1e-12)
    assert 0.3 < scores["ssim_amp"] < 0.99 and 0.3 < scores["ssim_phase"] < 0.99


def test_psnr_conventions(pair):
    pred, target = pair
    default = complex_metrics(pred, target)
    reference = complex_metrics(pred, target, psnr_convention="reference")
    phi_t = align_phase(np.angle(target))
    for channel, span in (("amp", np.ptp(np.abs(target))), ("phase", np.ptp(phi_t))):
        mse = default[f"mse_{channel}"]
        assert default[f"psnr_{channel}"] == pytest.approx(10 * math.log10(span**2 / mse))
        assert reference[f"psnr_{channel}"] == pytest.approx(10 * math.log10(255**2 / mse))
        assert 40 < reference[f"psnr_{channel}"] < 90  # the reference's 55-86 dB regime
    same = {k: v for k, v in default.items() if not k.startswith("psnr")}
    assert same == {k: v for k, v in reference.items() if not k.startswith("psnr")}


def _ms_ssim_by_hand(x: np.ndarray, y: np.ndarray, data_range: float, levels: int) -> float:
    """Independent MS-SSIM (Wang et al. 2003) with the 7 x 7 uniform window, sample covariance."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    weights = np.array(MS_SSIM_WEIGHTS[:levels]) / sum(MS_SSIM_WEIGHTS[:levels])
    out = 1.0
    for j in range(levels):
        mx, my = uniform_filter(x, 7), uniform_filter(y, 7)
        norm = 49 / 48
        vx = norm * (uniform_filter(x * x, 7) - mx * mx)
        vy = norm * (uniform_filter(y * y, 7) - my * my)
        cxy = norm * (uniform_filter(x * y, 7) - mx * my)
        cs = (2 * cxy + c2) / (vx + vy + c2)
        lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
        term = (cs if j < levels - 1 else lum * cs)[3:-3, 3:-3].mean()
        out *= max(term, 0) ** weights[j]
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return out


@pytest.mark.parametrize(("size", "levels"), [(32, 3), (56, 4), (112, 5), (125, 5)])
def test_ms_ssim_matches_independent_implementation(size, levels):
    target = np.abs(_object(size, seed=2))
    pred = target + 0.2 * np.random.default_rng(3).standard_normal(target.shape)
    span = float(np.ptp(target))
    expected = _ms_ssim_by_hand(pred, target, span, levels)
    assert ms_ssim(pred, target, data_range=span) == pytest.approx(expected, abs=1e-6)
    assert 0.1 < expected < 1


def test_ms_ssim_identity_and_clamp():
    im = np.abs(_object(64))
    assert ms_ssim(im, im, data_range=float(np.ptp(im))) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(-im, im, data_range=float(np.ptp(im))) == 0.0  # anticorrelated: cs < 0


def test_phase_plane_leaves_plane_aligned_metrics_unchanged(pair):
    pred, target = pair
    rows, cols = np.indices(pred.shape)
    tilted = pred * np.exp(1j * (0.3 + 0.01 * rows - 0.015 * cols))  # stays within one wrap
    before, after = complex_metrics(pred, target), complex_metrics(tilted, target)
    for key in METRIC_KEYS:
        assert after[key] == pytest.approx(before[key], rel=1e-9, abs=1e-12), key
    # mean alignment removes a constant only
    shifted = complex_metrics(pred * np.exp(0.4j), target, phase_align="mean")
    mean_aligned = complex_metrics(pred, target, phase_align="mean")
    assert shifted["ssim_phase"] == pytest.approx(mean_aligned["ssim_phase"], rel=1e-9)
    assert complex_metrics(tilted, target, phase_align="mean")["mae_phase"] > before["mae_phase"]


def test_amplitude_scale_leaves_metrics_unchanged(pair):
    pred, target = pair
    before, after = complex_metrics(pred, target), complex_metrics(3.7 * pred, target)
    for key in METRIC_KEYS:
        assert after[key] == pytest.approx(before[key], rel=1e-9, abs=1e-12), key


def test_align_phase_removes_planes_and_means():
    rows, cols = np.indices((20, 30))
    np.testing.assert_allclose(align_phase(0.5 + 0.02 * rows - 0.01 * cols), 0, atol=1e-12)
    np.testing.assert_allclose(align_phase(np.full((5, 5), 2.0), "mean"), 0, atol=1e-15)
    assert phase_to_unit(np.array([-np.pi, 0, np.pi])).tolist() == [0.0, 0.5, 1.0]


def test_frc_curve_matches_direct_sum():
    rng = np.random.default_rng(4)
    a, b = rng.random((12, 12)), rng.random((12, 12))
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    num, pa, pb = np.zeros(7), np.zeros(7), np.zeros(7)
    for i in range(12):
        for j in range(12):
            ky, kx = (i if i < 6 else i - 12), (j if j < 6 else j - 12)
            k = round(math.hypot(ky, kx))
            if k <= 6:
                num[k] += (fb[i, j] * np.conj(fa[i, j])).real
                pa[k] += abs(fa[i, j]) ** 2
                pb[k] += abs(fb[i, j]) ** 2
    np.testing.assert_allclose(frc_curve(a, b), num / np.sqrt(pa * pb), rtol=1e-10)


def test_frc_of_identical_images_never_crosses():
    im = np.abs(_object(36))
    curve = frc_curve(im, im)
    np.testing.assert_allclose(curve, 1.0, rtol=1e-12)
    assert frc_crossing(curve, 0.5) == frc_crossing(curve, 1 / 7) == 18.0


def test_frc_of_independent_noise_crosses_early():
    rng = np.random.default_rng(5)
    curve = frc_curve(rng.random((64, 64)), rng.random((64, 64)))
    assert frc_crossing(curve, 0.5) < 2


@pytest.mark.parametrize(
    ("curve", "threshold", "expected"),
    [
        ([1.0, 0.9, 0.6, 0.4, 0.1], 0.5, 2.5),
        ([1.0, 0.9, 0.6, 0.4, 0.1], 1 / 7, 3 + (0.4 - 1 / 7) / 0.3),
        ([np.nan, 0.2, 0.9, 0.9], 0.5, (1 - 0.5) / (1 - 0.2)),  # ring 0 counts as 1
        ([1.0, 0.8, np.nan, 0.7], 0.5, 3.0),  # NaN ring skipped, never below
        ([1.0, np.nan, np.nan], 0.5, math.nan),
    ],
)
def test_frc_crossing_interpolates(curve, threshold, expected):
    got = frc_crossing(np.array(curve), threshold)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_constant_target_channel_gives_nan():
    rng = np.random.default_rng(6)
    target = np.full((16, 16), 2.0 + 0j)  # constant amplitude, zero phase
    pred = target + 0.1 * rng.standard_normal((16, 16))
    scores = complex_metrics(pred, target)
    assert math.isnan(scores["psnr_amp"]) and math.isnan(scores["ssim_amp"])
    assert math.isnan(scores["ms_ssim_amp"]) and math.isnan(scores["frc50_amp"])
    assert math.isnan(scores["psnr_phase"]) and not math.isnan(scores["ssim_phase"])


def test_single_metric_functions():
    a = np.arange(64.0).reshape(8, 8)
    assert mae(a + 1, a) == 1.0
    assert psnr(a + 1, a, data_range=63.0) == pytest.approx(20 * math.log10(63))
    assert ssim(a, a, data_range=63.0) == 1.0


@pytest.mark.parametrize(
    ("pred", "target", "kwargs", "match"),
    [
        (
            np.ones((8, 8), complex),
            np.ones((8, 9), complex),
            {},
            r"Got pred of shape \(8, 8\) and target of shape \(8, 9\), expected the same shape",
        ),
        (
            np.ones((8, 8)),
            np.ones((8, 8), complex),
            {},
            r"Got pred of dtype float64 with shape \(8, 8\), expected a complex 2-D array",
        ),
        (
            np.ones((8, 8), complex),
            np.ones((2, 8, 8), complex),
            {},
            r"Got target of dtype complex128 with shape \(2, 8, 8\), expected a complex 2-D array",
        ),
        (
            np.ones((6, 8), complex),
            np.ones((6, 8), complex),
            {},
            r"Got images of shape \(6, 8\), expected at least 7 x 7 px",
        ),
        (
            np.full((8, 8), np.nan, complex),
            np.ones((8, 8), complex),
            {},
            r"pred has non-finite values",
        ),
        (
            np.ones((8, 8), complex),
            np.ones((8, 8), complex),
            {"phase_align": "planar"},
            r"Got phase_align='planar', expected one of \['mean', 'plane'\]",
        ),
        (
            np.ones((8, 8), complex),
            np.ones((8, 8), complex),
            {"psnr_convention": "cv2"},
            r"Got psnr_convention='cv2', expected one of \['data_range', 'reference'\]",
        ),
    ],
)
def test_complex_metrics_validation(pred, target, kwargs, match):
    with pytest.raises(ValueError, match=match):
        complex_metrics(pred, target, **kwargs)


def test_single_metric_validation():
    a = np.ones((8, 8))
    with pytest.raises(ValueError, match=r"Got pred of shape .* expected the same shape"):
        mae(a, np.ones((8, 7)))
    with pytest.raises(ValueError, match=r"Got pred of dtype complex128 .* expected a real 2-D array"):
        ssim(a + 0j, a, data_range=1.0)
    with pytest.raises(ValueError, match=r"Got data_range=0, expected a finite number > 0"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match=r"Got images of shape \(5, 5\), expected at least 7 x 7 px"):
        ms_ssim(np.ones((5, 5)), np.ones((5, 5)), data_range=1.0)
    with pytest.raises(
        ValueError, match=r"Got a curve of shape \(1,"
    ):
        frc_crossing(np.ones(1), 0.5)
    with pytest.raises(ValueError, match=r"Got phase_align='median'"):
        align_phase(a, "median")
