"""Probes: the default breaks the twin ambiguity, the ideal disk does not."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.probe import (
    _disk_radius,
    curved_disk_probe,
    ideal_disk_probe,
    make_probe,
)


def _twin_gap(probe: np.ndarray, seed: int = 0) -> float:
    """Relative L2 gap between the far-field amplitudes of ``P O`` and ``P conj(O)(-r)``.

    ``O`` is a random complex object patch; ``[::-1, ::-1]`` reflects about the
    array centre ``(N - 1) / 2``, the probe's centre.
    """
    rng = np.random.default_rng(seed)
    N = probe.shape[0]
    obj = rng.uniform(0.5, 1.5, (N, N)) * np.exp(1j * rng.uniform(-1, 1, (N, N)))
    twin = np.conj(obj[::-1, ::-1])
    a = np.abs(np.fft.fft2(probe * obj))
    b = np.abs(np.fft.fft2(probe * twin))
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


@pytest.mark.parametrize("N", [16, 32, 64])
def test_ideal_disk_is_twin_ambiguous_and_the_default_is_not(N):
    assert _twin_gap(ideal_disk_probe(N).astype(np.complex128)) < 1e-6
    default = GridLinesConfig(N=N, size=max(N, 48))
    assert default.probe == "curved_disk"
    probe = make_probe(default.probe, N, convergence=default.probe_convergence)
    assert np.iscomplexobj(probe) and np.ptp(np.angle(probe[np.abs(probe) > 0])) > 1
    assert _twin_gap(probe.astype(np.complex128)) > 0.1


def test_zero_convergence_is_the_ideal_disk():
    np.testing.assert_allclose(curved_disk_probe(64, 0.0), ideal_disk_probe(64), atol=1e-7)


def test_curved_disk_phase_matches_its_physical_parameters():
    # The measured probe of GRID_LINES.md: disk x exp(i k r^2), k = 1.5 * 2 pi / 11^2 at
    # N = 64, i.e. 1.5 waves of phase at the disk's 11 px edge.
    N = 64
    probe = curved_disk_probe(N, 0.55)
    assert _disk_radius(N) == pytest.approx(11.0, abs=0.1)
    c = (N - 1) / 2
    yy, xx = np.mgrid[:N, :N]
    r2 = (yy - c) ** 2 + (xx - c) ** 2
    inside = np.abs(probe) > 0.5 * np.abs(probe).max()
    k = np.pi * 0.55 / (2 * _disk_radius(N))  # edge gradient 2 k R = pi s rad/px
    assert k == pytest.approx(1.5 * 2 * np.pi / 11**2, rel=0.02)
    expected = np.exp(1j * k * r2)
    ratio = probe[inside] / np.abs(probe[inside]) / expected[inside]
    # same phase up to the constant of the normalisation (none: it divides by a real)
    np.testing.assert_allclose(np.angle(ratio), 0, atol=1e-5)


@pytest.mark.parametrize("N", [32, 64])
def test_convergence_sets_the_beams_far_field_cone(N):
    # Geometric optics: the cone of a beam whose edge phase gradient is pi s rad/px fills
    # s of the detector's half-width N / 2; most far-field energy lies inside it.
    s = 0.55
    far = np.abs(np.fft.fftshift(np.fft.fft2(curved_disk_probe(N, s)))) ** 2
    k = np.arange(N) - N // 2
    rk = np.hypot(k[:, None], k[None, :])
    inside = far[rk <= s * N / 2 + 2].sum() / far.sum()  # + 2 px: the disk's diffraction
    assert inside > 0.9
    flat = np.abs(np.fft.fftshift(np.fft.fft2(ideal_disk_probe(N)))) ** 2
    assert (flat[rk > s * N / 4].sum() / flat.sum()) < (far[rk > s * N / 4].sum() / far.sum())


def test_probe_convergence_is_part_of_the_cache_key():
    base = GridLinesConfig.light()
    assert base.replace(probe_convergence=0.3).cache_key() != base.cache_key()
    assert base.replace(probe="ideal_disk").cache_key() != base.cache_key()
