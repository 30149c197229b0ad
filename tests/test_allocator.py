"""flops_fit.allocator: experiments reuse freed memory instead of mapping fresh pages."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest
from _sweep_fns import page_fault_count

from flops_fit import allocator
from flops_fit.allocator import MMAP_THRESHOLD, keep_freed_memory
from flops_fit.runner import run_sweep

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="mallopt is glibc's")
BLOCK, REPEATS = 8 * 2**20, 40  # an activation-sized block, allocated and freed repeatedly
PAGES = BLOCK // 4096  # faults of the first allocation alone (4 KiB pages)
# What a Dask Nanny sets in its workers: the mmap threshold stays at 128 KiB.
DASK_ENV = {"MALLOC_TRIM_THRESHOLD_": "65536"}


def _faults_in_fresh_process(keep: bool) -> int:
    code = (  # keep_freed_memory returns True: glibc took both settings
        "from flops_fit.allocator import keep_freed_memory, page_faults\n"
        f"assert keep_freed_memory() is True if {keep} else True\n"
        f"print(page_faults({BLOCK}, {REPEATS}))"
    )
    env = {**os.environ, **DASK_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


@glibc_only
def test_keep_freed_memory_stops_a_fresh_mapping_per_allocation():
    # Under Dask's setting every 8 MiB block is mapped afresh (about REPEATS x PAGES
    # faults; fewer with transparent huge pages); kept, only the first one faults.
    mapped, kept = _faults_in_fresh_process(False), _faults_in_fresh_process(True)
    assert kept <= 2 * PAGES
    assert mapped > 5 * kept, (mapped, kept)


@glibc_only
def test_an_experiment_in_a_dask_like_worker_keeps_freed_memory(monkeypatch, tmp_path):
    # Any executor's workers, here a plain spawn pool started with Dask's variable set:
    # the runner keeps freed memory before the experiment, so only the first block faults.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", DASK_ENV["MALLOC_TRIM_THRESHOLD_"])
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        df = run_sweep([{"seed": 0, "nbytes": BLOCK, "repeats": REPEATS}], page_fault_count, tmp_path,
                       executor=pool, progress=False)
    assert df["status"].tolist() == ["ok"]
    assert df["faults"].iloc[0] <= 2 * PAGES


@pytest.mark.parametrize(
    ("environ", "alone"),
    [
        ({}, False),  # glibc's defaults: left alone
        ({"MALLOC_TRIM_THRESHOLD_": "65536"}, True),  # a Dask Nanny's workers
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536"}, True),
        ({"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "1048576"}, False),  # a user's tuning
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=1048576"}, False),
        ({"MALLOC_MMAP_THRESHOLD_": "1048576"}, False),
    ],
)
def test_trim_threshold_alone_reads_the_environment(environ, alone):
    assert allocator.trim_threshold_alone(environ) is alone


def test_undo_leaves_glibc_s_defaults_alone(monkeypatch):
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: pytest.fail("mallopt called"))
    assert allocator.undo_trim_threshold_alone() is False


def test_keep_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mmap_threshold": 0}, r"Got mmap_threshold=0, expected 1 to 33554432 bytes"),
        ({"mmap_threshold": MMAP_THRESHOLD + 1}, r"Got mmap_threshold=33554433, expected 1 to 33554432 bytes"),
        ({"mmap_threshold": 2**20, "trim_threshold": 2**19},
         r"Got trim_threshold=524288, expected at least mmap_threshold=1048576"),
    ],
)
def test_keep_freed_memory_rejects_thresholds_outside_glibc_s_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keep_freed_memory(**kwargs)
