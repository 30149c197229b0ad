"""Training and inference of a patch generator on simulated diffraction.

The reference settings (PtychoPINN, Sci. Rep. 13, 22789, 2023): Adam,
lr 1e-3, batch 16, a supervised MAE on the real and imaginary parts of the
object patch, or a physics loss on the far-field amplitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flops_fit.checks import check_int, check_positive_float
from flops_fit.device import DeviceSettings, host_to_device
from flops_fit.errors import DivergedError
from flops_fit.ptycho.models import to_complex
from flops_fit.ptycho.stacking import member_slices, stack_inputs, stack_models, unstack_into
from flops_fit.training import TrainSettings, lr_factor, sample_order

__all__ = [
    "LOSSES",
    "InputScale",
    "as_channels",
    "fit",
    "fit_members",
    "input_scale",
    "mae_loss",
    "physics_loss",
    "predict",
    "scaled_lr",
]

LossName = Literal["mae", "physics"]
Schedule = Literal["constant", "cosine"]
#: Cosine schedule settings (Chinchilla: the cosine cycle matches the training length):
#: the generic trainer's defaults, so both trainers anneal alike.
WARMUP_FRACTION, MIN_LR_RATIO = TrainSettings.warmup_fraction, TrainSettings.min_lr_ratio


def mae_loss(
    pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor, probe: torch.Tensor
) -> torch.Tensor:
    """Supervised MAE on the (real, imaginary) channels, both ``(B, 2, N, N)``."""
    return (pred - target).abs().mean()


def physics_loss(
    pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor, probe: torch.Tensor
) -> torch.Tensor:
    """MAE between the predicted and measured far-field amplitude.

    The predicted amplitude is ``|FFT2(P·Ô)| / N`` (orthonormal FFT,
    fftshifted, as the simulator), compared with the network input ``X``
    and normalised by the batch mean of ``X`` so the loss is scale-free.
    Needs no labels; ``target`` is ignored.
    """
    obj = to_complex(pred)  # (B, N, N)
    far = torch.fft.fftshift(torch.fft.fft2(probe * obj, norm="ortho"), dim=(-2, -1))
    amp = x[:, 0]  # (B, N, N)
    return (far.abs() - amp).abs().mean() / amp.mean().clamp_min(1e-12)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mae": mae_loss, "physics": physics_loss}


def input_scale(x: np.ndarray) -> float:
    """Reciprocal RMS of the training inputs: the factor that gives them unit RMS.

    The simulated amplitudes are tiny (RMS about 0.04 at N = 64, median
    5e-4): fed as they are, a freshly initialised network sees an almost
    zero input and learns only the mean object for thousands of steps.
    """
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if not np.isfinite(rms) or rms <= 0:
        raise ValueError(f"Got training inputs of RMS {rms}, expected a finite number > 0")
    return 1.0 / rms


class InputScale(nn.Module):
    """Multiply the input by a fixed dataset constant, then run ``model``.

    The standard per-dataset normalisation (a buffer, not a parameter): the
    input transform (``log1p``, ``sqrt``, ...) then acts on unit-RMS data,
    and the physics loss still compares against the raw amplitude.
    """

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.scale)


def as_channels(y: np.ndarray) -> torch.Tensor:
    """Complex patches ``(n, N, N)`` -> float32 ``(n, 2, N, N)`` (real, imag)."""
    return torch.from_numpy(np.stack([y.real, y.imag], axis=1).astype(np.float32))


def scaled_lr(batch_size: int, *, base_batch: int = 16, base_lr: float = 1e-3) -> float:
    """Adam learning rate for ``batch_size`` by the square-root scaling rule.

    ``lr = base_lr * sqrt(batch_size / base_batch)``: for Adam the gradient
    noise, not the step count, sets the step size, and the rule keeps the
    training dynamics of the reference (batch 16, lr 1e-3) to first order
    as the batch grows (Malladi et al. 2022, "On the SDEs and Scaling Rules
    for Adaptive Gradient Algorithms"). Linear scaling is the rule for SGD.

    Examples
    --------
    >>> scaled_lr(16), scaled_lr(256)
    (0.001, 0.004)
    """
    batch_size, base_batch = check_int("batch_size", batch_size, minimum=1), check_int("base_batch", base_batch, minimum=1)
    base_lr = check_positive_float("base_lr", base_lr)
    return base_lr * math.sqrt(batch_size / base_batch)


def _diverged(value: float, epoch: int, step: int, every: int) -> DivergedError | None:
    """The error for a non-finite epoch loss sum, or None."""
    if math.isfinite(value):
        return None
    where = "" if every == 1 else f" (found at step {step} of the epoch, checked every {every} steps)"
    return DivergedError(f"diverged at epoch {epoch + 1}: loss is {value}{where}")


def _forward_fn(model: nn.Module, mode: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training forward: ``model`` itself, or compiled in ``mode`` (:func:`torch.compile`)."""
    if mode is None:
        return model
    compiled = torch.compile(model, mode=mode)
    if mode != "reduce-overhead":
        return compiled

    def forward(x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()  # a new step: earlier graph outputs may be overwritten
        return compiled(x)

    return forward


def fit(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    probe: np.ndarray,
    *,
    samples: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    loss: LossName = "mae",
    schedule: Schedule = "constant",
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    settings: DeviceSettings | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` with Adam on exactly ``samples`` training samples.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, 1, N, N)`` diffraction amplitude to ``(B, 2, N, N)``.
    x : numpy.ndarray
        Network input, float32 ``(n, 1, N, N)``.
    y : numpy.ndarray
        Labels, complex ``(n, N, N)``.
    probe : numpy.ndarray
        Complex probe ``(N, N)`` (used by the physics loss).
    samples : int
        Training samples to draw, in passes of shuffled epochs; the last
        epoch may be partial, so fractional epochs are exact (samples).
    batch_size, lr : int, float
        Adam settings (reference: 16, 1e-3; for larger batches see
        :func:`scaled_lr`).
    loss : {"mae", "physics"}
        Training objective.
    schedule : {"constant", "cosine"}
        ``"constant"``: the reference's fixed ``lr``. ``"cosine"``: linear
        warm-up over 5 % of the steps, then a half cosine to 0.1 × ``lr`` at
        the last step, so the run ends annealed whatever its length (what
        an IsoFLOP comparison of different training lengths needs; Hoffmann
        et al. 2022, Sec. 3 and Fig. A1).
    device : str
        Torch device string.
    seed : int
        Seed of the shuffling generator.
    progress : bool
        Show a tqdm bar over epochs.
    settings : DeviceSettings, optional
        Precision, divergence-check interval and compilation; default
        :meth:`DeviceSettings.for_device` of ``device`` (on the CPU: fp32
        and a check every step, as the reference loop).

    Returns
    -------
    list of dict
        One entry per (possibly partial) epoch: ``epoch``, ``samples_seen``,
        ``train_loss`` (mean over the epoch's batches).

    Raises
    ------
    DivergedError
        When a batch loss is NaN or infinite, found at the next check (every
        ``settings.check_every`` steps and at the end of each epoch).

    Notes
    -----
    The split, the probe and the sample order are copied to the device once;
    a step then runs without waiting on the host: batches are gathered on the
    device and the loss is summed there (in float64, so the epoch mean is the
    one a per-step ``.item()`` would give; float32 on MPS, which has no
    float64). The host reads that sum only at the checks. Under ``"bf16"``
    the forward pass runs under autocast and the loss in fp32.
    """
    result = fit_members([model], x, y, probe, samples=samples, seeds=[seed], batch_size=batch_size, lr=lr,
                         loss=loss, schedule=schedule, device=device, progress=progress, settings=settings)[0]
    if isinstance(result, DivergedError):
        raise result
    return result


def fit_members(
    models: Sequence[nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    probe: np.ndarray,
    *,
    samples: int,
    seeds: Sequence[int],
    batch_size: int = 16,
    lr: float = 1e-3,
    loss: LossName = "mae",
    schedule: Schedule = "constant",
    device: str = "cpu",
    progress: bool = True,
    settings: DeviceSettings | None = None,
) -> list[list[dict[str, float]] | DivergedError]:
    """Train ``M`` models of one architecture and size together, each as :func:`fit` would alone.

    Member ``m`` draws its samples in the order of ``seeds[m]`` and sees its
    own loss only; with ``M > 1`` the members run as one stacked model
    (:func:`~flops_fit.ptycho.stacking.stack_models`: every layer once for all
    of them), so each op's fixed cost is paid once per step, not ``M`` times.
    The trained parameters are copied back into ``models``. A member trains
    the same model as alone, up to the order of float summation (tested).

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Same architecture and sizes; one model is plain :func:`fit`.
    seeds : sequence of int
        One shuffling seed per model.
    x, y, probe, samples, batch_size, lr, loss, schedule, device, progress, settings
        As for :func:`fit`, shared by all members.

    Returns
    -------
    list
        Per member, its :func:`fit` history, or the :class:`DivergedError` that
        stopped it: a diverged member's NaNs stay in its own channels, and the
        others train on (the whole loop stops once every member has diverged).
    """
    if loss not in LOSSES:
        raise ValueError(f"Got loss={loss!r}, expected one of {sorted(LOSSES)}")
    check_int("samples", samples, minimum=1)
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"Got schedule={schedule!r}, expected one of ['constant', 'cosine']")
    models, seeds = list(models), list(seeds)
    if not models or len(seeds) != len(models):
        raise ValueError(f"Got {len(models)} models and {len(seeds)} seeds, expected at least one model and one seed each")
    members = len(models)
    dev = torch.device(device)
    settings = settings or DeviceSettings.for_device(dev)
    loss_fn = LOSSES[loss]
    n = len(x)
    xs, ys, p = host_to_device(x, dev), host_to_device(as_channels(y), dev), host_to_device(probe, dev)
    model = models[0] if members == 1 else stack_models(models, check_input=xs[:2])
    # fused: one kernel for the whole Adam update on CUDA; elsewhere torch's default.
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True if dev.type == "cuda" else None)
    # Per member: one shuffled pass per epoch, the last cut short; all members share the epoch lengths.
    passes = [host_to_device(torch.tensor(sample_order(list(range(n)), samples, torch.Generator().manual_seed(s))),
                             dev).split(n) for s in seeds]
    total_steps = sum(math.ceil(len(chunk) / batch_size) for chunk in passes[0])
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    sum_dtype = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    forward = _forward_fn(model, settings.compile_mode)
    step = 0
    model.train()
    histories: list[list[dict[str, float]]] = [[] for _ in models]
    failed: list[DivergedError | None] = [None] * members
    seen = 0
    with settings.matmuls(dev.type):
        for epoch, chunks in enumerate(tqdm(list(zip(*passes, strict=True)), desc="epochs", leave=False,
                                            disable=not progress)):
            total = torch.zeros(members, dtype=sum_dtype, device=dev)
            batches = math.ceil(len(chunks[0]) / batch_size)
            for batch in range(batches):
                idx = [chunk[batch * batch_size : (batch + 1) * batch_size] for chunk in chunks]
                xb = [xs.index_select(0, i) for i in idx]  # gathers on the device: no host sync
                with settings.autocast(dev.type):
                    pred = forward(xb[0] if members == 1 else stack_inputs(xb))
                preds = [pred] if members == 1 else member_slices(pred, members)
                values = [loss_fn(pm.float(), ys.index_select(0, i), xm, p)
                          for pm, i, xm in zip(preds, idx, xb, strict=True)]
                value = values[0] if members == 1 else torch.stack(values)
                total = total + value.detach().to(sum_dtype)
                if (batch + 1) % settings.check_every == 0 or batch + 1 == batches:
                    epoch_sums = total.tolist()  # the host sync
                    for m, member_sum in enumerate(epoch_sums):
                        failed[m] = failed[m] or _diverged(member_sum, epoch, batch + 1, settings.check_every)
                    if all(failed):
                        return list(failed)
                opt.zero_grad(set_to_none=True)
                value.sum().backward()  # each member's parameters get its own loss's gradient
                if schedule == "cosine":
                    for group in opt.param_groups:
                        group["lr"] = lr * lr_factor(step, total_steps, warmup, MIN_LR_RATIO)
                opt.step()
                step += 1
                seen += len(idx[0])
            for history, member_sum in zip(histories, epoch_sums, strict=True):
                history.append({"epoch": epoch + 1, "samples_seen": seen, "train_loss": member_sum / batches})
    if members > 1:
        unstack_into(model, models)
    return [err or history for err, history in zip(failed, histories, strict=True)]


def predict(
    model: nn.Module,
    x: np.ndarray,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    settings: DeviceSettings | None = None,
) -> np.ndarray:
    """Complex patches ``(n, N, N)`` predicted from ``x`` ``(n, 1, N, N)``.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode.
    x : numpy.ndarray
        float32 ``(n, 1, N, N)`` network input.
    device : str
        Torch device string (the model's).
    batch_size : int, optional
        Patterns per forward pass (default ``settings.eval_batch``).
    settings : DeviceSettings, optional
        Default :meth:`DeviceSettings.for_device` of ``device``.

    Notes
    -----
    On CUDA the input is staged in pinned memory, batches are copied in and
    predictions out without blocking, and the host waits once, at the end.
    """
    dev = torch.device(device)
    settings = settings or DeviceSettings.for_device(dev)
    batch_size = batch_size or settings.eval_batch
    pinned = dev.type == "cuda"
    xs = torch.from_numpy(np.ascontiguousarray(x))
    xs = xs.pin_memory() if pinned else xs
    out = torch.empty((len(x), 2, *x.shape[-2:]), dtype=torch.float32, pin_memory=pinned)
    model.eval()
    with torch.inference_mode(), settings.matmuls(dev.type):
        for start in range(0, len(x), batch_size):
            batch = xs[start : start + batch_size].to(dev, non_blocking=pinned)
            with settings.autocast(dev.type):
                pred = model(batch)
            out[start : start + len(batch)].copy_(pred.float(), non_blocking=pinned)
    if pinned:
        torch.cuda.synchronize(dev)  # the copies into `out` are done
    return to_complex(out).numpy()
