"""Run a sweep: one function call per experiment.

The runner adds what every experiment needs and no experiment should write
itself: device choice, seeding, timing, error capture, a crash-safe record
(:mod:`flops_fit.results`), resume, a progress bar, and execution on any
:class:`concurrent.futures.Executor`. It knows nothing about what the
function trains.

The experiment contract: ``fn(config, run_dir, *, device) -> dict`` takes a
flat dict of JSON-able hyperparameters (``config["seed"]`` always set), the
run's own folder and a torch device string, and returns a flat dict of
measurements (numbers, strings, bools or None).

What a config and a measurement may be is checked in
:mod:`flops_fit.sweep_io`. ``DivergedError`` (now :mod:`flops_fit.errors`)
and ``time_inference`` (now :mod:`flops_fit.timing`) are re-exported here for
one release; import them from their new modules.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import gc
import platform
import random
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from flops_fit.errors import DivergedError
from flops_fit.results import ResultsStore
from flops_fit.sweep_io import (
    check_measurements,
    check_seed,
    configs_by_id,
    error_text,
    lost_record,
)
from flops_fit.timing import time_inference

__all__ = [
    "DivergedError",
    "check_output_dir",
    "library_versions",
    "resolve_device",
    "run_sweep",
    "seed_everything",
    "time_inference",
]

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DEVICES_ALLOWED = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


# ---------------------------------------------------------------- devices


@functools.cache
def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def _check_device_string(device: Any) -> str:
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
    _check_device_string(device)
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


def _execute_one(
    fn: Callable[..., Mapping[str, Any]], eid: str, config: dict[str, Any], run_dir: Path, device: str
) -> dict[str, Any]:
    """Seed, resolve the device, time ``fn`` and turn what happens into a record.

    Module-level so that it pickles: the same code runs in-process and in
    executor workers. Exceptions become a ``failed`` record; only
    ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    measurements: dict[str, Any] = {}
    error = None
    resolved = device
    t0 = time.perf_counter()
    try:
        resolved = resolve_device(device)
        seed_everything(config["seed"])
        run_dir = Path(run_dir)
        if not run_dir.is_dir():  # made by the parent, unless the worker sees another file system
            run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        out = fn(dict(config), run_dir, device=resolved)
        wall = time.perf_counter() - t0
        measurements, error = check_measurements(out, config)
    except Exception as exc:
        wall = time.perf_counter() - t0
        error = error_text(exc)
        with contextlib.suppress(OSError):
            (Path(run_dir) / "traceback.txt").write_text(traceback.format_exc())
    if torch.cuda.is_initialized():
        # Hand what the run left cached back to the driver, so the next run (or another
        # process on this GPU) starts with the whole memory; gc first frees what a failed
        # run's traceback held.
        gc.collect()
        torch.cuda.empty_cache()
    return {
        "experiment_id": eid,
        "config": config,
        "measurements": measurements,
        "status": "ok" if error is None else "failed",
        "error": error,
        "started_at": started_at,
        "wall_time_s": wall,
        "device": resolved,
        "versions": library_versions(),
    }


# ---------------------------------------------------------------- the sweep


def check_output_dir(output_dir: str | Path) -> None:
    """Fail now if :func:`run_sweep` could not write ``output_dir`` (created if missing).

    For callers with long work before the sweep (simulating its data): the
    folder is opened as the sweep opens it, then closed again.

    Raises
    ------
    flops_fit.locking.FolderLockedError
        Another process writes the folder (the message names it).
    FileExistsError
        Its ``study_results.csv`` holds rows its ``runs.jsonl`` does not.
    """
    ResultsStore(output_dir).close()


