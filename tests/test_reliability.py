"""Reliability: what a hostile pass broke, pinned.

Crash safety under SIGKILL at random moments (with and without workers), one
writer per results folder, tables never overwritten, resume that follows the
data, workers that die with their parent, and every bad input stopped before
any work with a message that says what came and what is allowed.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _kill_loop import _alive, _children
from _sweep_fns import count_calls, sleepy
from torch import nn
from torch.utils.data import TensorDataset

import flops_fit
import flops_fit.ptycho.experiment as experiment
import flops_fit.scaling as scaling
from flops_fit.api import find_optimal
from flops_fit.locking import FolderLockedError
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.study import run_study
from flops_fit.results import LOG_NAME, TABLE_NAME, ResultsStore, load_results
from flops_fit.runner import run_sweep
from flops_fit.training import TrainSettings

TESTS = Path(__file__).resolve().parent
ROOT = Path(flops_fit.__file__).resolve().parents[1]  # the checkout under test, not an installed copy
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find worker processes")


def _python(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=ENV, capture_output=True,
                          text=True, timeout=120, **kw)


# ---------------------------------------------------------------- SIGKILL and resume


@linux_only
def test_twenty_sigkills_at_random_moments_lose_and_duplicate_nothing(tmp_path):
    proc = subprocess.run([sys.executable, str(TESTS / "_kill_loop.py"), str(tmp_path), "20", "0"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    print("kill-loop figures:", json.dumps(figures))
    for workers, f in figures.items():
        assert f["kills"] >= 20, workers
        assert (f["lost"], f["duplicated"], f["unparseable"], f["torn"]) == (0, 0, 0, 0), (workers, f)
        assert f["orphans"] == 0 and f["temp_files"] == 0, (workers, f)
    # A kill re-runs at most the run in flight. With a pool: the runs in flight, the few
    # queued ones orphaned workers start before they notice, and results finished but not
    # yet recorded by the parent (about 4.5 per kill here; bounded, not a runaway).
    assert figures["workers=0"]["rerun"] <= figures["workers=0"]["kills"]
    assert figures["workers=2"]["rerun"] <= 10 * figures["workers=2"]["kills"]


_POOL_SWEEP = """
import sys
from _sweep_fns import sleepy
from flops_fit.executors import make_executor
from flops_fit.runner import run_sweep
with make_executor(2) as ex:
    run_sweep([{"x": i, "sleep": 120} for i in range(4)], sleepy, sys.argv[1], executor=ex,
              progress=False, device="cpu")
