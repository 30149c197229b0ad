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

Experiments trained together: an ``fn`` that also has ``group_key(config)``
(hashable, or None for "alone") and ``run_group(configs, run_dirs, *, device)``
(a list with, per config, its measurements or the exception that failed it)
gets the experiments whose key is equal, at most ``fn.max_group`` at a time,
in one ``run_group`` call (:func:`flops_fit.sweep_io.group_todo`); each still
gets its own record and row. The FNO study uses it to train the seeds of one
experiment as one stacked model. What runs in the worker is in
:mod:`flops_fit.execution`.

What a config and a measurement may be is checked in
:mod:`flops_fit.sweep_io`. ``DivergedError`` (now :mod:`flops_fit.errors`)
and ``time_inference`` (now :mod:`flops_fit.timing`) are re-exported here for
one release; import them from their new modules.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from flops_fit.errors import DivergedError
from flops_fit.execution import (
    check_device_string,
    execute_group,
    library_versions,
    resolve_device,
    seed_everything,
)
from flops_fit.results import ResultsStore
from flops_fit.sweep_io import check_seed, configs_by_id, group_todo, lost_record
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
    check_device_string(device)
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
        groups = group_todo(todo, fn)
        if executor is None:
            for group in groups:
                for rec in execute_group(fn, group, [store.run_dir(eid) for eid, _ in group], device):
                    record(rec)
        else:
            _run_with_executor(executor, groups, fn, device, store, record)
    finally:
        bar.close()
        store.close()  # every record fsync-ed and in the table before we return or re-raise
    if not todo:
        store.write_table()  # nothing ran: still leave a current table (a crash may have left it stale)
    return store.to_frame()


def _run_with_executor(
    executor: cf.Executor,
    groups: list[list[tuple[str, dict[str, Any]]]],
    fn: Callable[..., Mapping[str, Any]],
    device: str,
    store: ResultsStore,
    record: Callable[[dict[str, Any]], None],
) -> None:
    futures: dict[cf.Future[list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]] = {}
    recorded: set[cf.Future[list[dict[str, Any]]]] = set()
    try:
        for group in groups:
            run_dirs = [store.run_dir(eid) for eid, _ in group]
            futures[executor.submit(execute_group, fn, group, run_dirs, device)] = group
        for future in cf.as_completed(futures):
            try:
                recs = future.result()
            except Exception as exc:  # the worker, not fn, failed: it died, or fn did not pickle
                recs = [lost_record(eid, config, device, exc) for eid, config in futures[future]]
            recorded.add(future)
            for rec in recs:
                record(rec)
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        # Keep what finished meanwhile; a worker failure here may be the interrupt itself.
        for future in futures:
            if future.done() and not future.cancelled() and future not in recorded and future.exception() is None:
                for rec in future.result():
                    record(rec)
        raise
