"""Layers of the ptychography generators: spectral convolution, Fourier block, input transforms.

The spectral convolution follows Li et al. (2021) [1]_: transform to the
Fourier domain, multiply the lowest frequencies by learned complex weights
(one ``in x out`` matrix per kept frequency), transform back. Both positive
and negative frequencies are kept along the non-halved axis.

How it is made fast on a CPU (measured in ``benchmarks/bench_spectral.py``):

* The mode mixing is a single real batched matmul with the kept frequencies as
  the batch dimension. Real and imaginary parts of the input are stacked along
  the row dimension and the weights are stored as ``(..., in, 2, out)`` so the
  complex product ``(xr + i xi)(wr + i wi)`` is one ``bmm`` of shape
  ``(K, 2B, in) @ (K, in, 2 out)`` followed by two small additions.
* The whole layer is one autograd function with a hand-written backward made
  of exact adjoints, so the backward pass runs one real FFT each way (PyTorch's
  generic backward of ``rfft2`` runs a full complex FFT and materialises
  full-size zero spectra for every slice).
* The inverse transform runs the row FFT on the ``modes2`` kept columns only.

Measured and not used: the kept modes as truncated-DFT matmuls (two real GEMMs
each way, no zero-filled spectrum) ran the analysis at 0.65x (N = 32) to 1.0x
(N = 64) of the FFT path and the synthesis at 0.93x to 1.7x, one thread: at
these sizes the FFT is not the bottleneck the wasted modes suggest.

References
----------
.. [1] Z. Li et al., "Fourier Neural Operator for Parametric Partial
   Differential Equations", ICLR 2021, arXiv:2010.08895.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from flops_fit.checks import check_int

__all__ = [
    "ChannelsLastConv2d",
    "FourierBlock",
    "InstanceNorm",
    "Log1p",
    "SpectralConv2d",
    "Sqrt",
    "cap_modes",
    "nchw_copy",
]


def cap_modes(modes: int, n: int) -> tuple[int, int]:
    """Modes a spectral layer on an ``n x n`` grid can hold, per axis.

    Parameters
    ----------
    modes : int
        Requested frequencies per sign along the rows and along the halved
        (last, ``rfft``) axis.
    n : int
        Grid size in pixels.

    Returns
    -------
    tuple of int
        ``(modes1, modes2)``: ``min(modes, n // 2)`` per sign along the rows
        (the two signs together then cover at most all ``n`` rows) and
        ``min(modes, n // 2 + 1)`` along the last axis, which holds
        ``n // 2 + 1`` non-negative frequencies after a real FFT.

    Examples
    --------
    >>> cap_modes(12, 64), cap_modes(12, 16), cap_modes(12, 8)
    ((12, 12), (8, 9), (4, 5))
    """
    return min(modes, n // 2), min(modes, n // 2 + 1)


def _analyze(x: torch.Tensor, m1: int, m2: int, groups: int = 1) -> torch.Tensor:
    """Kept low-frequency coefficients of ``rfft2(x)`` as real numbers.

    Parameters
    ----------
    x : torch.Tensor
        Real input ``(B, C, H, W)``.
    m1, m2 : int
        Frequencies kept per sign along rows (``0..m1-1`` and ``-m1..-1``) and
        along columns (``0..m2-1``).
    groups : int
        Channel groups ``G`` (``C`` splits into ``G`` blocks of ``C / G``).

    Returns
    -------
    torch.Tensor
        ``(K G, 2, B, C / G)`` with ``K = 2 m1 m2`` (row-major over kept rows,
        then columns, then groups) and the real / imaginary part along axis 1,
        contiguous.
    """
    batch, channels, n_rows = x.shape[0], x.shape[1], x.shape[-2]
    spec = torch.fft.rfft2(x)[..., :m2]
    kept = torch.cat([spec[..., :m1, :], spec[..., n_rows - m1 :, :]], dim=-2)  # (B, C, 2 m1, m2)
    modes = torch.view_as_real(kept).view(batch, groups, channels // groups, 2 * m1, m2, 2)
    modes = modes.permute(3, 4, 1, 5, 0, 2)  # (2 m1, m2, G, 2, B, C / G)
    return modes.contiguous().view(2 * m1 * m2 * groups, 2, batch, channels // groups)


def _synthesize(y: torch.Tensor, size: tuple[int, int], m1: int, m2: int, groups: int = 1) -> torch.Tensor:
    """Real field whose spectrum is zero except the kept coefficients ``y``.

    Parameters
    ----------
    y : torch.Tensor
        ``(K G, 2, B, C / G)`` as returned by :func:`_analyze`.
    size : tuple of int
        Output grid ``(H, W)``.
    m1, m2, groups : int
        Kept frequencies and channel groups, as in :func:`_analyze`.

    Returns
    -------
    torch.Tensor
        ``(B, C, H, W)`` equal to ``irfft2`` of the zero-padded spectrum, computed
        as a row ``ifft`` over the ``m2`` kept columns only, then an ``irfft``
        along the columns (which zero-pads the missing high columns itself).
    """
    n_rows, n_cols = size
    batch, per_group = y.shape[2], y.shape[3]
    yc = y.view(2 * m1, m2, groups, 2, batch, per_group).permute(4, 2, 5, 0, 1, 3)  # (B, G, C/G, 2 m1, m2, 2)
    yc = torch.view_as_complex(yc.contiguous().view(batch, groups * per_group, 2 * m1, m2, 2))
    gap = yc.new_zeros(batch, groups * per_group, n_rows - 2 * m1, m2)
    spec = torch.cat([yc[..., :m1, :], gap, yc[..., m1:, :]], dim=-2)  # (B, C, H, m2)
    return torch.fft.irfft(torch.fft.ifft(spec, dim=-2), n=n_cols, dim=-1)


def _column_weights(m2: int, n_cols: int, edge: float, inner: float, like: torch.Tensor) -> torch.Tensor:
    """Per-column factors of the real-FFT adjoints, shaped to broadcast over (2 m1, m2, G 2 B C).

    The zero column (and the Nyquist column, when kept) appears once in a real
    signal's spectrum, every other column twice (itself and its mirror).
    """
    w = torch.full((m2,), inner, dtype=like.dtype, device=like.device)
    w[0] = edge
    if n_cols % 2 == 0 and m2 == n_cols // 2 + 1:
        w[-1] = edge
    return w.view(1, m2, 1)


def _mix(modes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Complex product per kept frequency, as one real ``bmm``.

    ``modes`` is ``(K, 2, B, C)`` (real / imaginary stacked over the batch),
    ``weight`` is ``(K, C, 2, O)``; returns ``(K, 2, B, O)``:
    ``[xr wr - xi wi, xr wi + xi wr]``.
    """
    k, _, batch, cin = modes.shape
    p = torch.bmm(modes.view(k, 2 * batch, cin), weight.view(k, cin, -1))  # (K, 2B, 2O)
    p = p.view(k, 2, batch, 2, -1)
    return torch.stack([p[:, 0, :, 0] - p[:, 1, :, 1], p[:, 0, :, 1] + p[:, 1, :, 0]], dim=1)


class _SpectralConv(torch.autograd.Function):
    """``irfft2(W . rfft2(x))`` on the kept modes, with a hand-written backward.

    The backward uses exact adjoints: the analysis adjoint is a synthesis and
    vice versa (with per-column factors for the mirrored half of a real
    spectrum), and the complex product's adjoints are two more real ``bmm``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, m1: int, m2: int, groups: int) -> torch.Tensor:  # type: ignore[override]
        modes = _analyze(x, m1, m2, groups)  # (K G, 2, B, C / G)
        ctx.save_for_backward(modes, weight)
        ctx.meta = (tuple(x.shape[-2:]), m1, m2, groups)
        return _synthesize(_mix(modes, weight), ctx.meta[0], m1, m2, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        modes, weight = ctx.saved_tensors
        (n_rows, n_cols), m1, m2, groups = ctx.meta
        k, _, batch, cin = modes.shape
        # Adjoint of the synthesis: irfft normalises by 1/(H W) and counts mirrored columns twice.
        scale = _column_weights(m2, n_cols, 1.0, 2.0, grad) / (n_rows * n_cols)
        g = (_analyze(grad, m1, m2, groups).view(2 * m1, m2, -1) * scale).view(k, 2, batch, -1)
        # h = [[gr, gi], [gi, -gr]] (K, 2B, 2O): one bmm gives both weight-gradient parts
        # (conj(x) g summed over the batch) and one the input gradient (g conj(w)).
        h = torch.cat([g, torch.stack([g[:, 1], -g[:, 0]], dim=1)], dim=-1).view(k, 2 * batch, -1)
        grad_weight = torch.bmm(modes.view(k, 2 * batch, cin).transpose(1, 2), h).view_as(weight)
        grad_modes = torch.bmm(h, weight.view(k, cin, -1).transpose(1, 2))
        # Adjoint of the analysis: Re(sum_k g_k e^{+i theta}) = H W irfft2 of g with the
        # mirrored columns halved (irfft counts them twice).
        scale = _column_weights(m2, n_cols, 1.0, 0.5, grad) * (n_rows * n_cols)
        grad_modes = (grad_modes.view(2 * m1, m2, -1) * scale).view(k, 2, batch, cin)
        grad_x = _synthesize(grad_modes, (n_rows, n_cols), m1, m2, groups)
        return grad_x, grad_weight, None, None, None


class SpectralConv2d(nn.Module):
    """Fourier-domain convolution on the lowest frequencies (Li et al., 2021).

    ``y = irfft2(W . rfft2(x))`` where ``W`` holds one complex ``in x out``
    matrix per kept frequency: rows ``0..modes1-1`` and ``-modes1..-1`` (both
    signs), columns ``0..modes2-1`` of the real FFT; all other frequencies are
    dropped. No bias (the surrounding block adds a convolution with one).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of input and output.
    modes1 : int
        Frequencies kept per sign along the rows; at most ``H // 2`` of the
        input (checked in :meth:`forward`).
    modes2 : int
        Frequencies kept along the last (halved) axis; at most ``W // 2 + 1``.
    groups : int
        Independent channel groups, as for :class:`torch.nn.Conv2d`: group
        ``g`` maps input block ``g`` to output block ``g`` (of ``in / groups``
        and ``out / groups`` channels) with its own weights. ``groups`` layers
        side by side, as one (what :mod:`flops_fit.ptycho.stacking` builds).

    Attributes
    ----------
    weight : torch.nn.Parameter
        Real tensor ``(2 modes1 modes2 groups, in / groups, 2, out / groups)``:
        kept frequency (row-major over rows ``0..modes1-1, -modes1..-1``, then
        columns, then groups), input channel, real / imaginary part, output
        channel. A complex weight is two real parameters, so ``count_params``
        counts ``4 modes1 modes2 in out / groups``.

    Notes
    -----
    Initialisation: real and imaginary parts uniform in ``+-1/sqrt(in)``, the
    scale PyTorch gives a linear layer, so the layer starts with a gain of
    order one on the kept band.

    Under :func:`torch.autocast` the layer still computes in the precision
    of its weight, fp32 (a bf16 input is upcast; the output is fp32).

    The backward pass is hand-written (first derivatives only; double
    backward raises). Forward FLOPs per sample, as ``forward_flops`` counts
    them: one ``rfft2`` per input channel, ``8 K in out`` for the mixing
    (``K = 2 modes1 modes2``), per output channel ``modes2`` complex row FFTs
    and ``H`` real column FFTs.
    """

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int, *, groups: int = 1) -> None:
        super().__init__()
        for name, value in [("in_channels", in_channels), ("out_channels", out_channels),
                            ("modes1", modes1), ("modes2", modes2), ("groups", groups)]:
            check_int(name, value, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Got groups={groups}, expected a divisor of in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2, self.groups = modes1, modes2, groups
        cin, cout = in_channels // groups, out_channels // groups
        bound = 1.0 / math.sqrt(cin)
        self.weight = nn.Parameter(torch.empty(2 * modes1 * modes2 * groups, cin, 2, cout).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return f"{self.in_channels}, {self.out_channels}, modes1={self.modes1}, modes2={self.modes2}{groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(B, in_channels, H, W)``; returns ``(B, out_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Got input of shape {tuple(x.shape)}, expected (B, {self.in_channels}, H, W)"
            )
        n_rows, n_cols = x.shape[-2:]
        if self.modes1 > n_rows // 2 or self.modes2 > n_cols // 2 + 1:
            raise ValueError(
                f"Got modes=({self.modes1}, {self.modes2}) for a {n_rows}x{n_cols} grid, which holds "
                f"at most ({n_rows // 2}, {n_cols // 2 + 1})"
            )
        # Outside autocast, in the weight's precision (fp32): complex tensors do not autocast,
        # cuFFT has no bf16 transform, and the mode mixing is a few % of the FLOPs.
        with torch.autocast(x.device.type, enabled=False):
            out = _SpectralConv.apply(x.to(self.weight.dtype), self.weight, self.modes1, self.modes2, self.groups)
        # Keep a channels-last input's layout, so the block's sum with the convolution needs no copy.
        return out.contiguous(memory_format=_memory_format(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for a channels-last 4-D tensor with more than one channel, else contiguous."""
    if x.dim() == 4 and x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class ChannelsLastConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` computed on channels-last (NHWC) data; same parameters, same maths.

    On the CPU, oneDNN's backward pass of a convolution with 2-16 channels
    is 2.5-4.7 times slower on NCHW data than on NHWC data (32x32 and 64x64
    grids, batch 16, one thread; the forward pass costs about the same), and
    the backward dominates a small generator's training step. At 32 channels
    and more the two layouts cost about the same. The output is channels-last;
    elementwise layers keep that layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def nchw_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every :class:`ChannelsLastConv2d` a plain NCHW ``Conv2d``.

    Same weights and maths, the layout these models had before channels-last:
    the reference that ``benchmarks/bench_fno_train.py`` times against.
    """
    plain = copy.deepcopy(model)
    for name, layer in list(plain.named_modules()):
        if isinstance(layer, ChannelsLastConv2d):
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                             layer.padding, layer.dilation, layer.groups, layer.bias is not None,
                             layer.padding_mode)
            conv.load_state_dict(layer.state_dict())
            parent, _, attr = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, attr, conv)
    return plain


class FourierBlock(nn.Module):
    """``y = x + GELU(SpectralConv2d(x) + Conv3x3(x))``, the block of GRID_LINES.md.

    Parameters
    ----------
    channels : int
        Channels in and out.
    modes1, modes2 : int
        Kept frequencies of the spectral path (see :class:`SpectralConv2d`).
    """

    def __init__(self, channels: int, modes1: int, modes2: int) -> None:
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes1, modes2)
        self.local = ChannelsLastConv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.spectral(x) + self.local(x))


class Log1p(nn.Module):
    """``log(1 + x)``: compresses the dynamic range of non-negative amplitudes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)


class Sqrt(nn.Module):
    """``sqrt(x)`` of non-negative amplitudes (negative inputs give NaN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x)


class InstanceNorm(nn.Module):
    """Per-sample, per-channel standardisation ``(x - mean) / sqrt(var + eps)``, no learned affine."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)

