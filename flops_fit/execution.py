"""What runs where an experiment runs: the device, the seeds, the call, its record.

:func:`execute_one` (one experiment) and :func:`execute_group` (experiments
an ``fn.run_group`` trains together) are module-level so that they pickle:
the same code runs in the sweep's process and in executor workers. Each
turns what happens into the record :mod:`flops_fit.runner` appends.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import platform
import random
import re
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flops_fit.allocator import undo_trim_threshold_alone
from flops_fit.sweep_io import check_measurements, check_seed, error_text

__all__ = ["check_device_string", "execute_group", "execute_one", "library_versions", "resolve_device",
           "seed_everything"]

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DEVICES_ALLOWED = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


# ---------------------------------------------------------------- devices


@functools.cache
def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def check_device_string(device: Any) -> str:
    if not isinstance(device, str):
        raise TypeError(f"Got device of type {type(device).__name__}, expected a str: {_DEVICES_ALLOWED}")
    if not _DEVICE_RE.match(device):
        raise ValueError(f"Got device={device!r}, expected {_DEVICES_ALLOWED}")
    return device


def resolve_device(device: str = "auto") -> str:
    """The torch device string to run on.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:<index>"`` or ``"mps"``.

    Returns
    -------
    str
        ``device`` itself, or for ``"auto"`` one of ``"cuda"``, ``"mps"``,
        ``"cpu"``. Asking for a device that is not there is an error.
    """
    check_device_string(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"Got device={device!r}, but CUDA is not available to torch {torch.__version__}; "
                "use device='auto' or 'cpu'"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"Got device={device!r}, but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    if device == "mps" and not _mps_available():
        raise RuntimeError("Got device='mps', but MPS is not available; use device='auto' or 'cpu'")
    return device


# ---------------------------------------------------------------- seeding, versions


def seed_everything(seed: int) -> None:
    """Seed Python's :mod:`random`, numpy's global generator and torch.

    Parameters
    ----------
    seed : int
        In ``[0, 2**32 - 1]``.

    Notes
    -----
    With an accelerator present this is :func:`torch.manual_seed`, which also
    seeds CUDA (all devices) and MPS. Without one, only the CPU generator is
    seeded: ``torch.manual_seed`` would also queue lazy seeding of every
    accelerator backend, formatting a stack trace each time (~0.4 ms).
    """
    seed = check_seed(seed, "seed")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - user code may draw from the global generator
    if torch.cuda.is_available() or _mps_available():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of python, torch, numpy and flops_fit in this process."""
    import flops_fit  # here, not at import time: flops_fit/__init__ may import this module

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "flops_fit": flops_fit.__version__,
    }


# ---------------------------------------------------------------- one experiment (runs in workers)


def execute_one(
    fn: Callable[..., Mapping[str, Any]], eid: str, config: dict[str, Any], run_dir: Path, device: str
) -> dict[str, Any]:
    """Seed, resolve the device, time ``fn`` and turn what happens into a record.

    Module-level so that it pickles: the same code runs in-process and in
    executor workers. Exceptions become a ``failed`` record; only
    ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    return _execute([(eid, config)], [run_dir], device,
                    lambda configs, run_dirs, resolved: [fn(configs[0], run_dirs[0], device=resolved)])[0]


def _record(eid: str, config: dict[str, Any], measurements: dict[str, Any], error: str | None,
            started_at: str, wall: float, device: str) -> dict[str, Any]:
    return {
        "experiment_id": eid,
        "config": config,
        "measurements": measurements,
        "status": "ok" if error is None else "failed",
        "error": error,
        "started_at": started_at,
        "wall_time_s": wall,
        "device": device,
        "versions": library_versions(),
    }


def _release_cuda_cache() -> None:
    if torch.cuda.is_initialized():
        # Hand what the run left cached back to the driver, so the next run (or another
        # process on this GPU) starts with the whole memory; gc first frees what a failed
        # run's traceback held.
        gc.collect()
        torch.cuda.empty_cache()


def execute_group(
    fn: Any, items: list[tuple[str, dict[str, Any]]], run_dirs: list[Path], device: str
) -> list[dict[str, Any]]:
    """:func:`execute_one` for experiments ``fn.run_group`` trains together: one record each.

    ``wall_time_s`` of each is the group's wall time over its size (the share
    of the machine it used). ``fn.run_group`` seeds each member itself
    (:func:`seed_everything` before building it); it is called seeded with
    the first member's seed.
    """
    if len(items) == 1:
        return [execute_one(fn, *items[0], run_dirs[0], device)]
    return _execute(items, run_dirs, device,
                    lambda configs, dirs, resolved: fn.run_group(configs, dirs, device=resolved))


def _execute(
    items: list[tuple[str, dict[str, Any]]],
    run_dirs: list[Path],
    device: str,
    call: Callable[[list[dict[str, Any]], list[Path], str], Any],
) -> list[dict[str, Any]]:
    """Resolve, seed with the first config's seed, time ``call`` and make one record per item.

    ``call(configs, run_dirs, device)`` returns, per item, its measurements or
    the exception that failed it. An exception out of ``call`` fails every
    item; a measurement check that raises fails its item alone. Either way the
    traceback goes to the item's ``traceback.txt``.
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    configs = [dict(config) for _, config in items]
    dirs = [Path(d) for d in run_dirs]
    resolved = device
    t0 = time.perf_counter()
    try:
        # A Dask worker (or any process whose environment set glibc's trim threshold
        # alone) would map every activation afresh: let its steps reuse freed memory.
        undo_trim_threshold_alone()
        resolved = resolve_device(device)
        seed_everything(configs[0]["seed"])
        for run_dir in dirs:
            if not run_dir.is_dir():  # made by the parent, unless the worker sees another file system
                run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        outs = list(call(configs, dirs, resolved))
        if len(outs) != len(items):
            raise ValueError(f"fn.run_group returned {len(outs)} results for {len(items)} experiments")
    except Exception as exc:
        outs = [exc] * len(items)
        for run_dir in dirs:
            _write_traceback(run_dir)
    wall = (time.perf_counter() - t0) / len(items)
    records = []
    for (eid, config), out, run_dir in zip(items, outs, dirs, strict=True):
        measurements: dict[str, Any] = {}
        if isinstance(out, BaseException):
            error = error_text(out)
        else:
            try:
                measurements, error = check_measurements(out, config)
            except Exception as exc:
                error = error_text(exc)
                _write_traceback(run_dir)
        records.append(_record(eid, config, measurements, error, started_at, wall, resolved))
    _release_cuda_cache()
    return records


def _write_traceback(run_dir: Path) -> None:
    """The exception being handled, into ``run_dir/traceback.txt`` (best effort)."""
    with contextlib.suppress(OSError):
        (run_dir / "traceback.txt").write_text(traceback.format_exc())
