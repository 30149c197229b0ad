"""The one prepared device check: CUDA tests, training and inference rates, bf16 against fp32, a real study.

From the repository root of a machine with a CUDA GPU::

    PYTHONPATH=. python benchmarks/gpu_check.py [--out DIR] [--budget-s 480]

Needs only torch, numpy, scipy, pandas, scikit-image, matplotlib, tqdm and
threadpoolctl (and pytest for the CUDA tests: without it they are reported
skipped). Sized for about 5 minutes on one H200, at most ``--budget-s``
(8 minutes): the optional ``torch.compile`` rows are skipped when time runs
short. Prints a short table last and writes ``gpu_check.json``,
``study_results.csv`` and ``pareto_plot.png`` to ``--out``.

Sections:

1. ``peak``: a 8192^3 bf16 matmul, the ceiling for "% of peak".
2. ``tests``: ``pytest -m cuda tests/test_cuda.py``.
3. ``train``: ``fno`` and ``hybrid`` (w32 m12, N = 64) training samples/s
   in each precision at batch 256, ``fno`` bf16 at other batches (does the
   batch fill the GPU?), with ``cudnn.benchmark`` and with
   ``torch.compile``. A rate is (long run - short run) samples over the time
   difference, so copies, optimiser set-up and compilation cancel.
4. ``infer``: patterns/s at batch 4096; ``stacked``: 3 seeds of a width-4
   ``fno`` trained as one stacked model against one by one (fp32).
5. ``agree``: one ``fno`` trained in bf16 on the full data, scored with
   bf16 and with fp32 inference, and its fp32-trained twin (target: phase
   SSIM within 0.005).
6. ``study``: ``run_study`` on the full data, 4 experiments, 1 epoch at
   batch 256 (lr by ``scaled_lr``), its CSV and Pareto plot, and the time
   the 54-run grid would take at these rates.

``--smoke`` (the default without CUDA) runs every section on the CPU at tiny
sizes in seconds, so CI keeps the check from rotting (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from flops_fit.device import DeviceSettings, synchronize
from flops_fit.flops import forward_flops
from flops_fit.ptycho import experiment, study
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.models import build_model
from flops_fit.timing import time_inference

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """Everything the two modes size differently."""

    device: str
    n: int  # patch side, px
    width: int
    modes: int
    batch: int  # training batch of the rate rows, the agreement run and the study
    fill_batches: tuple[int, ...]  # further fno bf16 training batches
    steps: int  # timed steps per rate (the long run minus the short one)
    pool: int  # synthetic patterns the rate runs cycle through
    infer_batch: int
    matmul: int  # side of the square bf16 matmul of the peak
    data: GridLinesConfig | None  # the study's data (None: the full preset)
    agree_epochs: int
    study_axes: dict[str, list[Any]]
    compile_modes: tuple[str, ...]


GPU = Sizes("cuda", 64, 32, 12, 256, (64, 1024), 24, 4096, 4096, 8192, None, 5,
            {"fno_input_transform": ["none", "log1p"], "fno_modes": [12], "fno_width": [32]},
            ("default", "reduce-overhead"))
SMOKE = Sizes("cpu", 16, 4, 2, 8, (4,), 1, 16, 16, 128,
              GridLinesConfig(N=16, size=48, nlines=40, train_stride=4, test_stride=8), 1,
              {"fno_input_transform": ["none"], "fno_modes": [2], "fno_width": [4]}, ())
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass
class Report:
    """Rows of the closing table, the numbers behind them, and the clock."""

    budget_s: float
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    def add(self, name: str, value: str, note: str = "", **numbers: Any) -> None:
        self.rows.append((name, value, note))
        self.numbers.update(numbers)
        print(f"  [{time.perf_counter() - self.start:5.0f} s] {name}: {value} {note}", flush=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def timed(fn: Callable[[], Any], device: str) -> float:
    """Wall seconds of ``fn()``, queued device work included."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def matmul_peak(s: Sizes) -> float:
    """bf16 matmul FLOP/s, median of 10 after 3 warm-ups, on random data."""
    a, b = torch.randn(2, s.matmul, s.matmul, device=s.device, dtype=torch.bfloat16).unbind()
    for _ in range(3):
        a @ b
    times = sorted(timed(lambda: a @ b, s.device) for _ in range(10))
    return 2 * s.matmul**3 / times[len(times) // 2]


def cuda_tests(report: Report) -> bool:
    """Run the cuda-marked tests in a subprocess; False if any failed."""
    if importlib.util.find_spec("pytest") is None:
        report.add("cuda tests", "skipped", "(no pytest here)")
        return True
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-o", "addopts=", "-p", "no:cacheprovider",
           "-q", "tests/test_cuda.py"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        cmd[3:3] = ["-p", "pytest_timeout"]  # the one plugin the suite's settings use
    # No plugin autoload: the CUDA tests need no other, and nbmake's imports alone take seconds.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = proc.stdout.strip().splitlines()
    summary = re.sub(r"=+", "", lines[-1]).strip() if lines else f"no output (rc {proc.returncode})"
    if proc.returncode not in (0, 5):
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    report.add("cuda tests", summary, "" if proc.returncode == 0 else f"(rc {proc.returncode})",
               cuda_tests=summary, cuda_tests_rc=proc.returncode)
    return proc.returncode == 0


def _pool(s: Sizes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((s.pool, 1, s.n, s.n), dtype=np.float32)
    y = (rng.standard_normal((s.pool, s.n, s.n)) + 1j * rng.standard_normal((s.pool, s.n, s.n))).astype(np.complex64)
    return x, y, np.ones((s.n, s.n), np.complex64)


def _model(arch: str, s: Sizes) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, modes=s.modes, width=s.width, N=s.n)


def train_rate(arch: str, s: Sizes, settings: DeviceSettings, batch: int, pool: tuple) -> tuple[float, float]:
    """(samples/s, seconds of the warm-up run: plans, autotuning, compilation)."""
    model = _model(arch, s).to(s.device)

    def run(steps: int) -> float:
        return timed(lambda: ptrain.fit(model, *pool, samples=steps * batch, batch_size=batch, lr=1e-4,
                                        device=s.device, settings=settings, progress=False), s.device)

    warm = run(2)
    short, long = run(2), run(2 + s.steps)
    if long <= short:  # noise (a busy CPU in the smoke mode): the long run's own rate
        return (2 + s.steps) * batch / long, warm
    return s.steps * batch / (long - short), warm


def stack_rows(report: Report, s: Sizes) -> None:
    """Samples/s per model of 3 small ``fno`` seeds trained stacked against one by one."""
    pool, settings = _pool(s), DeviceSettings.for_device(s.device).replace(precision="fp32")
    width, members = max(2, s.width // 8), 3

    def models() -> list[torch.nn.Module]:
        out = []
        for seed in range(members):
            torch.manual_seed(seed)
            out.append(build_model("fno", modes=s.modes, width=width, N=s.n).to(s.device))
        return out

    samples = (2 + s.steps) * s.batch
    args = dict(samples=samples, batch_size=s.batch, lr=1e-4, device=s.device, settings=settings, progress=False)
    alone = lambda: [ptrain.fit(m, *pool, seed=i, **args) for i, m in enumerate(models())]  # noqa: E731
    stacked = lambda: ptrain.fit_members(models(), *pool, seeds=list(range(members)), **args)  # noqa: E731
    timed(stacked, s.device)  # warm-up: cuDNN plans of the grouped convolutions
    t_alone, t_stacked = timed(alone, s.device), timed(stacked, s.device)
    rate = {"alone": members * samples / t_alone, "stacked": members * samples / t_stacked}
    report.add(f"train fno w{width} x{members} seeds stacked", f"{rate['stacked']:,.0f} samples/s",
               f"{rate['stacked'] / rate['alone']:.2f}x one by one ({rate['alone']:,.0f})",
               stacked_rate=rate["stacked"], stacked_alone_rate=rate["alone"])


def train_rows(report: Report, s: Sizes, peak: float) -> None:
    pool = _pool(s)
    default = DeviceSettings.for_device(s.device)
    for arch in ("fno", "hybrid"):
        flops = forward_flops(_model(arch, s), torch.zeros(1, 1, s.n, s.n))
        variants = [(p, s.batch, {}) for p in PRECISIONS]
        if arch == "fno":
            variants += [("bf16", b, {}) for b in s.fill_batches] + [("bf16", s.batch, {"cudnn": True})]
        for precision, batch, extra in variants:
            name = f"train {arch} {precision} b{batch}" + (" cudnn.benchmark" if extra else "")
            with _cudnn_benchmark(bool(extra)):
                rate, _ = train_rate(arch, s, default.replace(precision=precision), batch, pool)
            share = 3 * flops * rate / peak
            report.add(name, f"{rate:,.0f} samples/s", f"{share:.1%} of peak",
                       **{name.replace(" ", "_"): rate})


@contextlib.contextmanager
def _cudnn_benchmark(on: bool) -> Iterator[None]:
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def compile_rows(report: Report, s: Sizes, need_s: float) -> None:
    pool = _pool(s)
    for mode in s.compile_modes:
        name = f"train fno bf16 b{s.batch} compile {mode}"
        if report.left() < need_s:
            report.add(name, "skipped", f"(needs ~{need_s:.0f} s, {report.left():.0f} s left)")
            continue
        settings = DeviceSettings.for_device(s.device).replace(compile_mode=mode)
        try:
            rate, warm = train_rate("fno", s, settings, s.batch, pool)
        except Exception as exc:  # complex tensors and custom autograd: may not compile
            report.add(name, "failed", f"({type(exc).__name__}: {str(exc)[:60]})")
            continue
        report.add(name, f"{rate:,.0f} samples/s", f"(warm-up with compilation {warm:.0f} s)",
                   **{name.replace(" ", "_"): rate})
        torch._dynamo.reset()


def infer_rows(report: Report, s: Sizes) -> None:
    batch = torch.rand(s.infer_batch, 1, s.n, s.n, device=s.device)
    for arch in ("fno", "hybrid"):
        model = _model(arch, s).to(s.device)
        for precision in ("fp32", "bf16"):
            settings = DeviceSettings(precision=precision)
            with settings.matmuls(batch.device.type), settings.autocast(batch.device.type):
                rate = 1.0 / time_inference(model, batch)
            name = f"infer {arch} {precision} b{s.infer_batch}"
            report.add(name, f"{rate:,.0f} patterns/s", **{name.replace(" ", "_"): rate})


def agree_rows(report: Report, s: Sizes, cache: Path) -> None:
    data = load_or_simulate(s.data or GridLinesConfig(), cache)
    scale = ptrain.input_scale(data.train.X)
    fp32 = DeviceSettings.for_device(s.device).replace(precision="fp32")
    bf16 = fp32.replace(precision="bf16")
    scores, train_s = {}, {}
    for precision, settings in (("bf16", bf16), ("fp32", fp32)):
        model = ptrain.InputScale(_model("fno", s), scale).to(s.device)
        train_s[precision] = timed(lambda m=model, st=settings: ptrain.fit(
            m, data.train.X, data.train.Y, data.train.probe, samples=s.agree_epochs * len(data.train.X),
            batch_size=s.batch, lr=ptrain.scaled_lr(s.batch), device=s.device, settings=st, progress=False,
        ), s.device)
        scores[f"{precision}-trained, fp32 inference"] = experiment.evaluate(model, data, device=s.device, settings=fp32)
        if precision == "bf16":
            scores["bf16-trained, bf16 inference"] = experiment.evaluate(model, data, device=s.device, settings=bf16)
    report.numbers["agree"] = {"scores": scores, "train_s": train_s}
    same = scores["bf16-trained, bf16 inference"]["ssim_phase"] - scores["bf16-trained, fp32 inference"]["ssim_phase"]
    twin = scores["bf16-trained, bf16 inference"]["ssim_phase"] - scores["fp32-trained, fp32 inference"]["ssim_phase"]
    ref = scores["fp32-trained, fp32 inference"]["ssim_phase"]
    report.add("agree: bf16 - fp32 inference, one model", f"{same:+.4f} phase SSIM", "(target |d| <= 0.005)")
    report.add("agree: bf16 - fp32 trained twin", f"{twin:+.4f} phase SSIM",
               f"(fp32 twin {ref:.3f}; {s.agree_epochs} epochs: bf16 {train_s['bf16']:.1f} s, "
               f"fp32 {train_s['fp32']:.1f} s)")


def study_rows(report: Report, s: Sizes, cache: Path, work: Path, out: Path) -> None:
    t0 = time.perf_counter()
    csv = study.run_study(work / "study", light=False, data=s.data, epochs=1, architectures=["fno", "hybrid"],
                          axes=s.study_axes, device=s.device, batch_size=s.batch, cache_dir=cache,
                          resume=False, progress=False)
    wall = time.perf_counter() - t0
    df = pd.read_csv(csv)
    for name in ("study_results.csv", "pareto_plot.png"):
        shutil.copy(csv.parent / name, out / name)
    ok = df[df["status"] == "ok"]
    report.add("study (full data, 1 epoch)", f"{len(ok)}/{len(df)} ok in {wall:.0f} s",
               f"(batch {s.batch}; {out / 'study_results.csv'}, pareto_plot.png)")
    for row in ok.itertuples():
        report.add(f"study {row.architecture} {row.fno_input_transform}",
                   f"epoch {row.train_time_s:.1f} s", f"phase SSIM {row.ssim_phase:.3f}")
    if len(ok):
        # 27 runs per architecture, 20 epochs each; w48/w64 and more modes cost more: a lower bound.
        per_arch = ok.groupby("architecture")[["train_time_s", "wall_time_s"]].mean()
        grid_s = 27 * (20 * per_arch["train_time_s"] + per_arch["wall_time_s"] - per_arch["train_time_s"]).sum()
        report.add("54-run grid estimate", f"{grid_s / 60:.0f} min", "(at w32 m12 rates: a lower bound; target 60)",
                   grid_estimate_s=float(grid_s))
    report.numbers["study"] = df.drop(columns=[c for c in df if c.startswith("version_")]).to_dict("records")


def environment(s: Sizes) -> str:
    if s.device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU smoke mode, torch {torch.__version__}"


def print_table(report: Report, title: str) -> None:
    width = max(len(r[0]) for r in report.rows)
    value_width = max(len(r[1]) for r in report.rows)
    print(f"\n{title}")
    for name, value, note in report.rows:
        print(f"  {name:<{width}}  {value:>{value_width}}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU sizes (the default without CUDA)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "gpu_check", help="where results go")
    parser.add_argument("--budget-s", type=float, default=480.0, help="seconds the check may take")
    args = parser.parse_args(argv)
    smoke = args.smoke or not torch.cuda.is_available()
    if smoke and not args.smoke:
        print("no CUDA device: running the CPU smoke mode")
    s = SMOKE if smoke else GPU
    if smoke:
        torch.set_num_threads(1)  # tiny tensors: OpenMP barriers cost more than they save
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(budget_s=args.budget_s)
    report.numbers["environment"] = env = environment(s)
    print(f"gpu_check: {env}", flush=True)
    peak = matmul_peak(s)
    report.add("bf16 matmul peak", f"{peak / 1e12:,.1f} TFLOP/s", f"({s.matmul}^3, median of 10)", peak_flops=peak)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "data_cache"
        # (name, seconds it needs on an H200, what it runs), most important first.
        sections = [
            ("cuda tests", 90, lambda: cuda_tests(report)),
            ("train", 60, lambda: train_rows(report, s, peak)),
            ("infer", 20, lambda: infer_rows(report, s)),
            ("stacked", 30, lambda: stack_rows(report, s)),
            ("agree", 40, lambda: agree_rows(report, s, cache)),
            ("study", 60, lambda: study_rows(report, s, cache, work, args.out)),
            ("compile", 0, lambda: compile_rows(report, s, need_s=90)),
        ]
        ok = [run_section(report, *section) for section in sections]
    total = time.perf_counter() - report.start
    report.numbers["total_s"] = total
    (args.out / "gpu_check.json").write_text(json.dumps(report.numbers, indent=1, default=str))
    print_table(report, f"gpu_check ({env}): {total:.0f} s, budget {args.budget_s:.0f} s; numbers in "
                        f"{args.out / 'gpu_check.json'}")
    return 0 if all(ok) else 1


def run_section(report: Report, name: str, need_s: float, run: Callable[[], bool | None]) -> bool:
    """Run one section unless the budget is short; a failure is a row, and the check goes on."""
    if report.left() < need_s:
        report.add(name, "skipped", f"(needs ~{need_s:.0f} s, {report.left():.0f} s left)")
        return True
    try:
        return run() is not False
    except Exception as exc:
        traceback.print_exc()
        report.add(name, "FAILED", f"({type(exc).__name__}: {str(exc)[:80]})")
        return False


if __name__ == "__main__":
    sys.exit(main())
