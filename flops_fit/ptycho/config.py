"""The grid-lines dataset config: validated parameters and their cache key.

:class:`GridLinesConfig` holds everything that determines a simulated dataset
(defaults: the reference benchmark of ``GRID_LINES.md``); its
:meth:`~GridLinesConfig.cache_key` names the cached file of
:mod:`flops_fit.ptycho.cache`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flops_fit.checks import check_int, check_number
from flops_fit.ptycho.probe import PROBES, load_probe

__all__ = ["FORMAT_VERSION", "GridLinesConfig"]

FORMAT_VERSION = 1  # bump when the simulated arrays or the cache layout change
_DEFAULT_CONVERGENCE = 0.55


@dataclass(frozen=True)
class GridLinesConfig:
    """Parameters of a grid-lines dataset (defaults: the reference benchmark).

    Parameters
    ----------
    N : int
        Patch (and diffraction pattern) side, px; at least 8.
    size : int
        Object side, px; the lines are drawn on a ``2 size`` canvas whose centre is kept.
    nlines : int
        Lines drawn on the canvas.
    train_stride, test_stride : int
        Scan step, px (the reference's ``outer_offset / 2``). Must be <= N: stitching
        keeps the central stride x stride pixels of every patch.
    n_train_objects, n_test_objects : int
        Objects per split; every object is scanned with the same grid.
    nphotons : float
        Mean photons per diffraction pattern of the train split.
    set_phi : bool
        Give the object the reference's "set phase" (True by default: a zero phase makes
        phase metrics meaningless).
    probe : str
        ``"curved_disk"`` (default: a defocused beam, the disk times a quadratic phase,
        see :func:`~flops_fit.ptycho.probe.curved_disk_probe`), ``"ideal_disk"`` (the
        reference's real flat disk: twin-ambiguous, see
        :func:`~flops_fit.ptycho.probe.ideal_disk_probe`) or a path to an ``.npz``
        holding one complex (N, N) array (or one named ``probe``).
    probe_convergence : float
        The curved disk's cone as a fraction of the detector's, in [0, 1] (the
        local spatial frequency at the disk's edge over Nyquist). 0.55 by default:
        1.5 waves of phase at the edge at N = 64, enough to break the twin
        ambiguity (phase SSIM 0.90 against 0.83 for the flat disk after the same
        training) with the far field well inside the detector. Only used by
        ``probe="curved_disk"``.
    train_seed, test_seed : int
        Seeds of the two splits; they must differ so the test objects are new.
    poisson : bool
        Draw Poisson counts (True) or keep the noiseless amplitude.
    """

    N: int = 64
    size: int = 392
    nlines: int = 400
    train_stride: int = 4
    test_stride: int = 10
    n_train_objects: int = 1
    n_test_objects: int = 1
    nphotons: float = 1e9
    set_phi: bool = True
    # Complex by default: a real, centro-symmetric probe cannot tell O from its
    # twin conj(O)(-r) (GRID_LINES.md); real beams are curved.
    probe: str = "curved_disk"
    probe_convergence: float = _DEFAULT_CONVERGENCE
    train_seed: int = 1
    test_seed: int = 2
    poisson: bool = True

    def __post_init__(self) -> None:
        ints = {
            # Below 8 px the probe disk is a pixel or two (none inside r < N/4 at N = 4),
            # and the simulation fails late, with numpy's "lam value too large" at N = 2.
            "N": 8,
            "size": 1,
            "nlines": 1,
            "train_stride": 1,
            "test_stride": 1,
            "n_train_objects": 1,
            "n_test_objects": 1,
            "train_seed": 0,
            "test_seed": 0,
        }
        for name, minimum in ints.items():
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=minimum, type_error=TypeError))
        if self.N > self.size:
            raise ValueError(f"Got N={self.N} and size={self.size}, expected N <= size")
        for name in ("train_stride", "test_stride"):
            if getattr(self, name) > self.N:
                raise ValueError(
                    f"Got {name}={getattr(self, name)} and N={self.N}, expected {name} <= N (stitching "
                    "keeps the central stride x stride pixels of each patch)"
                )
        if self.train_seed == self.test_seed:
            raise ValueError(
                f"Got train_seed = test_seed = {self.train_seed}, expected different seeds (else the "
                "test objects repeat the train ones)"
            )
        # numpy's Poisson sampler stops near 9.2e18 counts per pixel
        nph = check_number("nphotons", self.nphotons, allowed="a finite number in (0, 1e18]",
                           test=lambda v: math.isfinite(v) and 0 < v <= 1e18, type_error=TypeError)
        object.__setattr__(self, "nphotons", nph)
        for name in ("set_phi", "poisson"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                value = getattr(self, name)
                raise TypeError(f"Got {name}={value!r} ({type(value).__name__}), expected a bool")
            object.__setattr__(self, name, bool(getattr(self, name)))
        probe = self.probe
        if isinstance(probe, os.PathLike):
            probe = os.fspath(probe)
        if not isinstance(probe, str):
            raise TypeError(
                f"Got probe={probe!r}, expected one of {list(PROBES)} or a path to an .npz file"
            )
        object.__setattr__(self, "probe", probe)
        # beyond 1 the beam's cone overfills the detector (aliasing)
        conv = check_number("probe_convergence", self.probe_convergence, allowed="a number in [0, 1]",
                            test=lambda v: 0 <= v <= 1, type_error=TypeError)
        object.__setattr__(self, "probe_convergence", conv)
        if probe != "curved_disk" and self.probe_convergence != _DEFAULT_CONVERGENCE:
            raise ValueError(
                f"Got probe_convergence={conv} with probe={probe!r}, expected the default "
                f"{_DEFAULT_CONVERGENCE}: the convergence applies to probe='curved_disk' only"
            )
        if probe not in PROBES:
            load_probe(probe, self.N)  # fail now, not after minutes of work

    @classmethod
    def light(cls) -> GridLinesConfig:
        """CPU preset: the reference object at N = 32, one object per split.

        Our choice, for a grid study that trains four models in about a minute on
        2 CPU cores. Same object statistics (size 392, 400 lines) as the reference;
        patches of 32 px cost a quarter of the FLOPs of 64 px ones. Train stride 7
        gives 52 x 52 = 2,704 train patches, test stride 10 gives 37 x 37 = 1,369
        test patches (stitched test field 370 x 370 px); the strides keep the
        reference's overlap per patch side (N / 4.6 and N / 3.2 against N / 16
        and N / 6.4 for the reference's 4 and 10 at N = 64: coarser, so fewer
        patches). With the default curved probe, ``fno`` and ``hybrid`` at widths
        4-8 clear the mean-patch floor after three epochs (phase SSIM about
        0.92-0.94 against 0.85).
        """
        return cls(N=32, train_stride=7, test_stride=10)

    @classmethod
    def light_isoflop(cls) -> GridLinesConfig:
        """CPU IsoFLOP preset: the :meth:`light` data with 8 train objects.

        Our choice, for a scaling study that fits on 2 CPU cores. At N = 64 the
        budgets a CPU affords (<= 1e12 FLOPs per run) only reached a plateau
        where the network predicts each patch's mean (measured with the flat
        ``ideal_disk`` probe: test MAE 0.107-0.112 for widths 2-8, against
        0.123 for the mean patch). Half the patch side costs a quarter of the
        FLOPs per sample. 8 train objects give 8 x 52 x 52 = 21,632 train
        patches: the longest default run (width 2 at 1e12, ~337k samples) makes
        ~16 passes, where one object's 2,704 patches would be seen ~124 times.
        The test split has 37 x 37 = 1,369 patches.
        """
        return cls.light().replace(n_train_objects=8)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GridLinesConfig:
        """Build from a mapping; unknown keys are an error."""
        _check_keys(values)
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a flat JSON-able dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> GridLinesConfig:
        """A copy with ``changes`` applied (validated); unknown keys are an error."""
        _check_keys(changes)
        return dataclasses.replace(self, **changes)

    def n_positions(self, stride: int) -> int:
        """Scan points per object side for ``stride``: ``(size - N) // stride + 1``."""
        return (self.size - self.N) // stride + 1

    def n_patches(self, split: str) -> int:
        """Patches (diffraction patterns) in ``split``: objects x scan points per side squared.

        Examples
        --------
        >>> GridLinesConfig.light().n_patches("train"), GridLinesConfig.light().n_patches("test")
        (2704, 1369)
        """
        if split not in ("train", "test"):
            raise ValueError(f"Got split={split!r}, expected 'train' or 'test'")
        objects = self.n_train_objects if split == "train" else self.n_test_objects
        stride = self.train_stride if split == "train" else self.test_stride
        return objects * self.n_positions(stride) ** 2

    def cache_key(self) -> str:
        """Stable hex digest of everything that determines the arrays.

        Includes :data:`FORMAT_VERSION` and, for a probe file, a digest of its array
        (so the key follows the content, not the path).
        """
        return hashlib.sha256(self.key_payload().encode()).hexdigest()[:20]

    def key_payload(self) -> str:
        """The JSON text :meth:`cache_key` hashes; a cached file stores it to prove what it holds.

        The config's fields and the cache format version; a probe read from a
        file enters by the SHA-256 of its array, not its path.
        """
        fields = self.to_dict()
        if self.probe not in PROBES:
            digest = hashlib.sha256(load_probe(self.probe, self.N).tobytes()).hexdigest()
            fields["probe"] = f"npz-sha256:{digest}"
        return json.dumps({"format_version": FORMAT_VERSION, **fields}, sort_keys=True)


def _check_keys(values: Mapping[str, Any]) -> None:
    allowed = [f.name for f in dataclasses.fields(GridLinesConfig)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown GridLinesConfig keys {unknown}; allowed keys are {allowed}")

