"""How training and inference run on a device: precision, host syncs, batches, copies.

:class:`DeviceSettings` gathers the choices that make a CUDA run fast and
leave the CPU as it was. :meth:`DeviceSettings.for_device` gives

* on the CPU: fp32, a divergence check after every step, inference batches
  of 64: exactly what training did before these settings existed, so CPU
  results are bit-identical;
* on MPS: the same, with a divergence check every 50 steps;
* on CUDA: bf16 autocast (on GPUs with bf16 tensor cores), a divergence check
  every 50 steps instead of a host sync per step, inference batches of 1024.

Precision (``precision``):

``"fp32"``
    IEEE fp32 everywhere; on CUDA TF32 is switched off for matmuls and
    convolutions (cuDNN convolutions would otherwise use TF32 by default).
``"tf32"``
    fp32 tensors, TF32 tensor-core matmuls and convolutions (10-bit mantissa).
``"bf16"``
    :func:`torch.autocast` to bf16 for the real-valued layers (convolutions,
    and what follows them); matmuls and convolutions left in fp32 run in IEEE
    fp32. Layers that need more (the spectral product of
    :class:`~flops_fit.ptycho.layers.SpectralConv2d`: FFTs and the complex
    mode mixing) leave autocast and run in fp32: complex tensors do not
    autocast, cuFFT has no bf16 transform, and the mixing is about 2 % of the
    FLOPs of ``fno`` w32 m12.

Not measured on a GPU yet: ``benchmarks/gpu_check.py`` measures each choice.
``compile_mode`` (:func:`torch.compile`, CUDA graphs with
``"reduce-overhead"``) stays off by default until a measurement shows it pays.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from flops_fit.checks import check_int

__all__ = ["COMPILE_MODES", "PRECISIONS", "DeviceSettings", "fp32_matmuls", "host_to_device", "synchronize"]

Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS = ("fp32", "tf32", "bf16")
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")
#: Steps between divergence checks on an accelerator: one host sync per 50
#: steps costs under 2 % at 1 ms steps; a diverged run trains at most 49
#: steps too many before it fails.
ACCELERATOR_CHECK_EVERY = 50
#: Inference batch on CUDA: large enough that a 64 x 64 ``fno`` pass is not
#: launch-bound, small enough (a few GB for ``hybrid``) for any current GPU.
CUDA_EVAL_BATCH = 1024
CPU_EVAL_BATCH = 64


@dataclass(frozen=True)
class DeviceSettings:
    """Precision, host-sync interval, inference batch and compilation of a run.

    Parameters
    ----------
    precision : {"fp32", "tf32", "bf16"}
        Arithmetic of the forward pass (see the module docstring).
    check_every : int
        Training steps between divergence checks (one host sync each, plus
        one at the end of every epoch). 1 checks every step.
    eval_batch : int
        Patterns per inference batch.
    compile_mode : {None, "default", "reduce-overhead", "max-autotune"}
        :func:`torch.compile` mode of the training forward pass; None runs
        eagerly. ``"reduce-overhead"`` adds CUDA graphs.

    Examples
    --------
    >>> DeviceSettings.for_device("cpu")
    DeviceSettings(precision='fp32', check_every=1, eval_batch=64, compile_mode=None)
    >>> DeviceSettings.for_device("cpu").replace(precision="bf16").precision
    'bf16'
    """

    precision: Precision = "fp32"
    check_every: int = 1
    eval_batch: int = CPU_EVAL_BATCH
    compile_mode: CompileMode | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"Got precision={self.precision!r}, expected one of {list(PRECISIONS)}")
        check_int("check_every", self.check_every, minimum=1)
        check_int("eval_batch", self.eval_batch, minimum=1)
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"Got compile_mode={self.compile_mode!r}, expected one of {list(COMPILE_MODES)}")

    @classmethod
    def for_device(cls, device: str | torch.device) -> DeviceSettings:
        """The defaults for ``device`` (a torch device or its string).

        CPU: :class:`DeviceSettings` ``()`` (today's behaviour). MPS: the
        same with a check every :data:`ACCELERATOR_CHECK_EVERY` steps. CUDA:
        bf16 where the GPU has bf16 tensor cores (compute capability >= 8.0,
        else fp32), a check every :data:`ACCELERATOR_CHECK_EVERY` steps,
        inference batches of :data:`CUDA_EVAL_BATCH`.
        """
        dev = torch.device(device)
        if dev.type == "mps":
            return cls(check_every=ACCELERATOR_CHECK_EVERY)
        if dev.type != "cuda":
            return cls()
        bf16 = torch.cuda.get_device_capability(dev) >= (8, 0)
        return cls(
            precision="bf16" if bf16 else "fp32",
            check_every=ACCELERATOR_CHECK_EVERY,
            eval_batch=CUDA_EVAL_BATCH,
        )

    def replace(self, **changes: Any) -> DeviceSettings:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def autocast(self, device_type: str) -> contextlib.AbstractContextManager[Any]:
        """Autocast to bf16 on ``device_type`` for ``"bf16"``; a no-op context otherwise."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def matmuls(self, device_type: str) -> contextlib.AbstractContextManager[None]:
        """The fp32 matmul / convolution mode on CUDA: TF32 for ``"tf32"``, IEEE otherwise.

        A no-op context on other devices (the CPU keeps its own settings).
        """
        if device_type != "cuda":
            return contextlib.nullcontext()
        return fp32_matmuls(tf32=self.precision == "tf32")


@contextlib.contextmanager
def fp32_matmuls(*, tf32: bool) -> Iterator[None]:
    """Run cuBLAS matmuls and cuDNN convolutions of fp32 tensors in TF32 or IEEE fp32.

    Sets the process-wide flags and restores them on exit (so concurrent
    threads of one process share them). torch >= 2.9 has per-backend
    ``fp32_precision`` flags; reading the legacy ``allow_tf32`` after setting
    those raises, so the new ones are used where they exist.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        mode = "tf32" if tf32 else "ieee"
        flags: list[tuple[Any, str, Any]] = [(matmul, "fp32_precision", mode), (cudnn.conv, "fp32_precision", mode)]
    else:
        flags = [(matmul, "allow_tf32", tf32), (cudnn, "allow_tf32", tf32)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in flags]
    try:
        for obj, name, value in flags:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def host_to_device(data: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """Copy host data to ``device``; through pinned memory and without blocking on CUDA.

    The copy is queued on the current stream, so kernels that use the result
    later on that stream see it complete; the host does not wait for it.
    On other devices this is a plain ``.to(device)``.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
    dev = torch.device(device)
    if dev.type == "cuda":
        return tensor.pin_memory().to(dev, non_blocking=True)
    return tensor.to(dev)


def synchronize(device: str | torch.device) -> None:
    """Wait until the work queued on ``device`` is done (CUDA, MPS); nothing on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()
