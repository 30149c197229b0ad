"""Parameter counts and forward FLOPs of a PyTorch model, measured by running it.

The 6·N·D rule counts the dense matmul weights of transformers only. It is
wrong for convolutions (weights reused at every pixel) and for Fourier neural
operators (FFTs and complex spectral weights), so flops_fit measures instead:
it runs the model once under :class:`torch.utils.flop_counter.FlopCounterMode`
and corrects the two things that counter gets wrong for spectral models.

Conventions (stated once, used everywhere)
-------------------------------------------
* One FLOP is one real floating-point addition or multiplication; a
  multiply-add is 2 FLOPs (as FlopCounterMode counts ``mm``: ``2·m·n·k``).
* A complex FFT of ``n`` points (``n`` = product of the transformed sizes)
  costs ``5·n·log2(n)`` real FLOPs, the convention of FFTW's benchFFT [1]_;
  a real-input (``rfft``) or real-output (``irfft``) transform costs half,
  ``2.5·n·log2(n)``. FlopCounterMode counts FFTs as 0.
* A complex matmul / einsum is counted by FlopCounterMode as a real one
  (``2·m·n·k``); a complex multiply-add is 8 real FLOPs, so complex matmuls
  are multiplied by 4.
* Pointwise ops (activations, additions, complex elementwise products) are
  not counted, as in FlopCounterMode and the scaling-law literature [2]_.
* Attention (``scaled_dot_product_attention``) counts its two matmuls in full,
  ``4·T·S·d`` per head for T queries and S keys, as FlopCounterMode does on
  GPUs and on the meta device (no saving for a causal mask). On the CPU torch
  runs a kernel FlopCounterMode does not know and counts 0; it is mapped to
  the same formula here, so the count does not depend on the device.

References
----------
.. [1] M. Frigo and S. G. Johnson, "benchFFT", https://www.fftw.org/speed/method.html
.. [2] J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter

__all__ = ["count_params", "fft_flops", "forward_flops", "train_flops"]

aten = torch.ops.aten

# Backward costs about twice the forward pass (one matmul for the input
# gradient, one for the weight gradient), hence training ≈ 3 × forward.
TRAIN_TO_FORWARD = 3.0


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters, counted as real numbers.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    int
        Trainable parameters (real numbers): a complex weight counts 2, so a
        spectral layer stored as complex or as (real, imaginary) pairs has the
        same count.

    Examples
    --------
    >>> count_params(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def fft_flops(n: int, *, real: bool = False) -> float:
    """FLOPs of one FFT of ``n`` points (benchFFT convention).

    Parameters
    ----------
    n : int
        Points in one transform (the product of the transformed sizes).
    real : bool
        True for a real-input or real-output transform (``rfft``/``irfft``),
        which costs half a complex one.

    Returns
    -------
    float
        ``5·n·log2(n)`` real FLOPs, or ``2.5·n·log2(n)`` when ``real``.

    Examples
    --------
    >>> fft_flops(8)
    120.0
    """
    if n <= 1:
        return 0.0
    return (2.5 if real else 5.0) * n * math.log2(n)


def _transforms(shape: torch.Size, dims: list[int]) -> tuple[int, int]:
    """Split a tensor shape into (points per transform, number of transforms)."""
    n = math.prod(shape[d] for d in dims)
    return n, math.prod(shape) // max(n, 1)


def _raw(fn: Callable[..., float]) -> Callable[..., float]:
    # FlopCounterMode passes tensors (not shapes) to formulas marked _get_raw,
    # which is how the complex-matmul correction sees dtypes.
    fn._get_raw = True  # type: ignore[attr-defined]
    return fn


@_raw
def _fft_r2c_flops(x: torch.Tensor, dim: list[int], *args: Any, out_val: Any = None, **kw: Any) -> float:
    n, count = _transforms(x.shape, dim)
    return count * fft_flops(n, real=True)


@_raw
def _fft_c2r_flops(x: torch.Tensor, dim: list[int], *args: Any, out_val: Any = None, **kw: Any) -> float:
    # The transform length is the real output's, not the halved input's.
    n, count = _transforms(out_val.shape, dim)
    return count * fft_flops(n, real=True)


@_raw
def _fft_c2c_flops(x: torch.Tensor, dim: list[int], *args: Any, out_val: Any = None, **kw: Any) -> float:
    n, count = _transforms(x.shape, dim)
    return count * fft_flops(n)


def _complex_aware(packet: Any) -> Callable[..., float]:
    base = flop_counter.flop_registry[packet]  # already accepts raw tensors

    @_raw
    def flops(*args: Any, out_val: Any = None, **kwargs: Any) -> float:
        count = base(*args, out_val=out_val, **kwargs)
        is_complex = any(isinstance(a, torch.Tensor) and a.is_complex() for a in args)
        return 4 * count if is_complex else count

    return flops


@_raw
def _sdpa_flops(*args: Any, out_val: Any = None, **kwargs: Any) -> float:
    # torch's formula for the CUDA kernels (registry entries already take raw tensors).
    return flop_counter.flop_registry[aten._scaled_dot_product_flash_attention](*args, out_val=out_val, **kwargs)


_MATMULS = [aten.mm, aten.bmm, aten.addmm, aten.baddbmm]
_CUSTOM = {
    aten._fft_r2c: _fft_r2c_flops,
    aten._fft_c2r: _fft_c2r_flops,
    aten._fft_c2c: _fft_c2c_flops,
    **{p: _complex_aware(p) for p in _MATMULS},
    # The CPU attention kernel, counted like the CUDA ones (see the module docstring).
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
}


def forward_flops(model: nn.Module, sample_input: torch.Tensor | tuple[torch.Tensor, ...]) -> float:
    """Forward FLOPs per sample, measured by running the model once.

    Parameters
    ----------
    model : torch.nn.Module
        The model; it is run once in eval mode without gradients and its
        training flag is restored.
    sample_input : torch.Tensor or tuple of torch.Tensor
        A batch the model accepts; the leading dimension of the first tensor
        is the batch size the total is divided by.

    Returns
    -------
    float
        Real FLOPs per sample of one forward pass: matmuls and convolutions as
        counted by ``FlopCounterMode`` (complex matmuls ×4), plus FFTs at
        ``5·n·log2(n)`` per complex transform and half that for real-input or
        real-output ones. See the module docstring for the conventions.

    Notes
    -----
    Training FLOPs per sample are ``3 ×`` this (forward + backward), see
    :func:`train_flops`.

    Examples
    --------
    >>> forward_flops(torch.nn.Linear(4, 3, bias=False), torch.zeros(2, 4))
    24.0
    """
    inputs = sample_input if isinstance(sample_input, tuple) else (sample_input,)
    if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].dim() == 0:
        raise ValueError(
            f"Got sample_input of type {type(sample_input).__name__}, expected a batched tensor "
            "(or a tuple starting with one)"
        )
    batch = inputs[0].shape[0]
    if batch < 1:
        raise ValueError(f"sample_input has an empty batch (shape {tuple(inputs[0].shape)})")
    was_training = model.training
    model.eval()
    try:
        counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_CUSTOM)
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops()) / batch


def train_flops(forward_flops_per_sample: float, samples: float) -> float:
    """Training FLOPs of ``samples`` samples: ``3 × forward × samples``.

    Parameters
    ----------
    forward_flops_per_sample : float
        Forward FLOPs per sample (see :func:`forward_flops`).
    samples : float
        Training samples seen (samples, not batches or epochs).

    Returns
    -------
    float
        FLOPs; backward ≈ 2 × forward, as in Kaplan et al. (2020).

    Examples
    --------
    >>> train_flops(10.0, 4)
    120.0
    """
    return TRAIN_TO_FORWARD * forward_flops_per_sample * samples
