"""Generators of the grid-lines study: ``fno`` and ``hybrid``, chosen by name.

Both map a diffraction amplitude ``(B, 1, N, N)`` (float32) to a complex object
patch stored as real / imaginary channels ``(B, 2, N, N)``; :func:`to_complex`
turns that into ``(B, N, N)`` complex. Architectures follow GRID_LINES.md
(Models); every spectral layer keeps positive and negative row frequencies.

Parameter counts are real numbers (a complex spectral weight counts 2), as
:func:`flops_fit.flops.count_params` reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flops_fit.checks import check_int
from flops_fit.ptycho.layers import (
    ChannelsLastConv2d,
    FourierBlock,
    InstanceNorm,
    Log1p,
    Sqrt,
    cap_modes,
)

__all__ = ["ARCHITECTURES", "INPUT_TRANSFORMS", "FNO", "Hybrid", "build_model", "to_complex"]

def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return ChannelsLastConv2d(cin, cout, 3, padding=1)


class _Lifter(nn.Module):
    """Conv3x3(in -> w) -> GELU -> Conv3x3(w -> w)."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv3(cin, width), _conv3(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class FNO(nn.Module):
    """Cascaded FNO: lifter -> Fourier blocks -> 1x1 -> 2 x [Conv3x3 + GELU] -> 1x1 to 2 channels.

    Parameters
    ----------
    modes : int
        Frequencies kept per sign along each axis in every spectral layer.
    width : int
        Channels of the hidden layers.
    input_transform : torch.nn.Module
        Applied to the input before the lifter (see ``INPUT_TRANSFORMS``).
    n_blocks : int
        Number of Fourier blocks (4 in GRID_LINES.md).

    Notes
    -----
    At ``width=32, modes=12`` the model has 2,425,474 real parameters
    (1,245,826 counting a complex weight as one). GRID_LINES.md quotes about
    0.66M for the reference, whose spectral layers kept only the positive row
    corner (half the weights, and half the spectrum lost).
    """

    def __init__(self, *, modes: int, width: int, input_transform: nn.Module, n_blocks: int = 4) -> None:
        super().__init__()
        self.input_transform = input_transform
        self.lifter = _Lifter(1, width)
        self.blocks = nn.Sequential(*[FourierBlock(width, modes, modes) for _ in range(n_blocks)])
        self.project = ChannelsLastConv2d(width, width, 1)
        self.refine1, self.refine2 = _conv3(width, width), _conv3(width, width)
        self.head = ChannelsLastConv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N, N)`` -> ``(B, 2, N, N)`` real / imaginary parts."""
        x = self.input_transform(x)
        x = self.project(self.blocks(self.lifter(x)))
        x = F.gelu(self.refine2(F.gelu(self.refine1(x))))
        return self.head(x)


class Hybrid(nn.Module):
    """U-shaped hybrid: Fourier blocks on every encoder level, transposed-conv decoder with skips.

    Level ``i`` works on an ``N / 2**i`` grid with ``width * 2**i`` channels;
    levels are joined by Conv2x2 stride 2. The bottleneck is one more Fourier
    block on the last level with ``max(1, modes // 2)`` modes. The decoder
    climbs back with ConvTranspose2x2 stride 2, concatenates the skip of the
    level and applies 2 x [Conv3x3 + GELU]; a 1x1 conv gives 2 channels.

    Mode capping: a level on an ``n x n`` grid holds at most ``n // 2``
    frequencies per sign along the rows and ``n // 2 + 1`` along the halved
    axis (:func:`~flops_fit.ptycho.layers.cap_modes`), so requested modes are
    capped per level and only the weights of the kept modes are allocated.
    At ``N=64, modes=12`` the levels keep 12x12, 12x12, 8x9 and 4x5
    frequencies (rows per sign x columns), the bottleneck 4x5, and the model
    has 20,462,818 real parameters (11,386,082 counting a complex weight as
    one; the reference's "about 17M" allocated full 12x12 positive-corner
    weights on every level and counted complex weights once).

    Parameters
    ----------
    modes, width, input_transform
        As for :class:`FNO`.
    N : int
        Input grid size; divisible by ``2 ** (n_levels - 1)``.
    n_levels : int
        Encoder levels (4 in GRID_LINES.md).
    """

    def __init__(self, *, modes: int, width: int, input_transform: nn.Module, N: int, n_levels: int = 4) -> None:
        super().__init__()
        self.input_transform = input_transform
        chans = [width * 2**i for i in range(n_levels)]
        grids = [N // 2**i for i in range(n_levels)]
        self.lifter = _Lifter(1, width)
        self.encoder = nn.ModuleList(FourierBlock(c, *cap_modes(modes, n)) for c, n in zip(chans, grids, strict=True))
        self.down = nn.ModuleList(ChannelsLastConv2d(c, 2 * c, 2, stride=2) for c in chans[:-1])
        self.bottleneck = FourierBlock(chans[-1], *cap_modes(max(1, modes // 2), grids[-1]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, stride=2) for c in chans[:-1])
        self.decoder = nn.ModuleList(
            nn.Sequential(_conv3(2 * c, c), nn.GELU(), _conv3(c, c), nn.GELU()) for c in chans[:-1]
        )
        self.head = ChannelsLastConv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N, N)`` -> ``(B, 2, N, N)`` real / imaginary parts."""
        x = self.lifter(self.input_transform(x))
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level < len(self.down):
                skips.append(x)
                x = self.down[level](x)
        x = self.bottleneck(x)
        for level in reversed(range(len(self.up))):
            x = self.decoder[level](torch.cat([self.up[level](x), skips[level]], dim=1))
        return self.head(x)


INPUT_TRANSFORMS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity,
    "log1p": Log1p,
    "sqrt": Sqrt,
    "instancenorm": InstanceNorm,
}


