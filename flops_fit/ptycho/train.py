"""Training and inference of a patch generator on simulated diffraction.

The reference settings (PtychoPINN, Sci. Rep. 13, 22789, 2023): Adam,
lr 1e-3, batch 16, a supervised MAE on the real and imaginary parts of the
object patch, or a physics loss on the far-field amplitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flops_fit.ptycho.models import to_complex
from flops_fit.runner import DivergedError
from flops_fit.training import lr_factor, sample_order

__all__ = [
    "LOSSES",
    "InputScale",
    "as_channels",
    "fit",
    "input_scale",
    "mae_loss",
    "physics_loss",
    "predict",
]

LossName = Literal["mae", "physics"]
Schedule = Literal["constant", "cosine"]
#: Cosine schedule settings (Chinchilla: the cosine cycle matches the training length).
WARMUP_FRACTION, MIN_LR_RATIO = 0.05, 0.1


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
        raise ValueError(f"training inputs must have a finite, positive RMS, got {rms}")
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
        Adam settings (reference: 16, 1e-3).
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

    Returns
    -------
    list of dict
        One entry per (possibly partial) epoch: ``epoch``, ``samples_seen``,
        ``train_loss`` (mean over the epoch's batches).

    Raises
    ------
    DivergedError
        When a batch loss is NaN or infinite.
    """
    if loss not in LOSSES:
        raise ValueError(f"Got loss={loss!r}, expected one of {sorted(LOSSES)}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"Got schedule={schedule!r}, expected one of ['constant', 'cosine']")
    loss_fn = LOSSES[loss]
    n = len(x)
    # The whole split fits on any device at these sizes; moving it once avoids
    # a host-to-device copy per batch.
    xs = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    ys = as_channels(y).to(device)
    p = torch.from_numpy(probe).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.tensor(sample_order(list(range(n)), samples, torch.Generator().manual_seed(seed)))
    passes = order.split(n)  # one shuffled pass over the data per epoch, the last cut short
    total_steps = sum(math.ceil(len(chunk) / batch_size) for chunk in passes)
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    step = 0
    model.train()
    history: list[dict[str, float]] = []
    seen = 0
    for epoch, chunk in enumerate(tqdm(passes, desc="epochs", leave=False, disable=not progress)):
        order = chunk.to(device)
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            value = loss_fn(model(xs[idx]), ys[idx], xs[idx], p)
            item = value.item()  # one device sync per step serves the check and the history
            if not math.isfinite(item):
                raise DivergedError(f"diverged at epoch {epoch + 1}: loss is {item}")
            opt.zero_grad(set_to_none=True)
            value.backward()
            if schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * lr_factor(step, total_steps, warmup, MIN_LR_RATIO)
            opt.step()
            step += 1
            total, batches = total + item, batches + 1
            seen += len(idx)
        history.append({"epoch": epoch + 1, "samples_seen": seen, "train_loss": total / batches})
    return history


def predict(
    model: nn.Module, x: np.ndarray, *, device: str = "cpu", batch_size: int = 64
) -> np.ndarray:
    """Complex patches ``(n, N, N)`` predicted from ``x`` ``(n, 1, N, N)``."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])).to(device)
            out.append(to_complex(model(batch).float()).cpu().numpy())
    return np.concatenate(out)
