"""Executors for :func:`flops_fit.runner.run_sweep` beyond the in-process loop.

``run_sweep`` takes any :class:`concurrent.futures.Executor`. This module
adds the few pieces the standard ones lack:

- :func:`make_executor`: ``workers`` processes on this machine (a spawn
  ``ProcessPoolExecutor`` or a Dask ``LocalCluster``), each with
  ``cores // workers`` torch threads, and optionally each pinned to its own
  GPU so that one experiment runs per GPU at a time.
- :class:`DaskExecutor`: a local Dask cluster as an ``Executor`` that closes
  the cluster on shutdown. For a cluster you already have (dask-jobqueue,
  dask-kubernetes) pass ``client.get_executor(pure=False)`` directly:
  ``pure=True`` (Dask's default) would merge identical calls.
- :class:`SubmititExecutor`: submitit (SLURM) jobs as ``Future`` objects.

Worker pools use the ``spawn`` start method: CUDA does not survive ``fork``.
Their workers end when the process that made the pool dies
(:func:`exit_with_parent`), so a killed sweep leaves nothing training and,
on a GPU, nothing holding its memory.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

import torch

from flops_fit.checks import check_choice, check_int, is_int

__all__ = ["DaskExecutor", "SubmititExecutor", "exit_with_parent", "make_executor", "pin_process"]

KINDS = ("dask", "process")
_CUDA_RE = re.compile(r"^cuda:(\d+)$")
# A Dask Nanny writes these into the *parent's* environment before spawning a
# worker (distributed.nanny.pre-spawn-environ); later spawned processes would inherit them.
_DASK_LEAKED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pin_process(cuda_device: str | None, threads: int) -> None:
    """Pin this process to one GPU and a number of torch CPU threads.

    Parameters
    ----------
    cuda_device : str or None
        CUDA device index; set as ``CUDA_VISIBLE_DEVICES`` (before CUDA is
        initialised here), so ``"cuda"`` in this process is that GPU.
    threads : int
        Intra-op threads for :func:`torch.set_num_threads`.

    Raises
    ------
    RuntimeError
        When this process still sees several GPUs after pinning: CUDA was
        started here before (the driver reads ``CUDA_VISIBLE_DEVICES`` once),
        and every worker would run on the same GPU.
    """
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_device
        visible = torch.cuda.device_count()
        if visible > 1:
            raise RuntimeError(
                f"Got CUDA_VISIBLE_DEVICES={cuda_device} after CUDA started in process {os.getpid()}, "
                f"which still sees {visible} GPUs; expected 1 (pin before any CUDA call)"
            )
    torch.set_num_threads(threads)


def exit_with_parent(parent_pid: int, *, interval: float = 0.5) -> threading.Thread:
    """End this process within ``interval`` seconds of its parent's death.

    Parameters
    ----------
    parent_pid : int
        The PID of the process that started this one.
    interval : float
        Seconds between checks.

    Returns
    -------
    threading.Thread
        The daemon thread that watches. It polls :func:`os.getppid`: a process
        whose parent died is re-parented (to init or a subreaper), so the id
        changes; :func:`os._exit` then ends the process whatever its main
        thread is doing. Polling rather than Linux's ``PR_SET_PDEATHSIG``,
        which fires when the parent *thread* that started the worker ends: a
        sweep submitted from a short-lived thread would kill healthy workers.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)  # no cleanup: the results of a dead parent's sweep have nowhere to go

    watcher = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    watcher.start()
    return watcher


def _init_pool_worker(device_queue: Any, threads: int, parent_pid: int) -> None:
    # Every pool worker runs this once; each takes a different device from the queue.
    exit_with_parent(parent_pid)
    pin_process(None if device_queue is None else device_queue.get(timeout=60), threads)


_BROKEN_AT_START = (
    "The worker processes of make_executor died while starting ({error}). In a script, make "
    "the executor and run the sweep under `if __name__ == \"__main__\":` (spawned workers import "
    "the main module, and without that guard each one runs the script again); the workers' own "
    "error is printed above"
)


