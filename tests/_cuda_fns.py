"""Functions CUDA tests run in pool workers (module-level, so that they pickle by reference)."""

from __future__ import annotations

import os
import time

import torch

__all__ = ["cuda_worker_info", "gpu_uuid"]


def cuda_worker_info(delay: float) -> tuple[int, str | None, int, str]:
    """(pid, CUDA_VISIBLE_DEVICES, GPUs visible, UUID of GPU 0) as this worker sees them."""
    time.sleep(delay)  # keep this worker busy so that the next call reaches another one
    torch.ones(1, device="cuda")  # start CUDA here: from now on the visible set is fixed
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count(), gpu_uuid(0)


def gpu_uuid(index: int) -> str:
    """UUID of visible GPU ``index`` (names the physical GPU whatever CUDA_VISIBLE_DEVICES says)."""
    return str(torch.cuda.get_device_properties(index).uuid)
