"""Experiment functions for the runner tests.

Module-level so that they pickle by reference into process, Dask and
submitit workers (which import this module: keep it light).
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flops_fit.errors import DivergedError

__all__ = ["GroupedDraws", "count_calls", "flaky", "page_fault_count", "seeded_draws", "sleepy", "tiny_train",
           "worker_info"]


def count_calls(run_dir: Path) -> int:
    """Number of times an experiment function ran in ``run_dir``."""
    path = Path(run_dir) / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _mark_call(run_dir: Path) -> None:
    with open(Path(run_dir) / "calls.txt", "a") as f:
        f.write("call\n")


def tiny_train(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
    """A few SGD steps of a small linear model on random data: every result
    depends on the seed, through torch, numpy and Python's random."""
    _mark_call(run_dir)
    model = torch.nn.Linear(8, 1).to(device)  # random init from torch's generator
    x = torch.randn(16, 8, device=device)
    y = torch.from_numpy(np.random.rand(16, 1).astype(np.float32)).to(device)  # noqa: NPY002
    for _ in range(config.get("steps", 5)):
        loss = torch.nn.functional.mse_loss(model(x), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD; torch.optim's first step costs seconds of imports
            for p in model.parameters():
                p -= config.get("lr", 0.1) * p.grad
    return {"final_loss": loss.item(), "py_draw": random.random(), "weight0": model.weight[0, 0].item()}


def page_fault_count(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
    """Page faults of allocating and freeing ``config["nbytes"]`` ``config["repeats"]`` times."""
    from flops_fit.allocator import page_faults

    return {"faults": page_faults(config["nbytes"], config["repeats"])}


def seeded_draws(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
    """One draw from each global generator the runner seeds."""
    return {
        "py": random.random(),
        "np": float(np.random.rand()),  # noqa: NPY002
        "torch": torch.rand(()).item(),
    }


def sleepy(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
    """Sleep ``config["sleep"]`` seconds, then report ``2 * x``."""
    _mark_call(run_dir)
    time.sleep(config.get("sleep", 0.0))
    return {"double": 2 * config["x"]}


def flaky(config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
    """Misbehave as ``config["mode"]`` says: raise, diverge, run out of memory, ..."""
    _mark_call(run_dir)
    mode = config["mode"]
    if mode == "raise":
        raise ValueError("bad hyperparameter")
    if mode == "diverge":
        raise DivergedError("diverged at epoch 3: loss is nan")
    if mode == "nan_loss":
        return {"train_loss": math.nan, "test_loss": 0.5}
    if mode == "inf_loss":
        return {"train_loss": 0.1, "test_loss": np.float32("inf")}
    if mode == "oom":
        raise MemoryError("could not allocate 4 GiB")
    if mode == "cuda_oom":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if mode == "int_key":
        return {1: 0.5}
    if mode == "not_a_dict":
        return [1.0]  # type: ignore[return-value]
    if mode == "nested":
        return {"curve": [1.0, 2.0]}
    if mode == "clash":
        return {"mode": "changed", "train_loss": 0.5}
    if mode == "echo":  # repeating a config value is fine
        return {"mode": "echo", "seed": config["seed"], "train_loss": 0.5}
    if mode == "reserved":
        return {"status": "great", "train_loss": 0.5}
    if mode == "interrupt":
        raise KeyboardInterrupt
    if mode == "nan_metric":  # NaN outside a loss is a measurement, not a divergence
        return {"train_loss": 0.25, "ssim": math.nan}
    return {"train_loss": 0.25, "loss_name": "mse"}


def worker_info(delay: float = 0.2) -> tuple[int, str | None, int]:
    """(pid, CUDA_VISIBLE_DEVICES, torch threads) of the process running this."""
    time.sleep(delay)  # keep this worker busy so the others take the next tasks
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), torch.get_num_threads()


class GroupedDraws:
    """An experiment function that trains seeds together when their ``g`` matches.

    Each run measures a draw from the generator its seed sets (``value``) and
    the size of the group it ran in (``group``). A member with ``fail`` set
    fails alone; a group containing ``crash`` fails as a whole.
    """

    def __init__(self, max_group: Any = 4) -> None:
        self.max_group = max_group

    def __call__(self, config: dict[str, Any], run_dir: Path, *, device: str) -> dict[str, Any]:
        return {"value": float(torch.rand(1)), "group": 1}

    def group_key(self, config: dict[str, Any]) -> Any:
        return config.get("g")

    def run_group(self, configs: list[dict[str, Any]], run_dirs: list[Path], *, device: str) -> list[Any]:
        from flops_fit.runner import seed_everything

        if any(c.get("crash") for c in configs):
            raise RuntimeError("the whole group broke")
        if any(c.get("short") for c in configs):
            return []
        out: list[Any] = []
        for config in configs:
            seed_everything(config["seed"])
            out.append(ValueError("this member broke") if config.get("fail") else
                       {"value": float(torch.rand(1)), "group": len(configs)})
        return out