def _check_workers_start(pool: cf.ProcessPoolExecutor) -> None:
    """Start one worker now, so a pool that cannot start fails here, not as every run of a sweep."""
    try:
        pool.submit(os.getpid).result()
    except BrokenProcessPool as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        raise RuntimeError(_BROKEN_AT_START.format(error=exc)) from exc


def _device_indices(devices: Sequence[int | str]) -> list[str]:
    if isinstance(devices, str) or not isinstance(devices, Sequence) or not devices:
        raise ValueError(f"Got devices={devices!r}, expected a non-empty list like [0, 1] or ['cuda:0', 'cuda:1']")
    indices = []
    for d in devices:
        if is_int(d) and d >= 0:
            indices.append(str(d))
        elif isinstance(d, str) and _CUDA_RE.match(d):
            indices.append(_CUDA_RE.match(d).group(1))
        else:
            raise ValueError(f"Got devices={list(devices)!r}, expected CUDA indices like [0, 1] or ['cuda:0', 'cuda:1']")
    if len(set(indices)) != len(indices):
        raise ValueError(f"Got devices={list(devices)!r} with repeats; one experiment runs per device")
    visible = torch.cuda.device_count()
    if max(int(i) for i in indices) >= visible:
        raise ValueError(f"Got devices={list(devices)!r}, but only {visible} CUDA device(s) are visible")
    return _visible_entries(indices)


def _visible_entries(indices: list[str]) -> list[str]:
    """Indices into this process's GPUs -> the ``CUDA_VISIBLE_DEVICES`` entries naming them.

    A worker's ``CUDA_VISIBLE_DEVICES=1`` means physical GPU 1; when this
    process sees only some GPUs (``CUDA_VISIBLE_DEVICES=3,5``), its device 1
    is the entry ``5``.
    """
    parent = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return [parent[int(i)] for i in indices] if parent else indices


def make_executor(
    workers: int,
    *,
    kind: Literal["process", "dask"] = "process",
    devices: Sequence[int | str] | None = None,
) -> cf.Executor:
    """A pool of worker processes on this machine for :func:`run_sweep`.

    Parameters
    ----------
    workers : int
        Experiments run at once. Each worker process gets
        ``max(1, cores // workers)`` torch threads.
    kind : {"process", "dask"}
        A spawn :class:`~concurrent.futures.ProcessPoolExecutor`, or a
        :class:`DaskExecutor` (Dask ``LocalCluster``, one thread per worker).
    devices : sequence of int or str, optional
        CUDA devices, one per worker (``[0, 1]`` or ``["cuda:0", "cuda:1"]``):
        each worker sees only its own GPU, so one experiment runs per GPU.

    Returns
    -------
    concurrent.futures.Executor
        Use it as a context manager, or call ``shutdown()`` when done.
    """
    check_int("workers", workers, minimum=1)
    check_choice("kind", kind, KINDS)
    indices = None
    if devices is not None:
        indices = _device_indices(devices)
        if len(indices) != workers:
            raise ValueError(
                f"Got workers={workers} and {len(indices)} devices; one experiment runs per "
                "device, so workers must equal len(devices)"
            )
    threads = max(1, _cpu_count() // workers)
    if kind == "dask":
        return DaskExecutor(workers, devices=indices, threads=threads)
    context = mp.get_context("spawn")
    queue = None
    if indices is not None:
        queue = context.Queue()
        for index in indices:
            queue.put(index)
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_pool_worker,
        initargs=(queue, threads, os.getpid()),
    )
    _check_workers_start(pool)
    return pool


def _dask_pin_plugin(devices: list[str] | None, threads: int) -> Any:
    from distributed import WorkerPlugin  # optional dependency: the "distributed" extra

    class PinWorker(WorkerPlugin):
        """Runs at each worker's start (and restart): LocalCluster names workers 0..n-1."""

        name = "flops_fit-pin-worker"

        def setup(self, worker: Any) -> None:
            pin_process(None if devices is None else devices[int(worker.name)], threads)

    return PinWorker()


