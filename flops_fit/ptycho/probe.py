"""Illumination probes for grid-lines ptychography, normalised the same way.

Two sources: the "ideal disk" probe of ``GRID_LINES.md`` (a blurred flat disk,
:func:`ideal_disk_probe`) and a user-supplied complex (N, N) array in an ``.npz``
file (:func:`load_probe`). Both are scaled by :func:`_normalise_probe`, which fixes
the units of the network input ``X``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import windows

__all__ = ["ideal_disk_probe", "load_probe"]


def ideal_disk_probe(N: int) -> np.ndarray:
    """The reference's ideal probe: a blurred flat disk, normalised (complex64, (N, N)).

    A separable Gaussian window of length N with std ``N / (0.7 pi^2)`` px; its outer
    product thresholded at > 0.5 is a disk of diameter ~ ``2.35 N / (0.7 pi^2)``
    (22 px at N = 64), blurred with a 1 px Gaussian; real, flat phase. Then
    normalised by :func:`_normalise_probe`.
    """
    window = windows.gaussian(N, std=N / (0.7 * np.pi**2))
    disk = (np.outer(window, window) > 0.5).astype(np.float64)
    return _normalise_probe(gaussian_filter(disk, 1.0).astype(np.complex128))


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
                f"probe file {str(path)!r} must hold one array or one named 'probe', "
                f"got arrays {names}"
            )
    if not np.iscomplexobj(array):
        raise ValueError(f"probe array in {str(path)!r} must be complex, got dtype {array.dtype}")
    if array.shape != (N, N):
        raise ValueError(
            f"probe array in {str(path)!r} must have shape (N, N) = {(N, N)}, got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"probe array in {str(path)!r} has non-finite values")
    return _normalise_probe(array)
