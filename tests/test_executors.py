"""Executors: the same rows as the sequential sweep, workers pinned to a
device and a thread count, and the submitit adapter."""

from __future__ import annotations

import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from _sweep_fns import tiny_train, worker_info

from flops_fit import executors
from flops_fit.executors import SubmititExecutor, make_executor, pin_process
from flops_fit.runner import run_sweep

TESTS = Path(__file__).resolve().parent
CONFIGS = [{"lr": 0.1, "seed": s} for s in range(3)] + [{"lr": 0.05}]
THREADS = max(1, executors._cpu_count() // 2)
_DASK_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    """Config and measurement columns, one row per experiment, in id order."""
    cols = ["experiment_id", "lr", "seed", "final_loss", "py_draw", "weight0", "status", "device"]
    return df[cols].sort_values("experiment_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("sequential")
    return _measured(run_sweep(CONFIGS, tiny_train, out, progress=False, device="cpu"))


def _two_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent only checks the indices; the workers just get CUDA_VISIBLE_DEVICES.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture(scope="module")
def process_pool():
    with pytest.MonkeyPatch.context() as mp:
        _two_devices(mp)
        pool = make_executor(2, kind="process", devices=[0, "cuda:1"])
    with pool:
        yield pool


@pytest.fixture(scope="module")
def dask_pool():
    pytest.importorskip("distributed")
    env_before = {k: os.environ.get(k) for k in _DASK_ENV}
    with pytest.MonkeyPatch.context() as mp:
        _two_devices(mp)
        pool = make_executor(2, kind="dask", devices=["cuda:0", "cuda:1"])
    assert {k: os.environ.get(k) for k in _DASK_ENV} == env_before  # the Nanny's env is undone
    with pool:
        yield pool


def _worker_pinning(pool, timeout: float = 60.0) -> dict[int, set[tuple[str | None, int]]]:
    """(CUDA_VISIBLE_DEVICES, threads) seen per worker pid, once both workers answered."""
    seen: dict[int, set[tuple[str | None, int]]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < 2 and time.monotonic() < deadline:  # a worker may still be starting
        for pid, device, threads in (f.result() for f in [pool.submit(worker_info, 0.3) for _ in range(4)]):
            seen.setdefault(pid, set()).add((device, threads))
    return seen


def _assert_pinned(seen: dict[int, set[tuple[str | None, int]]]) -> None:
    assert len(seen) == 2, "both workers should have answered"
    assert all(len(pins) == 1 for pins in seen.values())  # a worker keeps its device
    pins = sorted(next(iter(p)) for p in seen.values())
    assert pins == [("0", THREADS), ("1", THREADS)]


# ---------------------------------------------------------------- process pool


def test_process_pool_gives_the_sequential_rows(process_pool, sequential, tmp_path):
    df = run_sweep(CONFIGS, tiny_train, tmp_path, executor=process_pool, progress=False, device="auto")
    pd.testing.assert_frame_equal(_measured(df), sequential)


def test_process_workers_are_pinned_one_device_each(process_pool):
    _assert_pinned(_worker_pinning(process_pool))


def test_a_worker_side_failure_gives_failed_rows(process_pool, tmp_path):
    df = run_sweep([{"x": 1}, {"x": 2}], lambda c, d, *, device: {}, tmp_path, executor=process_pool, progress=False)
    assert (df["status"] == "failed").all()
    assert df["error"].str.contains("pickle", case=False).all()  # a lambda cannot reach a process
    assert df["wall_time_s"].isna().all()


def test_the_process_pool_uses_spawn(process_pool):
    assert process_pool._mp_context.get_start_method() == "spawn"  # CUDA does not survive fork


# ---------------------------------------------------------------- dask


def test_dask_gives_the_sequential_rows(dask_pool, sequential, tmp_path):
    df = run_sweep(CONFIGS, tiny_train, tmp_path, executor=dask_pool, progress=False, device="auto")
    # Not py_draw: a Dask worker's own threads draw from Python's global `random`
    # (heartbeat jitter, after ~1 s), so only numpy's and torch's draws are reproducible there.
    pd.testing.assert_frame_equal(_measured(df).drop(columns="py_draw"), sequential.drop(columns="py_draw"))


def test_dask_does_not_merge_identical_calls(dask_pool):
    futures = [dask_pool.submit(worker_info, 0.0) for _ in range(2)]
    assert futures[0] is not futures[1] and all(len(f.result()) == 3 for f in futures)


def test_dask_workers_are_pinned_one_device_each(dask_pool):
    _assert_pinned(_worker_pinning(dask_pool))


# ---------------------------------------------------------------- submitit


@pytest.fixture
def submitit_local(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # Local jobs are fresh interpreters: they must find _sweep_fns to unpickle the function.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=5)
    with SubmititExecutor(executor, poll_interval=0.1) as pool:
        yield pool


def test_submitit_gives_the_sequential_rows(submitit_local, sequential, tmp_path):
    # Two jobs only: each local job is a fresh interpreter importing torch.
    df = run_sweep(CONFIGS[:2], tiny_train, tmp_path / "out", executor=submitit_local, progress=False)
    expected = sequential[sequential["experiment_id"].isin(df["experiment_id"])].reset_index(drop=True)
    assert len(expected) == 2
    pd.testing.assert_frame_equal(_measured(df), expected)


def test_submitit_failures_reach_the_future(submitit_local):
    future = submitit_local.submit(math.sqrt, -1.0)
    assert "math domain error" in str(future.exception(timeout=60))
    assert submitit_local.submit(math.sqrt, 4.0).result(timeout=60) == 2.0


def test_submitit_cancelling_a_future_cancels_its_job(submitit_local):
    future = submitit_local.submit(time.sleep, 30)
    job = submitit_local._pending[0][0]
    assert future.cancel()
    deadline = time.monotonic() + 30
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.done() and job.state != "COMPLETED"


def test_submitit_executor_refuses_work_after_shutdown(tmp_path):
    submitit = pytest.importorskip("submitit")
    pool = SubmititExecutor(submitit.AutoExecutor(folder=tmp_path, cluster="debug"))
    pool.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(math.sqrt, 4.0)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((object(),), TypeError, r"Got executor of type object, expected a submitit executor"),
        ((ProcessPoolExecutor,), ValueError, r"Got poll_interval=0, expected seconds > 0"),
    ],
)
def test_submitit_executor_validates(args, error, match):
    with pytest.raises(error, match=match):
        SubmititExecutor(*args, poll_interval=0)


# ---------------------------------------------------------------- make_executor


@pytest.mark.parametrize(
    ("workers", "kw", "match"),
    [
        (0, {}, r"Got workers=0, expected an int >= 1"),
        (True, {}, r"Got workers=True, expected an int >= 1"),
        (2, {"kind": "thread"}, r"Got kind='thread', expected one of \['dask', 'process'\]"),
        (1, {"devices": []}, r"Got devices=\[\], expected a non-empty list like \[0, 1\]"),
        (1, {"devices": "cuda:0"}, r"Got devices='cuda:0', expected a non-empty list"),
        (1, {"devices": ["gpu0"]}, r"Got devices=\['gpu0'\], expected CUDA indices like \[0, 1\] or \['cuda:0', 'cuda:1'\]"),
        (1, {"devices": [-1]}, r"Got devices=\[-1\], expected CUDA indices"),
        (2, {"devices": [0, "cuda:0"]}, r"Got devices=\[0, 'cuda:0'\] with repeats; one experiment runs per device"),
        (3, {"devices": [0, 1]}, r"Got workers=3 and 2 devices; .* workers must equal len\(devices\)"),
        (1, {"devices": [2]}, r"Got devices=\[2\], but only 2 CUDA device\(s\) are visible"),
    ],
)
def test_make_executor_validates(monkeypatch, workers, kw, match):
    _two_devices(monkeypatch)
    with pytest.raises(ValueError, match=match):
        make_executor(workers, **kw)


def test_dask_without_distributed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"kind='dask' needs Dask's distributed scheduler: pip install"):
        make_executor(1, kind="dask")


def test_pin_process_sets_threads_and_leaves_the_gpu_alone_without_a_device(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before = torch.get_num_threads()
    try:
        pin_process(None, 1)
        assert torch.get_num_threads() == 1 and "CUDA_VISIBLE_DEVICES" not in os.environ
        pin_process("3", 1)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        torch.set_num_threads(before)


def test_pin_process_refuses_a_process_that_still_sees_several_gpus(monkeypatch):
    # CUDA started before the pin: the driver keeps every GPU, so workers would share GPU 0.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match=r"Got CUDA_VISIBLE_DEVICES=1 after CUDA started in process \d+, which still sees 2 GPUs; expected 1"):
        pin_process("1", torch.get_num_threads())
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    pin_process("1", torch.get_num_threads())  # pinned: the one GPU it sees is GPU 1


def test_devices_index_this_process_s_visible_gpus(monkeypatch):
    # This process sees physical GPUs 3 and 5 as its devices 0 and 1: its device 1 is GPU 5.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    _two_devices(monkeypatch)
    with make_executor(1, devices=[1]) as pool:
        _, device, _ = pool.submit(worker_info, 0.0).result(timeout=60)
    assert device == "5"
