"""Quality of a complex reconstruction against its ground truth.

:func:`complex_metrics` scores the amplitude and the phase of a complex 2-D
image against a target of the same shape and returns one flat dict:

============================  ==========================================================
key                           meaning
============================  ==========================================================
``mae_amp``, ``mse_amp``      mean absolute / squared error of the amplitude, in the
                              target's units, after scaling the predicted amplitude to
                              the target's mean
``mae_phase``, ``mse_phase``  same for the phase, rad, after aligning both phases
                              (least-squares plane or mean removed from each)
``psnr_amp``, ``psnr_phase``  PSNR, dB. Default (``psnr_convention="data_range"``): the
                              peak is the target channel's own range (max - min; rad for
                              the phase). ``"reference"``: peak 255 on the same images,
                              the convention of the reference code (values of 55-86 dB)
``ssim_amp``                  SSIM (scikit-image, 7 x 7 window, sample covariance),
                              ``data_range`` = target amplitude range
``ssim_phase``                SSIM of the aligned phase mapped to ``(phi + pi) / 2 pi``,
                              ``data_range`` = 1
``ms_ssim_amp``, ``_phase``   multi-scale SSIM (Wang et al. 2003), same images and ranges
``frc50_*``, ``frc1over7_*``  first crossing of the Fourier ring correlation with 0.5 and
                              1/7, linearly interpolated, in rings (ring k is spatial
                              frequency k / min(H, W) cycles/px); ``min(H, W) // 2``
                              (Nyquist) when the curve never crosses
============================  ==========================================================

A constant target channel has no range and no spatial frequencies: its PSNR,
SSIM, MS-SSIM (amplitude) and FRC entries are NaN.

References
----------
Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility
to structural similarity", IEEE TIP 13, 600 (2004).
Wang, Simoncelli & Bovik, "Multiscale structural similarity for image quality
assessment", 37th Asilomar Conf. Signals, Systems and Computers (2003).
van Heel & Schatz, "Fourier shell correlation threshold criteria", J. Struct.
Biol. 151, 250 (2005).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = [
    "METRIC_KEYS",
    "MS_SSIM_WEIGHTS",
    "SSIM_WIN_SIZE",
    "align_phase",
    "complex_metrics",
    "frc_crossing",
    "frc_curve",
    "mae",
    "ms_ssim",
    "mse",
    "phase_to_unit",
    "psnr",
    "scale_amplitude",
    "ssim",
]

METRIC_KEYS = tuple(
    f"{metric}_{channel}"
    for metric in ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50", "frc1over7")
    for channel in ("amp", "phase")
)
SSIM_WIN_SIZE = 7
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, 5 scales
REFERENCE_PEAK = 255.0  # the reference code's cv2.PSNR default, whatever the data
PHASE_ALIGNS = ("mean", "plane")
PSNR_CONVENTIONS = ("data_range", "reference")


def _check_pair(pred: np.ndarray, target: np.ndarray, *, complex_: bool = False) -> None:
    kind = "complex" if complex_ else "real"
    for name, image in (("pred", pred), ("target", target)):
        ok = np.iscomplexobj(image) if complex_ else np.isrealobj(image)
        if image.ndim != 2 or not ok:
            raise ValueError(
                f"Got {name} of dtype {image.dtype} with shape {image.shape}, expected a {kind} 2-D array"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"Got pred of shape {pred.shape} and target of shape {target.shape}, expected the same shape"
        )


def _check_range(data_range: float) -> float:
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"Got data_range={data_range}, expected a finite number > 0")
    return float(data_range)


def align_phase(phase: np.ndarray, method: Literal["plane", "mean"] = "plane") -> np.ndarray:
    """Remove a least-squares plane ``a + b x + c y`` (or the mean) from a phase image, rad.

    No unwrapping: apply it to phases that stay within one wrap.
    """
    if method not in PHASE_ALIGNS:
        raise ValueError(f"Got phase_align={method!r}, expected one of {list(PHASE_ALIGNS)}")
    phase = np.asarray(phase, dtype=np.float64)
    if method == "mean":
        return phase - phase.mean()
    rows, cols = np.indices(phase.shape, dtype=np.float64)
    design = np.stack([np.ones(phase.size), rows.ravel(), cols.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design, phase.ravel(), rcond=None)
    return phase - (design @ coef).reshape(phase.shape)


def scale_amplitude(pred_amp: np.ndarray, target_amp: np.ndarray) -> np.ndarray:
    """``pred_amp * mean(target_amp) / mean(pred_amp)``; an all-zero prediction stays zero."""
    pred_amp = np.asarray(pred_amp, dtype=np.float64)
    mean = pred_amp.mean()
    return pred_amp * (float(np.mean(target_amp)) / mean) if mean != 0 else pred_amp


def phase_to_unit(phase: np.ndarray) -> np.ndarray:
    """Map a phase in rad to ``(phase + pi) / (2 pi)`` (``[-pi, pi]`` -> ``[0, 1]``)."""
    return (np.asarray(phase, dtype=np.float64) + np.pi) / (2 * np.pi)


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error, in the images' units."""
    _check_pair(pred, target)
    return float(np.mean(np.abs(pred - target)))


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error, in the images' units squared."""
    _check_pair(pred, target)
    return float(np.mean((pred - target) ** 2))