"""


@linux_only
def test_killing_the_parent_ends_its_pool_workers(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _POOL_SWEEP, str(tmp_path)], env=ENV)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while sum(count_calls(d) for d in (tmp_path / "runs").glob("*")) < 2:  # both workers training
            assert proc.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        children = _children(proc.pid)  # the two workers and multiprocessing's resource tracker
        assert len(children) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5  # workers check on their parent every 0.5 s
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)], "orphaned workers still running"
    finally:
        proc.kill()
        for pid in children:  # a failed check must not leave them training for two minutes
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / LOG_NAME).exists()  # nothing finished: nothing recorded


# ---------------------------------------------------------------- one writer per folder

_OPEN_STORE = "import sys; from flops_fit.results import ResultsStore; ResultsStore(sys.argv[1])"


def test_a_second_process_stops_at_once_naming_the_holder(tmp_path):
    with ResultsStore(tmp_path):
        t0 = time.monotonic()
        proc = _python(_OPEN_STORE, str(tmp_path))
        took = time.monotonic() - t0
    assert proc.returncode != 0
    assert "FolderLockedError" in proc.stderr
    assert f"in use by PID {os.getpid()} on host {socket.gethostname()!r}" in proc.stderr
    assert took < 30  # at once: the import, not a wait for the holder
    assert _python(_OPEN_STORE, str(tmp_path)).returncode == 0  # free again after close


def test_a_second_store_in_the_same_process_is_refused(tmp_path):
    with ResultsStore(tmp_path), pytest.raises(
        FolderLockedError, match=rf"in use by PID {os.getpid()} .*this process: close the other ResultsStore"
    ):
        ResultsStore(tmp_path)


def test_a_sweep_into_a_busy_folder_runs_nothing(tmp_path):
    with ResultsStore(tmp_path), pytest.raises(FolderLockedError, match="one writer at a time"):
        run_sweep([{"x": 1}], sleepy, tmp_path, progress=False, device="cpu")
    assert not (tmp_path / "runs").exists()


def test_run_study_into_a_busy_folder_stops_before_simulating(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_or_simulate", lambda *a: pytest.fail("simulated"))
    with ResultsStore(tmp_path), pytest.raises(FolderLockedError, match="is in use by PID"):
        run_study(tmp_path, light=True, progress=False, device="cpu")


# ---------------------------------------------------------------- rows the store did not write


def _table(tmp_path: Path, rows: int) -> Path:
    folder = tmp_path / "copied"
    folder.mkdir()
    pd.DataFrame({"experiment_id": [f"{i:012x}" for i in range(rows)], "loss": range(rows),
                  "status": "ok"}).to_csv(folder / TABLE_NAME, index=False)
    return folder


def test_a_folder_holding_only_a_table_is_refused_and_kept(tmp_path):
    folder = _table(tmp_path, 5)
    with pytest.raises(FileExistsError, match=r"study_results\.csv holds 5 of 5 rows that its runs\.jsonl "
                                              r"does not record .* choose another output_dir"):
        run_sweep([{"x": 1}], sleepy, folder, progress=False, device="cpu")
    assert len(pd.read_csv(folder / TABLE_NAME)) == 5 and len(load_results(folder)) == 5
    assert not (folder / LOG_NAME).exists()


def test_run_study_into_a_copied_table_stops_before_simulating(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_or_simulate", lambda *a: pytest.fail("simulated"))
    with pytest.raises(FileExistsError, match="holds 5 of 5 rows"):
        run_study(_table(tmp_path, 5), light=True, progress=False, device="cpu")


def test_a_table_with_rows_the_log_lacks_is_refused(tmp_path):
    run_sweep([{"x": 1}], sleepy, tmp_path, progress=False, device="cpu")
    table = pd.read_csv(tmp_path / TABLE_NAME)
    pd.concat([table, table.assign(experiment_id="0123456789ab")]).to_csv(tmp_path / TABLE_NAME, index=False)
    with pytest.raises(FileExistsError, match="holds 1 of 2 rows"):
        ResultsStore(tmp_path)


def test_temp_tables_a_kill_left_are_removed_on_open(tmp_path):
    stale = [tmp_path / f".{TABLE_NAME}.{tag}.tmp" for tag in ("a1b2", "c3d4")]
    for path in stale:
        path.write_text("experiment_id,loss\n")
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    ResultsStore(tmp_path).close()
    assert not any(p.exists() for p in stale) and keep.exists()


# ---------------------------------------------------------------- find_optimal resume follows the data


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _data(seed: int, n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g))


def test_find_optimal_resumes_only_the_same_data_loss_and_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(scaling, "fit_isoflop", lambda rows, **kw: rows)  # the rows it would fit

    def fitted(dataset, loss=None, settings=None):
        return find_optimal(MLP, "width", None, dataset, loss or nn.MSELoss(), [2e3, 4e3], sizes=[2, 4],
                            settings=settings, output_dir=tmp_path, progress=False, device="cpu")

    def runs() -> int:
        return len((tmp_path / LOG_NAME).read_text().splitlines())

    first = fitted(_data(0))
    assert runs() == 4
    second = fitted(_data(1))  # another dataset of the same shape and length
    assert runs() == 8 and set(second["experiment_id"]).isdisjoint(first["experiment_id"])
    assert not np.allclose(second["final_loss"], first["final_loss"])
    again = fitted(_data(0))  # the first data again: resumed, nothing trained
    assert runs() == 8 and sorted(again["final_loss"]) == sorted(first["final_loss"])
    fitted(_data(0), loss=nn.L1Loss())
    fitted(_data(0), settings=TrainSettings(lr=3e-3))
    assert runs() == 16
    assert set(load_results(tmp_path)["loss_fn"]) == {
        "torch.nn.modules.loss.MSELoss(reduction='mean')", "torch.nn.modules.loss.L1Loss(reduction='mean')"}


# ---------------------------------------------------------------- bad input, stopped before work


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"grad_clip": -1.0}, ValueError, r"Got grad_clip=-1.0, expected None or a finite number > 0 "
                                          r"\(a negative max norm reverses every gradient\)"),
        ({"grad_clip": float("nan")}, ValueError, r"Got grad_clip=nan, expected None or a finite number > 0"),
        ({"lr": float("inf")}, ValueError, r"Got lr=inf, expected a finite number > 0"),
        ({"lr": "fast"}, TypeError, r"Got lr='fast', expected a finite number > 0"),
        ({"weight_decay": -50}, ValueError, r"Got weight_decay=-50, expected a finite number >= 0"),
        ({"batch_size": 8.0}, TypeError, r"Got batch_size=8.0, expected an int >= 1"),
        ({"split_seed": -1}, ValueError, r"Got split_seed=-1, expected an int >= 0"),
        ({"warmup_fraction": True}, TypeError, r"Got warmup_fraction=True, expected a number in \[0, 1\]"),
    ],
)
def test_train_settings_are_checked_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainSettings(**kwargs)


def test_grid_lines_n_below_8_is_refused():
    with pytest.raises(ValueError, match=r"Got N=2, expected an int >= 8"):
        GridLinesConfig(N=2)


_SMALL = GridLinesConfig(N=16, size=40, nlines=20, train_stride=8, test_stride=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"compute_budgets": [1e8, 3e8], "widths": [0, 2, 4]}, r"Got sizes\[0\]=0, expected a number > 0"),
        ({"compute_budgets": [1e8, 3e8], "widths": [-3, 2, 4]}, r"Got sizes\[0\]=-3, expected a number > 0"),
        ({"compute_budgets": [1e8, 3e8], "widths": [2.5, 4], "axes": {"fno_modes": [4]}},
         r"Got width=2.5, expected an int >= 1"),
        ({"compute_budgets": [1e8, 3e8], "widths": [2, 4], "axes": {"fno_modes": [9]}},
         r"Got modes=9 for N=16, expected at most N // 2 = 8 per sign"),
        ({"axes": {"fno_width": [0]}}, r"Got width=0, expected an int >= 1"),
        ({"axes": {"fno_width": [-3]}}, r"Got width=-3, expected an int >= 1"),
        ({"axes": {"fno_width": [2.5]}}, r"Got width=2.5, expected an int >= 1"),
        ({"axes": {"fno_modes": [9], "fno_width": [4]}}, r"Got modes=9 for N=16, expected at most N // 2"),
    ],
)
def test_run_study_refuses_bad_models_before_simulating(tmp_path, monkeypatch, kwargs, match):
    monkeypatch.setattr(experiment, "load_or_simulate", lambda *a: pytest.fail("simulated before the check"))
    with pytest.raises(ValueError, match=match):
        run_study(tmp_path, data=_SMALL, epochs=1, progress=False, device="cpu", **kwargs)
    assert not (tmp_path / LOG_NAME).exists()


@pytest.mark.parametrize(
    ("dataset", "kwargs", "error", "match"),
    [
        (_data(0, n=1), {}, ValueError, r"Got a dataset of 1 sample, expected at least 2"),
        # training: one batch through the smallest model, before planning
        (TensorDataset(torch.randn(8, 7), torch.randn(8, 1)), {}, ValueError,
         r"MLP\(width=2\) failed on a batch of the dataset \(input shape \(2, 7\)\): RuntimeError: "
         r"mat1 and mat2 shapes cannot be multiplied"),
        (_data(0), {"settings": {"lr": 0.1}}, TypeError, r"Got settings of type dict, expected a TrainSettings"),
    ],
)
def test_find_optimal_stops_before_training(tmp_path, dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        find_optimal(MLP, "width", None, dataset, nn.MSELoss(), [2e3, 4e3], sizes=[2, 4],
                     output_dir=tmp_path, progress=False, **kwargs)
    assert not any(tmp_path.iterdir())


def test_planning_names_an_input_the_model_cannot_take(tmp_path):
    with pytest.raises(ValueError, match=r"MLP\(width=2\) cannot run on a sample_input of shape \(1, 7\): "
                       r"RuntimeError: mat1 and mat2 shapes cannot be multiplied .* Expected a batch the model"):
        find_optimal(MLP, "width", None, compute_budgets=[2e3, 4e3], sizes=[2, 4],
                     sample_input=torch.randn(1, 7), output_dir=tmp_path)


_N = np.repeat([1e6, 3e6, 1e7], 3)
_D = np.tile([1e8, 3e8, 1e9], 3)


@pytest.mark.parametrize(
    ("N", "D", "loss", "match"),
    [
        (_N, _D, np.full(9, 3.7), r"Got loss values that are all equal \(3.7\), expected losses that vary"),
        (np.full(9, 1e6), _D, np.linspace(3, 4, 9), r"Got N with one distinct value \(1e\+06\), expected at least 2"),
        (_N, np.full(9, 1e8), np.linspace(3, 4, 9), r"Got D with one distinct value \(1e\+08\), expected at least 2"),
    ],
)
def test_fit_parametric_refuses_degenerate_data(N, D, loss, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit_parametric(N, D, loss)


def test_fit_isoflop_refuses_negative_losses():
    n = np.tile([1e5, 3e5, 1e6, 3e6], 2)
    c = np.repeat([1e12, 1e13], 4)
    df = pd.DataFrame({"compute_budget": c, "model_params": n, "train_samples": c / (6 * n),
                       "final_test_loss": (np.log(n) - np.log(3e5 * c / 1e12)) ** 2 - 1.0})
    with pytest.raises(ValueError, match=r"Got loss with non-positive or infinite values \[-1.0"):
        scaling.fit_isoflop(df, n_bootstrap=0)


def test_a_cache_holding_nan_is_regenerated(tmp_path):
    cfg = _SMALL.replace(poisson=False)
    good = load_or_simulate(cfg, tmp_path)
    path = tmp_path / f"gridlines_{cfg.cache_key()}.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["train_X"][3] = np.nan
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match=r"is unusable \(train_X holds non-finite values\); regenerating"):
        data = load_or_simulate(cfg, tmp_path)
    np.testing.assert_array_equal(data.train.X, good.train.X)


class _DeadPool(cf.Executor):
    """Every submission fails as a process pool whose worker died does."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        return future


def test_a_dead_worker_pool_says_what_to_check(tmp_path):
    df = run_sweep([{"x": 1}], sleepy, tmp_path, executor=_DeadPool(), progress=False, device="cpu")
    assert df["status"].tolist() == ["failed"]
    assert df["error"][0].startswith("BrokenProcessPool: A process in the process pool was terminated")
    assert "killed, out of memory, or crashed" in df["error"][0]
    assert 'under `if __name__ == "__main__":`' in df["error"][0]


_NO_GUARD = """
from _sweep_fns import sleepy
from flops_fit.executors import make_executor
from flops_fit.runner import run_sweep

with make_executor(1) as ex:
    run_sweep([{"x": 1}], sleepy, "out", executor=ex, progress=False, device="cpu")
"""


def test_a_script_without_the_main_guard_fails_before_any_run(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(_NO_GUARD)
    proc = subprocess.run([sys.executable, str(script)], env=ENV, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: The worker processes of make_executor died while starting")
    assert 'under `if __name__ == "__main__":`' in last
    assert not (tmp_path / "out").exists()
