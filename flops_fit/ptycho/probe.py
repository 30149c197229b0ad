"""Illumination probes for grid-lines ptychography, normalised the same way.

Three sources: the default :func:`curved_disk_probe` (the ideal disk times the
quadratic phase of a defocused beam: complex, so it breaks the twin ambiguity), the
"ideal disk" probe of ``GRID_LINES.md`` (a blurred flat disk, real and
centro-symmetric, :func:`ideal_disk_probe`) and a user-supplied complex (N, N) array
in an ``.npz`` file (:func:`load_probe`). All are scaled by :func:`_normalise_probe`,
which fixes the units of the network input ``X``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import windows

__all__ = ["PROBES", "curved_disk_probe", "ideal_disk_probe", "load_probe", "make_probe"]


#: Probes chosen by name (anything else is a path to an ``.npz`` file).
PROBES = ("curved_disk", "ideal_disk")


def _blurred_disk(N: int) -> np.ndarray:
    """The reference's disk amplitude (float64, (N, N)), see :func:`ideal_disk_probe`."""
    window = windows.gaussian(N, std=N / (0.7 * np.pi**2))
    disk = (np.outer(window, window) > 0.5).astype(np.float64)
    return gaussian_filter(disk, 1.0)


def _disk_radius(N: int) -> float:
    """Radius of the thresholded disk, px: ``sqrt(2 ln 2) x std`` of the window."""
    return float(np.sqrt(2 * np.log(2)) * N / (0.7 * np.pi**2))


def ideal_disk_probe(N: int) -> np.ndarray:
    """The reference's ideal probe: a blurred flat disk, normalised (complex64, (N, N)).

    A separable Gaussian window of length N with std ``N / (0.7 pi^2)`` px; its outer
    product thresholded at > 0.5 is a disk of diameter ~ ``2.35 N / (0.7 pi^2)``
    (22 px at N = 64), blurred with a 1 px Gaussian; real, flat phase. Then
    normalised by :func:`_normalise_probe`.

    Notes
    -----
    Hard for a supervised network (the PtychoPINN benchmark's "ideal probe" case):
    the probe is real and centro-symmetric, ``P(r) = P(-r)``, so an exit wave
    ``P O`` and its twin ``conj(P O)(-r) = P conj(O)(-r)`` have the same far-field
    amplitude. One diffraction pattern cannot tell ``O`` from ``conj(O)(-r)``, and a
    network trained with a pixel loss learns their average (measured here: ``fno``
    w32 after 1,728 samples scores phase SSIM 0.83, below the mean-patch floor).
    """
    return _normalise_probe(_blurred_disk(N).astype(np.complex128))


def curved_disk_probe(N: int, convergence: float = 0.55) -> np.ndarray:
    """A defocused beam: the ideal disk times a quadratic phase (complex64, (N, N)).

    ``P(r) = D(r) exp(i pi s r^2 / (2 R))``, with ``D`` the blurred disk of
    :func:`ideal_disk_probe` and ``R`` its radius (10.9 px at N = 64). This is the
    paraxial (Fresnel) field of a beam a distance ``dz`` from its focus,
    ``exp(i pi r^2 / (lambda dz))``, cut by a circular aperture. ``s``
    (``convergence``) is the beam's geometric cone as a fraction of the detector:
    the local spatial frequency at the disk's edge, ``s / 2`` cycles/px, over the
    Nyquist frequency 1/2, so the far field fills about ``s`` of the detector's
    half-width whatever ``N``. The phase at the edge is ``s R / 4`` waves: 1.5 waves
    at N = 64 for the default ``s = 0.55``. Normalised by :func:`_normalise_probe`.

    Parameters
    ----------
    N : int
        Probe side, px.
    convergence : float
        Cone of the beam over the detector's, in [0, 1]. Non-zero breaks the twin
        ambiguity of a real probe (see :func:`ideal_disk_probe`): the twin of
        ``P O`` is an exit wave of ``conj(P)``, not of ``P``. At 1 the edge of the
        cone reaches the detector's edge.

    References
    ----------
    J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed. (2005), sec. 4.2
    (the Fresnel approximation) and 5.1 (a thin lens's quadratic phase).
    """
    R = _disk_radius(N)
    c = np.arange(N) - (N - 1) / 2
    r2 = c[:, None] ** 2 + c[None, :] ** 2
    # phase gradient at r = R is pi s rad/px: s times Nyquist's pi
    phase = np.pi * convergence * r2 / (2 * R)
    return _normalise_probe(_blurred_disk(N) * np.exp(1j * phase))


def make_probe(name: str, N: int, *, convergence: float = 0.55) -> np.ndarray:
    """The probe ``name`` (one of :data:`PROBES`, or an ``.npz`` path) at side ``N``."""
    if name == "ideal_disk":
        return ideal_disk_probe(N)
    if name == "curved_disk":
        return curved_disk_probe(N, convergence)
    return load_probe(name, N)


def _normalise_probe(probe: np.ndarray) -> np.ndarray:
    """``P / (10 mean|P|)`` with the mean over the pixels with ``r < N/4`` of the centre.

    The centre is ``(N - 1) / 2``, the window's. Our reading of the reference's
    ``probe_scale = 10``; it fixes the scale of ``X``, not the photon count.
    Values below ``1e-10`` of the peak are set to 0: far below float32 resolution of
    any sum they enter, and as float32 denormals (the blurred disk's tails) they
    slow the batched FFT about tenfold.
    """
    N = probe.shape[0]
    c = np.arange(N) - (N - 1) / 2
    inside = np.hypot(c[:, None], c[None, :]) < N / 4
    mean = float(np.abs(probe[inside]).mean())
    if mean == 0:
        raise ValueError("probe is zero everywhere within r < N/4 of the centre; cannot normalise")
    probe = probe / (10 * mean)
    magnitude = np.abs(probe)
    probe[magnitude < 1e-10 * magnitude.max()] = 0
    return probe.astype(np.complex64)


def load_probe(path: str | os.PathLike, N: int) -> np.ndarray:
    """Read a complex (N, N) probe from an ``.npz`` (no pickles) and normalise it.

    The file must hold one array, or several of which one is named ``probe``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"probe file not found: {str(path)!r}")
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if "probe" in names:
            array = npz["probe"]
        elif len(names) == 1:
            array = npz[names[0]]
        else:
            raise ValueError(
                f"Got probe file {str(path)!r} with arrays {names}, expected one array or one named 'probe'"
            )
    if not np.iscomplexobj(array):
        raise ValueError(f"Got a probe array of dtype {array.dtype} in {str(path)!r}, expected a complex one")
    if array.shape != (N, N):
        raise ValueError(
            f"Got a probe array of shape {array.shape} in {str(path)!r}, expected (N, N) = {(N, N)}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"probe array in {str(path)!r} has non-finite values")
    return _normalise_probe(array)