def psnr(pred: np.ndarray, target: np.ndarray, *, data_range: float) -> float:
    """``10 log10(data_range^2 / MSE)`` in dB, via scikit-image; ``inf`` when identical."""
    _check_pair(pred, target)
    data_range = _check_range(data_range)
    if np.array_equal(pred, target):
        return math.inf
    return float(peak_signal_noise_ratio(target, pred, data_range=data_range))


def ssim(pred: np.ndarray, target: np.ndarray, *, data_range: float) -> float:
    """Mean SSIM (scikit-image, 7 x 7 uniform window, sample covariance).

    >>> im = np.arange(100.0).reshape(10, 10)
    >>> ssim(im, im, data_range=99.0)
    1.0
    """
    _check_pair(pred, target)
    return float(
        structural_similarity(
            target, pred, win_size=SSIM_WIN_SIZE, data_range=_check_range(data_range)
        )
    )


def _contrast_structure(pred: np.ndarray, target: np.ndarray, data_range: float) -> float:
    """Mean of SSIM's contrast-structure term ``cs`` (no luminance), via scikit-image.

    scikit-image returns only ``mean(l cs)``. With ``K1`` this large the luminance
    constant ``C1 = (K1 R)^2`` dwarfs ``2 mu_x mu_y`` and ``mu_x^2 + mu_y^2`` below
    float64 resolution, so ``l`` is exactly 1 and the mean is ``mean(cs)``.
    """
    peak = max(float(np.abs(pred).max()), float(np.abs(target).max()))
    k1 = 1e9 * (1.0 + peak / data_range)
    return float(
        structural_similarity(target, pred, win_size=SSIM_WIN_SIZE, data_range=data_range, K1=k1)
    )