def run_sweep(
    experiments: Iterable[Mapping[str, Any]] | Any,
    fn: Callable[..., Mapping[str, Any]],
    output_dir: str | Path,
    *,
    executor: cf.Executor | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    progress: bool = True,
    device: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """Run ``fn`` once per experiment and record every run in ``output_dir``.

    Parameters
    ----------
    experiments : iterable of dict, or an object with ``.configs()``
        Flat dicts of JSON-able hyperparameters (a :class:`SweepPlan` works).
        Identical configs run once.
    fn : callable
        ``fn(config, run_dir, *, device) -> dict`` of flat measurements.
        ``config["seed"]`` is set, and Python, numpy and torch are seeded with
        it just before the call. Any measurement whose name contains ``loss``
        and is NaN or infinite marks the run failed (``DivergedError``).
        It must pickle (a module-level function) for process executors.
    output_dir : str or pathlib.Path
        The sweep folder (see :mod:`flops_fit.results`). It is locked while
        the sweep runs: a second sweep into it raises
        :class:`~flops_fit.locking.FolderLockedError` at once, naming this
        process; a folder whose table holds rows its log does not is refused
        (``FileExistsError``) rather than overwritten.
    executor : concurrent.futures.Executor, optional
        Runs experiments concurrently (see :mod:`flops_fit.executors`); the
        default runs them one after the other in this process. Only this
        process writes the results, as runs complete. Thread-based executors
        share the global random generators, so their runs are not
        reproducible; use processes. (Dask workers also draw from Python's
        :mod:`random` themselves; numpy and torch stay reproducible there.)
    resume : bool
        Skip experiments that already finished ``ok`` in ``output_dir``. With
        False everything runs again (new records win over old ones).
    retry_failed : bool
        With ``resume``, also rerun experiments whose latest record failed.
    progress : bool
        Show a tqdm bar over the experiments.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda[:i]"`` or
        ``"mps"``, resolved where the experiment runs. Without an executor,
        an unavailable device is an error before anything runs.
    seed : int
        Seed for configs that have no ``"seed"`` key.

    Returns
    -------
    pandas.DataFrame
        The whole results table of ``output_dir`` after the sweep (earlier
        sweeps into the same folder included), as :func:`load_results` gives.

    Notes
    -----
    An exception in ``fn`` (out-of-memory included) gives a ``failed`` row
    with ``error = "ExcType: message"`` (the traceback goes to
    ``runs/<id>/traceback.txt``) and the sweep goes on. ``KeyboardInterrupt``
    stops the sweep: experiments not started are cancelled, finished ones stay
    recorded, and the interrupt is re-raised (read the rows with
    :func:`~flops_fit.results.load_results`). Runs already executing in
    worker processes are not waited for and not recorded.
    """
    if not callable(fn):
        raise TypeError(f"Got fn of type {type(fn).__name__}, expected a callable fn(config, run_dir, *, device)")
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(
            f"Got executor of type {type(executor).__name__}, expected a concurrent.futures.Executor "
            "(see flops_fit.executors for Dask and submitit)"
        )
    seed = check_seed(seed, "seed")
    _check_device_string(device)
    if executor is None:
        device = resolve_device(device)  # fail before any work; workers may see other devices
    configs = configs_by_id(experiments, seed)
    store = ResultsStore(output_dir)
    skip = (store.finished_ids | (frozenset() if retry_failed else store.failed_ids)) if resume else frozenset()
    todo = [(eid, config) for eid, config in configs.items() if eid not in skip]
    failed_before = store.failed_ids
    for eid, _ in todo:
        if eid in failed_before:  # a retry: its old traceback would mislead
            (store.run_dir(eid) / "traceback.txt").unlink(missing_ok=True)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    failures = 0

    def record(rec: dict[str, Any]) -> None:
        nonlocal failures
        store.append(rec)
        failures += rec["status"] == "failed"
        if failures:
            bar.set_postfix(failed=failures, refresh=False)
        bar.update()

    try:
        if executor is None:
            for eid, config in todo:
                record(_execute_one(fn, eid, config, store.run_dir(eid), device))
        else:
            _run_with_executor(executor, todo, fn, device, store, record)
    finally:
        bar.close()
        store.close()  # every record fsync-ed and in the table before we return or re-raise
    if not todo:
        store.write_table()  # nothing ran: still leave a current table (a crash may have left it stale)
    return store.to_frame()


def _run_with_executor(
    executor: cf.Executor,
    todo: list[tuple[str, dict[str, Any]]],
    fn: Callable[..., Mapping[str, Any]],
    device: str,
    store: ResultsStore,
    record: Callable[[dict[str, Any]], None],
) -> None:
    futures: dict[cf.Future[dict[str, Any]], tuple[str, dict[str, Any]]] = {}
    recorded: set[cf.Future[dict[str, Any]]] = set()
    try:
        for eid, config in todo:
            futures[executor.submit(_execute_one, fn, eid, config, store.run_dir(eid), device)] = (eid, config)
        for future in cf.as_completed(futures):
            try:
                rec = future.result()
            except Exception as exc:  # the worker, not fn, failed: it died, or fn did not pickle
                rec = lost_record(*futures[future], device, exc)
            recorded.add(future)
            record(rec)
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        # Keep what finished meanwhile; a worker failure here may be the interrupt itself.
        for future in futures:
            if future.done() and not future.cancelled() and future not in recorded and future.exception() is None:
                record(future.result())
        raise
