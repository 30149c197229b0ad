"""Grid-lines ptychography: objects, probe, scan, far-field diffraction, stitching.

An independent re-implementation of the "grid lines" benchmark of PtychoPINN
(Hoidn, Mishra & Mehta, Sci. Rep. 13, 22789, 2023). The numbers it follows are
in ``GRID_LINES.md``; where a choice is ours the docstring says so.

Pipeline, per split (train, test)::

    lines -> blurred amplitude A (+ phase phi) -> object O = A exp(i phi)   (k, size, size)
    O / patch_norm -> patches Y on a regular scan grid                       (n, N, N)
    psi = s Y P -> a = |fftshift(FFT2(psi))| / N -> counts ~ Poisson(a^2)    (n, N, N)
    X = sqrt(counts) / s                                                     (n, 1, N, N)

Units: pixels for lengths; ``X`` is in units of the noiseless amplitude
``|FFT2(Y P)| / N`` (i.e. photon amplitude divided by the intensity scale).

The dataset's parameters are :class:`~flops_fit.ptycho.config.GridLinesConfig`, the
probe comes from :mod:`flops_fit.ptycho.probe`, and the on-disk cache
(:func:`~flops_fit.ptycho.cache.load_or_simulate`) is :mod:`flops_fit.ptycho.cache`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter
from skimage.draw import line

from flops_fit.checks import is_int
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.probe import make_probe

__all__ = [
    "GridLinesData",
    "Split",
    "far_field_amplitude",
    "make_object",
    "scan_positions",
    "simulate",
    "stitch",
]

_CHUNK = 1024  # patterns per batched FFT + Poisson draw; bounds peak memory
_BLUR_WEIGHTS = ((1.0, 1.0), (5.0, 2.0), (10.0, 5.0))  # (sigma px, weight): A = g1 + 2 g5 + 5 g10
_TRUNCATE = 4.0  # scipy's default Gaussian truncation, in sigmas


@dataclass(frozen=True, eq=False)
class Split:
    """One simulated split. ``n`` patches of side ``N`` from ``k`` objects of side ``size``.

    Attributes
    ----------
    X : float32 (n, 1, N, N)
        Network input: ``sqrt(counts) / intensity_scale`` (noiseless: ``|FFT2(Y P)| / N``),
        fftshifted (zero frequency at pixel ``N // 2``).
    Y : complex64 (n, N, N)
        Labels: object patches divided by ``patch_norm``.
    positions : int64 (n, 2)
        (row, col) of each patch's top-left pixel on its object.
    object_index : int64 (n,)
        Which object each patch comes from (patches are object-major, then row-major).
    objects : complex64 (k, size, size)
        Ground-truth objects, in the same float32 values ``Y * patch_norm`` carries.
    probe : complex64 (N, N)
        The normalised probe used.
    intensity_scale : float
        ``s``; the test split reuses the train value.
    patch_norm : float
        Mean per-patch max amplitude of the train patches (the test split reuses it).
    stride : int
        Scan step, px.
    """

    X: np.ndarray
    Y: np.ndarray
    positions: np.ndarray
    object_index: np.ndarray
    objects: np.ndarray
    probe: np.ndarray
    intensity_scale: float
    patch_norm: float
    stride: int

    @property
    def n(self) -> int:
        """Number of patches."""
        return self.Y.shape[0]

    @property
    def N(self) -> int:
        """Patch side, px."""
        return self.Y.shape[-1]


@dataclass(frozen=True, eq=False)
class GridLinesData:
    """The train and test splits and the config that made them."""

    config: GridLinesConfig
    train: Split
    test: Split


def _probe(cfg: GridLinesConfig) -> np.ndarray:
    return make_probe(cfg.probe, cfg.N, convergence=cfg.probe_convergence)


def make_object(
    size: int, nlines: int, rng: np.random.Generator, *, set_phi: bool = True
) -> np.ndarray:
    """One grid-lines object (complex128, (size, size)).

    ``nlines`` one-pixel lines with endpoints uniform over a ``2 size`` square canvas;
    amplitude ``A = g1 + 2 g5 + 5 g10`` (``g_sigma``: Gaussian blur, std sigma px,
    scipy's reflecting boundary), centre ``size x size`` crop; phase
    ``pi tanh((A - max A / 2) / (3 mean A))`` of this object when ``set_phi``, else 0.

    Only the crop plus the blur radius is filtered: the crop's values are those of
    filtering the whole canvas, at a fraction of the cost.
    """
    canvas = np.zeros((2 * size, 2 * size))
    for r0, c0, r1, c1 in rng.integers(0, 2 * size, size=(nlines, 4)):
        canvas[line(r0, c0, r1, c1)] = 1.0
    start = size // 2  # centre crop [start, start + size)
    radius = int(_TRUNCATE * max(s for s, _ in _BLUR_WEIGHTS) + 0.5)
    lo, hi = max(start - radius, 0), min(start + size + radius, 2 * size)
    region = canvas[lo:hi, lo:hi]
    amp = sum(w * gaussian_filter(region, s, truncate=_TRUNCATE) for s, w in _BLUR_WEIGHTS)
    amp = amp[start - lo : start - lo + size, start - lo : start - lo + size]
    if amp.max() <= 0:
        raise ValueError(f"no line reaches the {size} x {size} crop; use more than nlines={nlines}")
    phi = np.pi * np.tanh((amp - amp.max() / 2) / (3 * amp.mean())) if set_phi else 0.0
    obj = np.empty(amp.shape, dtype=np.complex128)
    obj.real, obj.imag = amp * np.cos(phi), amp * np.sin(phi)  # cheaper than exp(1j phi)
    return obj


def scan_positions(size: int, N: int, stride: int) -> np.ndarray:
    """Top-left (row, col) of each patch of a regular grid, row-major (int64, (m*m, 2))."""
    steps = np.arange((size - N) // stride + 1) * stride
    rows, cols = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.int64)


def _windows(image: np.ndarray, N: int, stride: int) -> np.ndarray:
    """Strided view (m, m, N, N) of the scan's patches; no copy."""
    m = (image.shape[0] - N) // stride + 1
    return sliding_window_view(image, (N, N))[: m * stride : stride, : m * stride : stride]


def _rescale(values: np.ndarray, patch_norm: float) -> np.ndarray:
    # the single place normalised values go back to object units, so that stitching
    # Y reproduces the stored objects bit for bit
    return values * np.complex64(patch_norm)


def _shift_modulation(N: int, dtype: Any = np.complex64) -> np.ndarray:
    """Factor ``m`` ((N, N), ``dtype``) with ``FFT2(psi m) = fftshift(FFT2(psi))``.

    A ramp of half a period per pixel, ``exp(2 pi i (N // 2)(x + y) / N)``: +-1 for
    even N. Folded into the probe it makes the shift free.
    """
    k = np.arange(N)
    ramp = np.where(k % 2 == 0, 1.0, -1.0) if N % 2 == 0 else np.exp(2j * np.pi * (N // 2) * k / N)
    return np.outer(ramp, ramp).astype(dtype)


def _spectrum_amplitude(psi: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    # torch's batched FFT is the fastest at hand; numpy's abs is a SIMD hypot, faster
    # than torch's on complex input
    return np.abs(torch.fft.fft2(torch.from_numpy(psi), norm="ortho").numpy(), out=out)


def far_field_amplitude(psi: np.ndarray) -> np.ndarray:
    """``|fftshift(FFT2(psi))| / N`` over the last two axes of a complex array.

    Orthonormal FFT, so Parseval holds: ``sum a^2 = sum |psi|^2`` per pattern. Real
    output of the input's precision (float32 for complex64).
    """
    psi = np.asarray(psi)
    return _spectrum_amplitude(psi * _shift_modulation(psi.shape[-1], psi.dtype))


def _diffract(
    Y: np.ndarray,
    probe: np.ndarray,
    nphotons: float,
    scale: float | None,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, float]:
    """Network input X (float32, (n, 1, N, N)) and the intensity scale s; batched.

    ``a0 = |FFT2(Y P)| / N`` (fftshifted); ``s = sqrt(nphotons / mean_n sum a0^2)``
    unless given (by Parseval ``sum a0^2 = sum |Y P|^2``: the mean pattern of
    ``psi = s Y P`` holds nphotons); ``X = sqrt(Poisson(s^2 a0^2)) / s``, or ``a0``
    when noiseless (``rng=None``).
    """
    n, N, _ = Y.shape
    amp = np.empty((n, N, N), dtype=np.float32)
    energy = np.empty(n)
    illum = probe * _shift_modulation(N)  # (N, N) complex64
    for start in range(0, n, _CHUNK):
        rows = slice(start, start + _CHUNK)
        a0 = _spectrum_amplitude(Y[rows] * illum, out=amp[rows])
        energy[rows] = np.einsum("nij,nij->n", a0, a0, dtype=np.float64)
    if scale is None:
        scale = math.sqrt(nphotons / float(energy.mean()))
    if rng is not None:
        for start in range(0, n, _CHUNK):
            rows = slice(start, start + _CHUNK)
            lam = np.square(amp[rows], dtype=np.float64)
            lam *= scale**2  # expected photons per pixel
            np.sqrt(rng.poisson(lam), out=amp[rows], dtype=np.float32)
            amp[rows] *= np.float32(1 / scale)
    return amp[:, None], scale


def _make_split(
    objects: np.ndarray,
    probe: np.ndarray,
    stride: int,
    patch_norm: float,
    nphotons: float,
    scale: float | None,
    rng: np.random.Generator | None,
) -> Split:
    k, size, _ = objects.shape
    N = probe.shape[0]
    m = (size - N) // stride + 1
    normed = (objects / patch_norm).astype(np.complex64)
    Y = np.empty((k, m, m, N, N), dtype=np.complex64)
    for i, obj in enumerate(normed):
        Y[i] = _windows(obj, N, stride)  # the one copy of the patches
    Y = Y.reshape(k * m * m, N, N)
    X, scale = _diffract(Y, probe, nphotons, scale, rng)
    pos = scan_positions(size, N, stride)
    return Split(
        X=X,
        Y=Y,
        positions=np.tile(pos, (k, 1)),
        object_index=np.repeat(np.arange(k, dtype=np.int64), len(pos)),
        objects=_rescale(normed, patch_norm),
        probe=probe,
        intensity_scale=float(scale),
        patch_norm=float(patch_norm),
        stride=stride,
    )


def simulate(cfg: GridLinesConfig) -> GridLinesData:
    """Simulate the train and test splits of ``cfg`` (vectorised: batched FFTs).

    Each split's seed is split into an object stream and a noise stream, so the
    objects do not depend on ``poisson``. The test split reuses the train
    ``intensity_scale`` and ``patch_norm``: same beam, same units, nothing about the
    test objects used to normalise them.
    """
    if not isinstance(cfg, GridLinesConfig):
        raise TypeError(f"Got cfg of type {type(cfg).__name__}, expected a GridLinesConfig")
    probe = _probe(cfg)
    splits = {}
    for name, seed, count, stride in (
        ("train", cfg.train_seed, cfg.n_train_objects, cfg.train_stride),
        ("test", cfg.test_seed, cfg.n_test_objects, cfg.test_stride),
    ):
        obj_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
        obj_rng = np.random.default_rng(obj_seq)
        objects = np.stack(
            [make_object(cfg.size, cfg.nlines, obj_rng, set_phi=cfg.set_phi) for _ in range(count)]
        )
        if name == "train":
            # mean over patches of the max amplitude in each patch
            peaks = [_windows(np.abs(o), cfg.N, stride).max(axis=(-2, -1)) for o in objects]
            patch_norm, scale = float(np.mean(peaks)), None
        else:
            patch_norm, scale = splits["train"].patch_norm, splits["train"].intensity_scale
        noise_rng = np.random.default_rng(noise_seq) if cfg.poisson else None
        splits[name] = _make_split(
            objects, probe, stride, patch_norm, cfg.nphotons, scale, noise_rng
        )
    return GridLinesData(config=cfg, train=splits["train"], test=splits["test"])


def stitch(
    pred_patches: np.ndarray | torch.Tensor, split: Split, *, object_index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Tile the central ``stride x stride`` pixels of each patch of one object.

    Parameters
    ----------
    pred_patches : complex (n, N, N)
        Predictions for every patch of ``split``, in the units of ``split.Y``.
    split : Split
    object_index : int
        Which object of the split to reconstruct (one 2-D result per call).

    Returns
    -------
    recon, truth : complex64 (m stride, m stride)
        The reconstruction times ``patch_norm`` (object units) and the matching crop
        of the ground-truth object, which starts at pixel ``(N - stride) // 2``.
        ``stitch(split.Y, split)`` returns ``truth`` exactly.
    """
    if isinstance(pred_patches, torch.Tensor):
        pred_patches = pred_patches.detach().cpu().numpy()
    pred = np.asarray(pred_patches)
    if pred.shape != split.Y.shape:
        raise ValueError(
            f"Got pred_patches of shape {pred.shape}, expected the split's patch shape {split.Y.shape}"
        )
    if not np.iscomplexobj(pred):
        raise ValueError(f"Got pred_patches of dtype {pred.dtype}, expected complex")
    k = split.objects.shape[0]
    if not is_int(object_index) or not 0 <= object_index < k:
        raise ValueError(f"Got object_index={object_index!r}, expected an int in [0, {k})")
    N, s = split.N, split.stride
    m = (split.objects.shape[-1] - N) // s + 1  # scan points per side
    lo = (N - s) // 2
    centres = pred[split.object_index == object_index, lo : lo + s, lo : lo + s]
    tiled = centres.astype(np.complex64).reshape(m, m, s, s).transpose(0, 2, 1, 3)
    recon = _rescale(tiled.reshape(m * s, m * s), split.patch_norm)
    truth = split.objects[object_index, lo : lo + m * s, lo : lo + m * s]
    return recon, truth.copy()