def _halve(image: np.ndarray) -> np.ndarray:
    """2 x 2 block mean (low-pass and downsample by 2); an odd last row/column is dropped."""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ms_ssim(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    data_range: float,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), built on scikit-image's SSIM.

    ``prod_j cs_j^w_j`` over the finer scales times ``SSIM^w`` at the coarsest, each
    scale a 2 x 2 block mean of the previous one; ``data_range`` is kept at every
    scale. Negative terms are clamped to 0. If the image is too small for every
    weight (a scale must hold the 7 x 7 window), the first scales that fit are used
    with their weights renormalised to sum to 1 (three at 32 x 32, five from 112 x 112).
    """
    _check_pair(pred, target)
    data_range = _check_range(data_range)
    levels = 0
    side = min(pred.shape)
    while levels < len(weights) and side >= SSIM_WIN_SIZE:
        levels, side = levels + 1, side // 2
    if levels == 0:
        raise ValueError(
            f"Got images of shape {pred.shape}, expected at least {SSIM_WIN_SIZE} x {SSIM_WIN_SIZE} px"
        )
    w = np.asarray(weights[:levels], dtype=np.float64)
    w /= w.sum()
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    result = 1.0
    for j in range(levels):
        if j < levels - 1:
            term = _contrast_structure(x, y, data_range)
            x, y = _halve(x), _halve(y)
        else:
            term = ssim(x, y, data_range=data_range)
        result *= max(term, 0.0) ** w[j]
    return float(result)


def frc_curve(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Fourier ring correlation of two real images, rings 0 .. min(H, W) // 2.

    ``FRC(k) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the frequencies of
    ring k: ``round(|f| min(H, W)) == k`` with ``f`` in cycles/px. No apodisation.
    A ring with no power in either image is NaN.
    """
    _check_pair(pred, target)
    f1, f2 = np.fft.fft2(target), np.fft.fft2(pred)
    n = min(pred.shape)
    radius = np.hypot(
        *np.meshgrid(np.fft.fftfreq(pred.shape[0]), np.fft.fftfreq(pred.shape[1]), indexing="ij")
    )
    ring = np.rint(radius * n).astype(np.int64).ravel()
    keep = ring <= n // 2
    ring = ring[keep]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring, weights=values.ravel()[keep], minlength=n // 2 + 1)

    cross = ring_sum((f1 * np.conj(f2)).real)
    power = ring_sum(np.abs(f1) ** 2) * ring_sum(np.abs(f2) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross / np.sqrt(power)


def frc_crossing(curve: np.ndarray, threshold: float) -> float:
    """First ring where ``curve`` falls below ``threshold``, linearly interpolated.

    Ring 0 (the mean, removed by phase alignment) counts as 1 and is not searched.
    Returns ``len(curve) - 1`` (the Nyquist ring) when the curve never falls below,
    and NaN when it has no finite value past ring 0.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim != 1 or curve.size < 2:
        raise ValueError(f"Got a curve of shape {curve.shape}, expected 1-D with at least 2 rings")
    if not np.isfinite(curve[1:]).any():
        return math.nan
    values = curve.copy()
    values[0] = 1.0
    below = np.flatnonzero(values[1:] < threshold)
    if below.size == 0:
        return float(curve.size - 1)
    k = int(below[0]) + 1
    before = values[k - 1]
    if not np.isfinite(before):
        return float(k)
    return float(k - 1 + (before - threshold) / (before - values[k]))


def complex_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    phase_align: Literal["plane", "mean"] = "plane",
    psnr_convention: Literal["data_range", "reference"] = "data_range",
) -> dict[str, float]:
    """Amplitude and phase quality of a complex 2-D ``pred`` against ``target``.

    Parameters
    ----------
    pred, target : complex (H, W)
        Reconstruction and ground truth, same shape, at least 7 x 7, finite.
    phase_align : {"plane", "mean"}
        Remove a least-squares plane (or the mean) from each phase before scoring.
    psnr_convention : {"data_range", "reference"}
        PSNR peak: the target channel's range, or 255 as in the reference code.

    Returns
    -------
    dict[str, float]
        The keys of the module docstring's table, in the order of :data:`METRIC_KEYS`.

    Examples
    --------
    >>> ramp = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    >>> z = (1 + ramp) * np.exp(1j * ramp**2)
    >>> scores = complex_metrics(z, z)
    >>> scores["ssim_amp"], scores["ssim_phase"], scores["mae_phase"], scores["psnr_amp"]
    (1.0, 1.0, 0.0, inf)
    """
    pred, target = np.asarray(pred), np.asarray(target)
    _check_pair(pred, target, complex_=True)
    if min(pred.shape) < SSIM_WIN_SIZE:
        raise ValueError(
            f"Got images of shape {pred.shape}, expected at least {SSIM_WIN_SIZE} x {SSIM_WIN_SIZE} px"
        )
    for name, image in (("pred", pred), ("target", target)):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{name} has non-finite values (NaN or inf)")
    if phase_align not in PHASE_ALIGNS:
        raise ValueError(f"Got phase_align={phase_align!r}, expected one of {list(PHASE_ALIGNS)}")
    if psnr_convention not in PSNR_CONVENTIONS:
        raise ValueError(
            f"Got psnr_convention={psnr_convention!r}, expected one of {list(PSNR_CONVENTIONS)}"
        )
    amp_t = np.abs(target).astype(np.float64)
    amp_p = scale_amplitude(np.abs(pred), amp_t)
    phi_t = align_phase(np.angle(target), phase_align)
    phi_p = align_phase(np.angle(pred), phase_align)
    out: dict[str, float] = {}
    channels = {
        "amp": (amp_p, amp_t, amp_p, amp_t),
        "phase": (phi_p, phi_t, phase_to_unit(phi_p), phase_to_unit(phi_t)),
    }
    for name, (p, t, p_ssim, t_ssim) in channels.items():
        span = float(t.max() - t.min())
        ssim_range = span if name == "amp" else 1.0
        peak = span if psnr_convention == "data_range" else REFERENCE_PEAK
        out[f"mae_{name}"] = mae(p, t)
        out[f"mse_{name}"] = mse(p, t)
        out[f"psnr_{name}"] = psnr(p, t, data_range=peak) if peak > 0 else math.nan
        if ssim_range > 0:
            out[f"ssim_{name}"] = ssim(p_ssim, t_ssim, data_range=ssim_range)
            out[f"ms_ssim_{name}"] = ms_ssim(p_ssim, t_ssim, data_range=ssim_range)
        else:
            out[f"ssim_{name}"] = out[f"ms_ssim_{name}"] = math.nan
        curve = frc_curve(p, t)
        out[f"frc50_{name}"] = frc_crossing(curve, 0.5)
        out[f"frc1over7_{name}"] = frc_crossing(curve, 1 / 7)
    return {key: out[key] for key in METRIC_KEYS}
