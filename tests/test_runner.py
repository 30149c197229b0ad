"""The sweep runner: contract, bookkeeping, failures, resume, crash safety,
devices and seeding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _sweep_fns import count_calls, flaky, seeded_draws, sleepy, tiny_train

import flops_fit
from flops_fit import errors, execution, runner, timing
from flops_fit.results import LOG_NAME, TABLE_NAME, experiment_id, load_results
from flops_fit.runner import (
    DivergedError,
    library_versions,
    resolve_device,
    run_sweep,
    seed_everything,
)

TESTS = Path(__file__).resolve().parent


def _sweep(configs, fn, out, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    return run_sweep(configs, fn, out, **kw)


def _rows(df):
    return df.set_index("experiment_id")


# ---------------------------------------------------------------- the contract


def test_rows_hold_config_measurements_and_bookkeeping(tmp_path):
    seen = []

    def fn(config, run_dir, *, device):
        seen.append((dict(config), run_dir, device))
        (run_dir / "artifact.txt").write_text("hi")
        return {"double": 2 * config["x"], "name": f"run{config['x']}"}

    df = _sweep([{"x": 1}, {"x": 2}], fn, tmp_path, seed=7)
    assert list(df.columns) == [
        "x", "seed", "double", "name", "experiment_id", "status", "error", "started_at",
        "wall_time_s", "device", "version_python", "version_torch", "version_numpy", "version_flops_fit",
    ]  # fmt: skip
    assert df["double"].tolist() == [2, 4] and df["seed"].tolist() == [7, 7]
    assert df["status"].tolist() == ["ok", "ok"] and df["error"].isna().all()
    assert (df["device"] == "cpu").all() and (df["wall_time_s"] >= 0).all()
    assert df["version_torch"][0] == torch.__version__ and df["version_flops_fit"][0] == flops_fit.__version__
    assert pd.Timestamp(df["started_at"][0]).tzname() == "UTC"
    # fn got the config with its seed, its own existing folder, and the device
    config, run_dir, device = seen[0]
    assert config == {"x": 1, "seed": 7} and device == "cpu"
    assert run_dir == tmp_path / "runs" / experiment_id({"x": 1, "seed": 7})
    assert (run_dir / "artifact.txt").read_text() == "hi"
    pd.testing.assert_frame_equal(df, load_results(tmp_path))
    assert len(pd.read_csv(tmp_path / TABLE_NAME)) == 2


def test_sweep_plan_like_objects_and_numpy_values_are_accepted(tmp_path):
    class Plan:
        def configs(self):
            return [{"x": np.int64(3), "lr": np.float32(0.5)}]

    df = _sweep(Plan(), sleepy, tmp_path)
    assert df["double"].tolist() == [6] and df["lr"].tolist() == [0.5]


def test_duplicate_configs_run_once(tmp_path):
    df = _sweep([{"x": 1}, {"x": 2}, {"x": 1}, {"x": 1, "seed": 0}], sleepy, tmp_path)
    assert df["x"].tolist() == [1, 2]
    assert count_calls(tmp_path / "runs" / df["experiment_id"][0]) == 1


def test_config_seed_wins_over_the_sweep_seed(tmp_path):
    df = _sweep([{"x": 1, "seed": 3}, {"x": 1}], seeded_draws, tmp_path, seed=5)
    assert df["seed"].tolist() == [3, 5]


def test_runs_are_reproducible_for_a_seed_and_differ_across_seeds(tmp_path):
    configs = [{"lr": 0.1}, {"lr": 0.1, "seed": 1}]
    first = _rows(_sweep(configs, tiny_train, tmp_path / "a"))
    again = _rows(_sweep(configs, tiny_train, tmp_path / "b"))
    cols = ["final_loss", "py_draw", "weight0"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    assert (first[cols].iloc[0] != first[cols].iloc[1]).all()


def test_seeding_matches_each_library_seeded_by_hand(tmp_path):
    import random

    df = _sweep([{"seed": 11}], seeded_draws, tmp_path)
    random.seed(11)
    np.random.seed(11)  # noqa: NPY002
    torch.manual_seed(11)
    expected = (random.random(), float(np.random.rand()), torch.rand(()).item())  # noqa: NPY002
    assert (df["py"][0], df["np"][0], df["torch"][0]) == expected


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("raise", "ValueError: bad hyperparameter"),
        ("diverge", "DivergedError: diverged at epoch 3: loss is nan"),
        ("nan_loss", "DivergedError: non-finite train_loss"),
        ("inf_loss", "DivergedError: non-finite test_loss"),
        ("oom", "MemoryError: could not allocate 4 GiB"),
        ("cuda_oom", "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ("not_a_dict", "TypeError: fn must return a dict of measurements, got list"),
        ("int_key", "TypeError: fn returned measurement key 1 of type int, expected str"),
        ("nested", "TypeError: fn returned measurement 'curve' of type list; expected a flat dict"),
        ("clash", "ValueError: fn returned mode='changed' (config: 'clash'); a measurement may repeat a config value but not change it: rename it"),
        ("reserved", "ValueError: fn returned ['status'], which are bookkeeping columns; rename them"),
    ],
)
def test_a_failing_experiment_gives_a_failed_row_and_the_sweep_goes_on(tmp_path, mode, error):
    configs = [{"mode": "ok", "i": 0}, {"mode": mode}, {"mode": "ok", "i": 1}]
    df = _rows(_sweep(configs, flaky, tmp_path))
    bad = experiment_id({"mode": mode, "seed": 0})
    assert df.loc[bad, "status"] == "failed" and df.loc[bad, "error"].startswith(error)
    assert (df.drop(index=bad)["status"] == "ok").all() and len(df) == 3
    assert df.loc[bad, "wall_time_s"] >= 0 and df.loc[bad, "device"] == "cpu"


@pytest.mark.parametrize("mode", ["ok", "cuda_oom", "oom", "raise"])
@pytest.mark.parametrize("cuda_used", [True, False])
def test_every_run_that_used_cuda_empties_the_cuda_cache(tmp_path, monkeypatch, mode, cuda_used):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: cuda_used)  # as after a run on a GPU
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    df = _sweep([{"mode": mode}], flaky, tmp_path)
    assert df["status"].tolist() == ["ok" if mode == "ok" else "failed"]
    assert len(calls) == cuda_used


def test_a_raised_exception_leaves_its_traceback(tmp_path):
    _sweep([{"mode": "raise"}], flaky, tmp_path)
    text = (tmp_path / "runs" / experiment_id({"mode": "raise", "seed": 0}) / "traceback.txt").read_text()
    assert "Traceback" in text and "ValueError: bad hyperparameter" in text


def test_a_diverged_run_keeps_its_measurements(tmp_path):
    df = _sweep([{"mode": "nan_loss"}], flaky, tmp_path)
    assert np.isnan(df["train_loss"][0]) and df["test_loss"][0] == 0.5


@pytest.mark.parametrize("mode", ["clash", "reserved", "echo"])
def test_measurements_named_like_config_or_bookkeeping_columns(tmp_path, mode):
    df = _sweep([{"mode": mode}], flaky, tmp_path)
    assert df["status"][0] == ("ok" if mode == "echo" else "failed")
    assert df["mode"][0] == mode and df["seed"][0] == 0  # config columns are never overwritten
    assert df["train_loss"][0] == 0.5  # the other measurements are kept


def test_nan_outside_a_loss_is_just_a_measurement(tmp_path):
    df = _sweep([{"mode": "nan_metric"}], flaky, tmp_path)
    assert df["status"][0] == "ok" and np.isnan(df["ssim"][0])


def test_diverged_error_is_a_runtime_error():
    assert issubclass(DivergedError, RuntimeError)
    assert DivergedError is errors.DivergedError  # re-exported from its new home for one release
    assert runner.time_inference is timing.time_inference


# ---------------------------------------------------------------- resume


def test_resume_skips_finished_and_reruns_failed_only_on_request(tmp_path):
    configs = [{"mode": "ok"}, {"mode": "raise"}]
    ok_dir, bad_dir = (tmp_path / "runs" / experiment_id({**c, "seed": 0}) for c in configs)
    _sweep(configs, flaky, tmp_path)
    df = _sweep(configs + [{"mode": "ok", "i": 2}], flaky, tmp_path)
    assert (count_calls(ok_dir), count_calls(bad_dir), len(df)) == (1, 1, 3)
    _sweep(configs, flaky, tmp_path, retry_failed=True)
    assert (count_calls(ok_dir), count_calls(bad_dir)) == (1, 2)
    _sweep(configs, flaky, tmp_path, resume=False)
    assert (count_calls(ok_dir), count_calls(bad_dir)) == (2, 3)
    assert len(load_results(tmp_path)) == 3


def test_a_retried_success_replaces_the_failed_row(tmp_path):
    calls = []

    def fails_once(config, run_dir, *, device):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return {"value": 1.0}

    assert _sweep([{"x": 1}], fails_once, tmp_path)["status"].tolist() == ["failed"]
    assert (tmp_path / "runs" / experiment_id({"x": 1, "seed": 0}) / "traceback.txt").exists()
    df = _sweep([{"x": 1}], fails_once, tmp_path, retry_failed=True)
    assert df["status"].tolist() == ["ok"] and df["value"].tolist() == [1.0] and df["error"].isna().all()
    assert not (tmp_path / "runs" / df["experiment_id"][0] / "traceback.txt").exists()  # stale one removed


_KILLED_SWEEP = """
import sys
from _sweep_fns import sleepy
from flops_fit.runner import run_sweep
run_sweep([{"x": i, "sleep": 0.1} for i in range(10)], sleepy, sys.argv[1], progress=False, device="cpu")
"""


def test_a_sweep_killed_with_sigkill_resumes_with_every_run_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SWEEP, str(tmp_path)], env=env)
    log = tmp_path / LOG_NAME
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_bytes().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it was killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(log.read_bytes().splitlines())
    assert 3 <= done_before < 10
    if (tmp_path / TABLE_NAME).exists():  # written in the background: may lag the log
        assert len(pd.read_csv(tmp_path / TABLE_NAME)) <= done_before  # parseable mid-sweep
    _sweep([{"x": i, "sleep": 0.1} for i in range(10)], sleepy, tmp_path)  # resume in-process
    ids = [json.loads(line)["experiment_id"] for line in log.read_text().splitlines()]
    killed = [experiment_id({"x": i, "sleep": 0.1, "seed": 0}) for i in range(10)]
    assert all(ids.count(eid) == 1 for eid in killed)  # every run recorded exactly once
    assert all(count_calls(tmp_path / "runs" / eid) == 1 for eid in killed[:done_before])
    table = pd.read_csv(tmp_path / TABLE_NAME)
    assert len(table) == 10 and table["experiment_id"].is_unique and (table["status"] == "ok").all()


# ---------------------------------------------------------------- Ctrl-C


def test_keyboard_interrupt_stops_the_sweep_and_keeps_finished_rows(tmp_path):
    configs = [{"mode": "ok", "i": 0}, {"mode": "ok", "i": 1}, {"mode": "interrupt"}, {"mode": "ok", "i": 3}]
    with pytest.raises(KeyboardInterrupt):
        _sweep(configs, flaky, tmp_path)
    df = load_results(tmp_path)
    assert df["i"].tolist() == [0, 1] and (df["status"] == "ok").all()
    assert count_calls(tmp_path / "runs" / experiment_id({"mode": "ok", "i": 3, "seed": 0})) == 0
    assert len(pd.read_csv(tmp_path / TABLE_NAME)) == 2


def test_keyboard_interrupt_with_an_executor_cancels_pending_runs(tmp_path):
    release = threading.Event()

    def fn(config, run_dir, *, device):
        (run_dir / "started").touch()
        if config["i"] == 2:
            raise KeyboardInterrupt  # reaches the parent through the future, like a Ctrl-C there
        if config["i"] > 2:
            release.wait(10)
        return {"value": config["i"]}

    configs = [{"i": i} for i in range(6)]
    run_dirs = [tmp_path / "runs" / experiment_id({"i": i, "seed": 0}) for i in range(6)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(KeyboardInterrupt):
            _sweep(configs, fn, tmp_path, executor=pool)
        release.set()
    assert sorted(load_results(tmp_path)["i"]) == [0, 1]  # completion order
    assert [(d / "started").exists() for d in run_dirs] == [True, True, True, True, False, False]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("experiments", "kw", "error", "match"),
    [
        ([{"x": 1}], {"fn": 3}, TypeError, r"Got fn of type int, expected a callable fn\(config, run_dir, \*, device\)"),
        ([{"x": 1}], {"executor": "dask"}, TypeError, r"Got executor of type str, expected a concurrent.futures.Executor"),
        ([{"x": 1}], {"seed": -1}, ValueError, r"Got seed=-1, expected an int in \[0, 2\*\*32 - 1\]"),
        ([{"x": 1}], {"seed": 1.5}, ValueError, r"Got seed=1.5, expected an int"),
        ([{"x": 1, "seed": "a"}], {}, ValueError, r"Got experiment 0 seed='a', expected an int"),
        ([{"x": 1}], {"device": "gpu"}, ValueError, r"Got device='gpu', expected 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"),
        ({"x": 1}, {}, TypeError, r"Got a single dict, expected an iterable of config dicts"),
        ("abc", {}, TypeError, r"Got experiments of type str, expected an iterable of config dicts or a SweepPlan"),
        (5, {}, TypeError, r"Got experiments of type int, expected an iterable of config dicts"),
        ([{"x": 1}, 5], {}, TypeError, r"Experiment 1 is a int, expected a dict of hyperparameters"),
        ([{"x": [1, 2]}], {}, TypeError, r"Experiment 0 has 'x': \[1, 2\] \(list\); expected a flat dict"),
        ([{3: 1}], {}, TypeError, r"Experiment 0 has 3: 1 \(int\); expected a flat dict of str keys"),
        ([{"status": "x"}], {}, ValueError, r"Experiment 0 uses the bookkeeping column name 'status'; rename it"),
    ],
)
def test_run_sweep_validates_before_running(tmp_path, experiments, kw, error, match):
    kw = {"fn": sleepy, **kw}
    with pytest.raises(error, match=match):
        _sweep(experiments, kw.pop("fn"), tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_an_unavailable_device_fails_before_any_run_without_an_executor(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"Got device='cuda', but CUDA is not available"):
        run_sweep([{"x": 1}], sleepy, tmp_path / "out", device="cuda", progress=False)
    assert not (tmp_path / "out").exists()


def test_progress_bar_counts_the_runs(tmp_path, capsys):
    _sweep([{"x": 1}, {"x": 2}], sleepy, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "sweep: 100%" in err and "2/2" in err
    _sweep([{"x": 3}], sleepy, tmp_path, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- devices


def test_resolve_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(execution, "_mps_available", lambda: False)
    assert resolve_device() == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(execution, "_mps_available", lambda: True)
    assert resolve_device("auto") == "mps" and resolve_device("mps") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"


@pytest.mark.parametrize(
    ("device", "cuda", "error", "match"),
    [
        (0, False, TypeError, r"Got device of type int, expected a str: 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"),
        ("cuda:x", False, ValueError, r"Got device='cuda:x', expected 'auto', 'cpu'"),
        ("CPU", False, ValueError, r"Got device='CPU', expected"),
        ("cuda", False, RuntimeError, r"Got device='cuda', but CUDA is not available to torch .*; use device='auto' or 'cpu'"),
        ("cuda:1", True, RuntimeError, r"Got device='cuda:1', but only 1 CUDA device\(s\) are visible"),
        ("mps", False, RuntimeError, r"Got device='mps', but MPS is not available; use device='auto' or 'cpu'"),
    ],
)
def test_resolve_device_rejects(monkeypatch, device, cuda, error, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(execution, "_mps_available", lambda: False)
    with pytest.raises(error, match=match):
        resolve_device(device)


def test_seed_everything_validates():
    with pytest.raises(ValueError, match=r"Got seed=True, expected an int in \[0, 2\*\*32 - 1\]"):
        seed_everything(True)
    with pytest.raises(ValueError, match=r"Got seed=4294967296"):
        seed_everything(2**32)


def test_library_versions_are_this_process():
    assert library_versions()["numpy"] == np.__version__
    assert library_versions()["python"] == ".".join(map(str, sys.version_info[:3]))