class DaskExecutor(cf.Executor):
    """A local Dask cluster of single-threaded worker processes, as an Executor.

    Parameters
    ----------
    workers : int
        Worker processes.
    devices : list of str, optional
        CUDA device index per worker (see :func:`make_executor`).
    threads : int, optional
        torch threads per worker (default ``max(1, cores // workers)``).

    Notes
    -----
    Submits with ``pure=False`` (Dask's default ``pure=True`` would merge
    identical calls). A worker's own threads draw from Python's global
    :mod:`random` (heartbeat jitter), so experiments that need reproducible
    Python-level draws should use ``random.Random(config["seed"])``; numpy's
    and torch's global generators are left alone. ``shutdown`` closes the client and the cluster. The
    environment variables a Nanny sets in this process are restored.
    ``client`` is the :class:`distributed.Client` (worker logs, diagnostics).
    """

    def __init__(self, workers: int, *, devices: list[str] | None = None, threads: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError(
                "kind='dask' needs Dask's distributed scheduler: pip install 'flops_fit[distributed]'"
            ) from exc

        threads = threads or max(1, _cpu_count() // workers)
        saved = {k: os.environ.get(k) for k in _DASK_LEAKED_ENV}
        try:
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self._cluster)
            self.client.register_plugin(_dask_pin_plugin(devices, threads))
        finally:
            _restore_env(saved)
        self._saved_env = saved
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)  # wait=False cancels
        self.client.close()
        self._cluster.close()
        _restore_env(self._saved_env)


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class SubmititExecutor(cf.Executor):
    """submitit jobs (SLURM, or local processes) behind the Executor interface.

    Parameters
    ----------
    executor : submitit.Executor
        E.g. ``submitit.AutoExecutor(folder)`` after ``update_parameters``.
        Its folder and the sweep's ``output_dir`` must be on a file system
        the jobs can reach.
    poll_interval : float
        Seconds between checks of the pending jobs (submitit rate-limits its
        ``sacct`` calls itself).

    Notes
    -----
    ``submit`` submits a job at once and returns a Future resolved by one
    watcher thread when the job ends. Cancelling the Future cancels the job.
    """

    def __init__(self, executor: Any, *, poll_interval: float = 1.0) -> None:
        if not callable(getattr(executor, "submit", None)):
            raise TypeError(f"Got executor of type {type(executor).__name__}, expected a submitit executor")
        if not poll_interval > 0:
            raise ValueError(f"Got poll_interval={poll_interval!r}, expected seconds > 0")
        self._executor = executor
        self._poll_interval = poll_interval
        self._pending: list[tuple[Any, cf.Future[Any]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._watcher = threading.Thread(target=self._watch, name="submitit-watcher", daemon=True)
        self._watcher.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            job = self._executor.submit(fn, *args, **kwargs)
            future: cf.Future[Any] = cf.Future()
            self._pending.append((job, future))
        self._wake.set()
        return future

    def _watch(self) -> None:
        while True:
            with self._lock:
                pending = list(self._pending)
                if not pending and self._closed:
                    return
            for job, future in pending:
                if future.cancelled():
                    job.cancel(check=False)
                elif not self._resolve(job, future):
                    continue
                with self._lock:
                    self._pending.remove((job, future))
            self._wake.wait(self._poll_interval)
            self._wake.clear()

    @staticmethod
    def _resolve(job: Any, future: cf.Future[Any]) -> bool:
        """Pass a finished job's outcome to its future; False while it runs."""
        try:
            if not job.done():
                return False
            result = job.result()
        except Exception as exc:  # the job failed, was killed, or its state is unreadable
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
            return True
        if future.set_running_or_notify_cancel():  # False if cancelled just now
            future.set_result(result)
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        if cancel_futures:
            for _, future in pending:
                future.cancel()
        self._wake.set()
        if wait:
            self._watcher.join()
