"""Kill a sweep with SIGKILL at random moments, resume it, and count what broke.

Run as ``python _kill_loop.py <folder> <kills> <seed>``; prints the figures
of a sequential sweep and of one on 2 workers as one JSON object. One process imports torch once and forks a fresh
sweep per round (a new interpreter per round would cost seconds of imports);
the sweep resumes the same folder every round and is killed after a random
delay: while opening the store, between runs, mid-run, mid-write. With
``workers > 0`` the sweep runs on a fork process pool whose workers use the
real pool initializer (:func:`flops_fit.executors._init_pool_worker`, which
makes them exit with their parent).

Figures:

- ``kills``: SIGKILLs that hit a running sweep; ``sweeps``: folders run to the end;
- ``lost``: experiments recorded ``ok`` after one kill and missing after a
  later one, or missing from the table once the sweep is resumed to the end;
- ``duplicated``: extra records of an experiment in the final log (each
  should be recorded once), plus repeated ids in any table read;
- ``unparseable``: a log, table or reopened store that did not read after a
  kill (a torn last line is only counted under ``torn``);
- ``rerun``: executions beyond one per experiment (runs in flight when
  killed, and runs orphaned workers began before they exited);
- ``orphans``: pool workers still alive 3 s after the last kill;
- ``temp_files``: temporary tables left after the final resume.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from _sweep_fns import count_calls, sleepy

from flops_fit import executors
from flops_fit.results import LOG_NAME, TABLE_NAME, ResultsStore, experiment_id, load_results
from flops_fit.runner import run_sweep

EXPERIMENTS = 100  # per sweep folder; a finished one is checked and a new one started
SLEEP_S = 0.005  # per experiment: writes are then a large share of the time, as kills should hit them
MAX_DELAY_S = {0: 0.25, 1: 0.4}  # kill within this long after the fork; a pool takes longer to start


def _configs() -> list[dict[str, float]]:
    return [{"x": i, "sleep": SLEEP_S} for i in range(EXPERIMENTS)]


def _sweep(folder: str, workers: int) -> None:
    if not workers:
        run_sweep(_configs(), sleepy, folder, progress=False, device="cpu")
        return
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("fork"),  # spawn would re-import torch in every worker, every round
        initializer=executors._init_pool_worker,
        initargs=(None, 1, os.getpid()),
    )
    with pool:
        run_sweep(_configs(), sleepy, folder, executor=pool, progress=False, device="cpu")


def _fork(target, *args) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run, then leave without unwinding the parent's state
        code = 0
        try:
            target(*args)
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is missing


def _inspect(folder: Path, figures: dict[str, int]) -> set[str]:
    """The ids recorded ok; counts a folder that does not read as unparseable."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            log = load_results(folder) if (folder / LOG_NAME).exists() else pd.DataFrame()
        except Exception:
            figures["unparseable"] += 1
            return set()
    figures["torn"] += sum("torn" in str(w.message) for w in caught)
    if (folder / TABLE_NAME).exists():
        try:
            table = pd.read_csv(folder / TABLE_NAME)
            figures["duplicated"] += int(table["experiment_id"].duplicated().sum())
            if not set(table["experiment_id"]) <= set(log.get("experiment_id", [])):
                figures["unparseable"] += 1  # a table row the log does not hold
        except Exception:
            figures["unparseable"] += 1
    try:
        ResultsStore(folder).close()  # what the next round does first
    except Exception:
        figures["unparseable"] += 1
    if log.empty:
        return set()
    return set(log.loc[log["status"] == "ok", "experiment_id"])


def _finish(folder: Path, figures: dict[str, int]) -> None:
    """Resume ``folder`` to the end, then count what the kills left wrong in it."""
    _, status = os.waitpid(_fork(_sweep, str(folder), 0), 0)
    if os.waitstatus_to_exitcode(status) != 0:
        figures["unparseable"] += 1  # the resume itself failed
    ids = [experiment_id({**c, "seed": 0}) for c in _configs()]
    log = [json.loads(line)["experiment_id"] for line in (folder / LOG_NAME).read_text().splitlines()]
    figures["duplicated"] += len(log) - len(set(log))
    table = pd.read_csv(folder / TABLE_NAME)
    figures["duplicated"] += int(table["experiment_id"].duplicated().sum())
    figures["lost"] += len(set(ids) - set(table.loc[table["status"] == "ok", "experiment_id"]))
    figures["rerun"] += sum(count_calls(folder / "runs" / eid) for eid in ids) - len(ids)
    figures["temp_files"] += len(list(folder.glob(f".{TABLE_NAME}.*.tmp")))


def main(folder: str, kills: int, workers: int, seed: int) -> dict[str, int]:
    torch.set_num_threads(1)
    rng = random.Random(seed)
    figures = dict.fromkeys(
        ("kills", "sweeps", "lost", "duplicated", "unparseable", "torn", "rerun", "orphans", "temp_files"), 0
    )
    finished: set[str] = set()
    pool_pids: set[int] = set()
    sweep = Path(folder) / "sweep0"
    while figures["kills"] < kills:
        pid = _fork(_sweep, str(sweep), workers)
        time.sleep(rng.uniform(0.0, MAX_DELAY_S[min(workers, 1)]))
        if workers:
            pool_pids |= _children(pid)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        figures["kills"] += os.WIFSIGNALED(status)
        now = _inspect(sweep, figures)
        figures["lost"] += len(finished - now)
        finished |= now
        if len(finished) == EXPERIMENTS:  # done despite the kills: check it, start another
            _finish(sweep, figures)
            figures["sweeps"] += 1
            finished, sweep = set(), Path(folder) / f"sweep{figures['sweeps']}"
    _finish(sweep, figures)
    figures["sweeps"] += 1
    deadline = time.monotonic() + 3.0  # workers check on their parent every 0.5 s
    while any(map(_alive, pool_pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    figures["orphans"] = sum(map(_alive, pool_pids))
    return figures


if __name__ == "__main__":
    folder, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    figures = {f"workers={w}": main(f"{folder}/workers{w}", kills, w, seed) for w in (0, 2)}
    print(json.dumps(figures))
