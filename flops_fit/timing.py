"""Wall-clock measurements of a model: how long inference takes per sample.

Training time per step is measured where training is
(:func:`flops_fit.training.time_train_step`); FLOPs and parameter counts
are in :mod:`flops_fit.flops`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from flops_fit.checks import check_int

__all__ = ["time_inference"]


def time_inference(model: torch.nn.Module, batch: torch.Tensor, *, warmup: int = 3, repeats: int = 10) -> float:
    """Median inference time per sample, in seconds.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode under :func:`torch.inference_mode`; its train/eval
        mode is restored afterwards.
    batch : torch.Tensor
        Input with a leading batch dimension, on the model's device.
    warmup : int
        Untimed calls first (allocator, kernel selection, caches).
    repeats : int
        Timed calls; the median is taken (robust to a stray slow call).

    Returns
    -------
    float
        Median over ``repeats`` of the time of one forward pass divided by
        the batch size, in seconds per sample. On CUDA the pass is timed with
        CUDA events (device time, synchronised); elsewhere with
        :func:`time.perf_counter` (MPS is synchronised before reading it).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Got model of type {type(model).__name__}, expected a torch.nn.Module")
    if not isinstance(batch, torch.Tensor) or batch.ndim < 1 or len(batch) < 1:
        got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ValueError(f"Got batch {got}, expected a tensor with a non-empty leading batch dimension")
    warmup = check_int("warmup", warmup, minimum=0)
    repeats = check_int("repeats", repeats, minimum=1)
    kind = batch.device.type
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(batch)
            for _ in range(repeats):
                if kind == "cuda":
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    model(batch)
                    end.record()
                    torch.cuda.synchronize(batch.device)
                    times.append(start.elapsed_time(end) / 1e3)  # ms -> s
                else:
                    t0 = time.perf_counter()
                    model(batch)
                    if kind == "mps":
                        torch.mps.synchronize()
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return float(np.median(times)) / len(batch)