def _build_fno(*, modes: int, width: int, N: int, input_transform: nn.Module, n_blocks: int = 4) -> nn.Module:
    _check_positive(n_blocks=n_blocks)
    return FNO(modes=modes, width=width, input_transform=input_transform, n_blocks=n_blocks)


def _build_hybrid(*, modes: int, width: int, N: int, input_transform: nn.Module, n_levels: int = 4) -> nn.Module:
    _check_positive(n_levels=n_levels)
    factor = 2 ** (n_levels - 1)
    if N % factor:
        raise ValueError(
            f"Got N={N} for hybrid with n_levels={n_levels}, expected a multiple of {factor} "
            f"(one halving per level below the first)"
        )
    return Hybrid(modes=modes, width=width, input_transform=input_transform, N=N, n_levels=n_levels)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fno": _build_fno, "hybrid": _build_hybrid}

# Options each architecture accepts beyond modes / width / N / input_transform.
_OPTIONS = {"fno": ["n_blocks"], "hybrid": ["n_levels"]}


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        check_int(name, value, minimum=1)


def build_model(
    architecture: str, *, modes: int, width: int, input_transform: str = "none", N: int = 64, **options: Any
) -> nn.Module:
    """Build a generator by name.

    Parameters
    ----------
    architecture : str
        A key of ``ARCHITECTURES``: ``"fno"`` or ``"hybrid"``.
    modes : int
        Fourier modes kept per sign along each axis; at most ``N // 2``.
        ``hybrid`` caps them per level (see :class:`Hybrid`).
    width : int
        Hidden channels (of the first level, for ``hybrid``).
    input_transform : str
        A key of ``INPUT_TRANSFORMS``: ``none``, ``log1p``, ``sqrt``, ``instancenorm``.
    N : int
        Patch size in pixels.
    **options
        Architecture options: ``n_blocks`` for ``fno``, ``n_levels`` for
        ``hybrid``. Any other name is an error.

    Returns
    -------
    torch.nn.Module
        Maps float32 ``(B, 1, N, N)`` to ``(B, 2, N, N)`` (real, imaginary).

    Raises
    ------
    ValueError
        Unknown architecture, transform or option; non-positive sizes; modes
        above ``N // 2``.

    Examples
    --------
    >>> model = build_model("fno", modes=4, width=8, N=16)
    >>> tuple(model(torch.zeros(2, 1, 16, 16)).shape)
    (2, 2, 16, 16)
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Got architecture={architecture!r}, expected one of {sorted(ARCHITECTURES)}")
    if input_transform not in INPUT_TRANSFORMS:
        raise ValueError(f"Got input_transform={input_transform!r}, expected one of {sorted(INPUT_TRANSFORMS)}")
    unknown = sorted(set(options) - set(_OPTIONS[architecture]))
    if unknown:
        raise ValueError(
            f"Got unknown option(s) {unknown} for architecture={architecture!r}, "
            f"expected some of {_OPTIONS[architecture]}"
        )
    _check_positive(modes=modes, width=width, N=N)
    if modes > N // 2:
        raise ValueError(f"Got modes={modes} for N={N}, expected at most N // 2 = {N // 2} per sign")
    return ARCHITECTURES[architecture](
        modes=modes, width=width, N=N, input_transform=INPUT_TRANSFORMS[input_transform](), **options
    )


def to_complex(out: torch.Tensor) -> torch.Tensor:
    """Real / imaginary channels ``(B, 2, N, N)`` -> complex patches ``(B, N, N)``.

    Examples
    --------
    >>> to_complex(torch.tensor([[[[1.0]], [[2.0]]]]))
    tensor([[[1.+2.j]]])
    """
    if out.dim() != 4 or out.shape[1] != 2:
        raise ValueError(f"Got output of shape {tuple(out.shape)}, expected (B, 2, N, N)")
    return torch.complex(out[:, 0], out[:, 1])
