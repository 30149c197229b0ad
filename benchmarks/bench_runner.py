"""Runner overhead: run_sweep against a bare loop calling the same function.

The function sleeps 20, 30 or 50 ms (a stand-in for a short experiment whose
own time does not depend on CPU load). What the runner adds:

- per experiment: seeding, device resolution, timing, the run folder, the
  log line (its fsync and the CSV rewrite run in a background thread), the
  progress bar. Measured as the median gap between one call's return and
  the next call's start, against the function's own time;
- per sweep: reading the folder, waiting for the last fsync and CSV
  rewrite, building the returned DataFrame.

Printed: both, the wall-clock ratio of whole sweeps (median of alternating
repeats, progress bar on as users see it), and the extra CPU time of the
calling thread, which does not grow when the machine is busy and wall-clock
gaps do (waiting for a core). Goal: <= 3 %.

Run: ``.venv/bin/python benchmarks/bench_runner.py``  (about 60 s).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from flops_fit.runner import run_sweep

SLEEPS_S = (0.02, 0.03, 0.05)  # experiment lengths
N_RUNS = 40  # experiments per sweep
REPEATS = 3

_marks: list[tuple[float, float]] = []  # (start, end) of each call


def experiment(config: dict, run_dir: Path, *, device: str) -> dict:
    start = time.perf_counter()
    time.sleep(config["sleep"])
    _marks.append((start, time.perf_counter()))
    return {"train_loss": 0.1 * config["x"], "score": float(config["x"])}


def bare_loop(configs: list[dict], folder: Path) -> None:
    for config in configs:
        experiment(config, folder, device="cpu")


def compare(sleep: float, tmp: Path) -> None:
    bare, sweep, gaps, calls, ends, bare_calls, cpu = [], [], [], [], [], [], []
    for r in range(REPEATS):
        configs = [{"x": i, "sleep": sleep, "repeat": r} for i in range(N_RUNS)]  # new ids: nothing resumed
        _marks.clear()
        t0, c0 = time.perf_counter(), time.thread_time()
        bare_loop(configs, tmp)
        bare.append(time.perf_counter() - t0)
        cpu_bare = time.thread_time() - c0
        bare_calls += [end - start for start, end in _marks]
        _marks.clear()
        t0, c0 = time.perf_counter(), time.thread_time()
        run_sweep(configs, experiment, tmp / f"{sleep}-{r}")
        t1 = time.perf_counter()
        cpu.append((time.thread_time() - c0 - cpu_bare) / N_RUNS)
        sweep.append(t1 - t0)
        ends.append((_marks[0][0] - t0, t1 - _marks[-1][1]))  # before the first call, after the last
        calls += [end - start for start, end in _marks]
        gaps += [nxt[0] - prev[1] for prev, nxt in zip(_marks, _marks[1:], strict=False)]
    ref, wall = statistics.median(bare), statistics.median(sweep)
    call, gap = statistics.median(calls), statistics.median(gaps)
    bare_call = statistics.median(bare_calls)
    start = statistics.median(e[0] for e in ends)
    finish = statistics.median(e[1] for e in ends)
    print(f"\n{N_RUNS} experiments of {sleep * 1e3:.0f} ms (median of {REPEATS} sweeps)")
    print(f"  bare loop {ref:.3f} s, run_sweep {wall:.3f} s: whole-sweep ratio {wall / ref:.4f}")
    print(f"  one call: {bare_call * 1e3:.2f} ms in the bare loop, {call * 1e3:.2f} ms in run_sweep (medians)")
    print(
        f"  per experiment: {gap * 1e3:.2f} ms between calls, ratio {(call + gap) / call:.4f}; "
        f"per sweep: {start * 1e3:.1f} ms before the first call, {finish * 1e3:.1f} ms after the last"
    )
    print(
        f"  CPU time of the calling thread: +{statistics.median(cpu) * 1e3:.2f} ms per experiment "
        "(whole sweep / runs; what the overhead would be with a core to itself)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_sweep([{"x": 0, "sleep": 0.0}], experiment, Path(tmp) / "warm", progress=False)  # imports
        for sleep in SLEEPS_S:
            compare(sleep, Path(tmp))
    print("\ngoal: ratio <= 1.03")


if __name__ == "__main__":
    main()
