"""Training throughput and model FLOP utilisation (MFU) of the ``fno`` generator on this machine.

Setting (from the models issue): ``fno`` with width 32, 12 modes, N=64,
batch 16, Adam, L1 loss on real / imaginary channels.

MFU = forward FLOPs per sample (``flops_fit.flops.forward_flops``, FFT-aware)
x 3 (forward + backward) x samples/s, divided by the fp32 matmul peak measured
in the same process (best of 1024^2 and 2048^2 matmuls). All timings are the
best of interleaved rounds, so load from other users of the machine
penalises the peak and the model alike.

Runs with one thread and with all threads: on a shared 2-core machine OpenMP
barriers can stall every parallel op for a scheduler slice, so one thread
can beat two. MFU is reported against the peak at the same thread count and
against the best peak of any thread count (the honest number).

In-process reference: the same network with the textbook spectral layer of
Li et al. (2021) (complex einsums on two corners, full-size output spectrum).

Small widths (``--widths``, the default table): for N = 32 and 64 and widths
2-8 (16 and 32 for context), training samples/s of today's layers (every
convolution channels-last, :class:`~flops_fit.ptycho.layers.ChannelsLastConv2d`)
against the same model in NCHW layout (:func:`~flops_fit.ptycho.layers.nchw_copy`,
the code before it), both timed interleaved in this process, with GFLOP/s and %
of this process's matmul peak at the same thread count. These widths are what an
IsoFLOP sweep on a CPU spends its time on.

Read the NCHW column with care: its backward pass allocates large temporaries,
which glibc serves with fresh mmap pages until a large block has been freed (here
the peak matmuls, which run first) and its allocation threshold rises. In a fresh
process NCHW width 2 at N = 32 trains at ~700 samples/s, not the ~1,400 this table
shows; channels-last is unaffected (~1,500). The study's own runs, end to end, were
1.9-2.6x faster at widths 2-8 (notebooks/example_isoflop against its previous run).

``3x needs`` is the share of the matmul peak that the step would have to run at
for 3 times the NCHW reference's samples/s (every FLOP counted, as in ``% peak``):
how far today's ``% peak`` is from the speed-up the small-model issue asks for.

The ``stacked`` column trains 3 seeds of the width as one stacked model
(:func:`~flops_fit.ptycho.stacking.stack_models`, what ``run_study`` does with
several seeds), counted as the 3 models' samples/s together; GFLOP/s and % peak
are those of the faster of the two.

``--fresh`` adds the same small-width table with every variant timed in a
new process (the regime of a sweep's workers, where the NCHW reference is
about half as fast as in the in-process table). Its ``kept`` column is the
stacked model with :func:`~flops_fit.allocator.keep_freed_memory` over the
same without (what the runner does only in a Dask-like worker, see
:mod:`flops_fit.allocator`).

``--profile`` adds a torch.profiler breakdown of one thread's training step.

Usage: ``python benchmarks/bench_fno_train.py [--fresh] [--profile] [--no-widths] [--no-mfu]``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _timing import TextbookSpectralConv2d, best_seconds
from torch import nn

from flops_fit.allocator import keep_freed_memory
from flops_fit.flops import count_params, forward_flops
from flops_fit.ptycho.layers import nchw_copy
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.stacking import member_slices, stack_inputs, stack_models

BATCH, WIDTH, MODES, N = 16, 32, 12, 64
SEEDS = 3  # seeds trained together in the stacked column (run_study's SEEDS_TOGETHER)
SMALL_WIDTHS, CONTEXT_WIDTHS, GRIDS = (2, 3, 4, 6, 8), (16, 32), (32, 64)




def train_step(model: nn.Module, n: int = N) -> Callable[[], None]:
    """One Adam step on a fixed random batch (data loading excluded)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 1, n, n)
    y = torch.randn(BATCH, 2, n, n)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (model(x) - y).abs().mean().backward()
        opt.step()

    return step


def stacked_step(width: int, n: int, members: int = SEEDS) -> Callable[[], None]:
    """One Adam step of ``members`` seeds trained together (:mod:`flops_fit.ptycho.stacking`)."""
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        models.append(build_model("fno", modes=min(MODES, n // 2), width=width, N=n))
    wide = stack_models(models, check_input=torch.rand(2, 1, n, n))
    opt = torch.optim.Adam(wide.parameters(), lr=1e-3)
    x = stack_inputs([torch.rand(BATCH, 1, n, n) for _ in models])
    y = [torch.randn(BATCH, 2, n, n) for _ in models]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        preds = member_slices(wide(x), members)
        torch.stack([(p - t).abs().mean() for p, t in zip(preds, y, strict=True)]).sum().backward()
        opt.step()

    return step


def matmul(n: int) -> Callable[[], torch.Tensor]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: a @ b


# Self CPU time of aten ops, grouped (first matching substring wins).
CATEGORIES = [
    ("convolutions 3x3/1x1 (fwd+bwd)", ("convolution",)),
    ("FFTs", ("_fft_",)),
    ("spectral mixing (bmm)", ("bmm",)),
    ("GELU (fwd+bwd)", ("gelu",)),
    ("optimizer (Adam)", ("_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("copies / cat / zero-fill", ("copy_", "cat", "fill_", "zero_", "clone", "contiguous")),
    ("adds / muls / other elementwise", ("add", "sub", "mul", "div", "neg", "abs", "sgn", "sum", "mean")),
]


def profile_step(step: Callable[[], None]) -> None:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    shares = dict.fromkeys([c for c, _ in CATEGORIES] + ["other"], 0.0)
    for e in events:
        name = next((c for c, keys in CATEGORIES if any(k in e.key for k in keys)), "other")
        shares[name] += e.self_cpu_time_total
    print("\nwhere the time goes (self CPU time of aten ops, one training step, 1 thread):")
    for name, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {name:34s} {100 * t / total:5.1f} %")
    print("top ops:")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"  {e.key:34s} {100 * e.self_cpu_time_total / total:5.1f} %  ({e.count // 2} calls/step)")


def peak_flops() -> float:
    """fp32 matmul FLOP/s at the current thread count: best of 1024^2 and 2048^2."""
    t = best_seconds({"mm1024": matmul(1024), "mm2048": matmul(2048)}, rounds=3, min_time=0.5)
    return max(2 * 1024**3 / t["mm1024"], 2 * 2048**3 / t["mm2048"])


def width_table(threads: int) -> None:
    """Per-width training throughput: channels-last, and 3 seeds stacked, vs the NCHW reference."""
    torch.set_num_threads(threads)
    peak = peak_flops()
    print(f"\nsmall widths, {threads} thread(s), batch {BATCH}, modes {MODES}: "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s; samples/s per model (stacked: {SEEDS} seeds' total)")
    print(f"{'N':>3} {'width':>5} {'params':>8} {'NCHW /s':>8} {'ours /s':>8} {'speed-up':>8} "
          f"{'stacked':>8} {'speed-up':>8} {'GFLOP/s':>8} {'% peak':>7} {'3x needs':>8}")
    for n in GRIDS:
        for width in SMALL_WIDTHS + CONTEXT_WIDTHS:
            torch.manual_seed(0)
            ours = build_model("fno", modes=min(MODES, n // 2), width=width, N=n)
            fns = {"nchw": train_step(nchw_copy(ours), n), "ours": train_step(ours, n),
                   "stacked": stacked_step(width, n)}
            t = best_seconds(fns, rounds=3, min_time=0.4)
            rate = {k: BATCH / v for k, v in t.items()}
            rate["stacked"] *= SEEDS
            best = max(rate["ours"], rate["stacked"])
            train_flops = 3 * forward_flops(ours, torch.rand(1, 1, n, n))  # per sample
            achieved = train_flops * best
            needed = 3 * train_flops * rate["nchw"] / peak  # share of the peak a 3x speed-up takes
            mark = "" if width in SMALL_WIDTHS else "  (context)"
            print(f"{n:>3} {width:>5} {count_params(ours):>8,} {rate['nchw']:>8.0f} {rate['ours']:>8.0f} "
                  f"{rate['ours'] / rate['nchw']:>7.2f}x {rate['stacked']:>8.0f} "
                  f"{rate['stacked'] / rate['nchw']:>7.2f}x {achieved / 1e9:>8.1f} {achieved / peak:>6.1%} "
                  f"{needed:>7.0%}{mark}")


def _fresh_rate(variant: str, width: int, n: int) -> float:
    """Training samples/s of one variant, timed in the (fresh) process this runs in, one thread.

    ``stacked_kept`` is ``stacked`` after :func:`~flops_fit.allocator.keep_freed_memory`;
    every other variant runs with glibc's defaults, as study workers do.
    """
    torch.set_num_threads(1)
    if variant == "stacked_kept":
        keep_freed_memory()
    torch.manual_seed(0)
    model = build_model("fno", modes=min(MODES, n // 2), width=width, N=n)
    step = {"nchw": lambda: train_step(nchw_copy(model), n), "ours": lambda: train_step(model, n),
            "stacked": lambda: stacked_step(width, n), "stacked_kept": lambda: stacked_step(width, n)}[variant]()
    members = SEEDS if variant.startswith("stacked") else 1
    return members * BATCH / best_seconds({variant: step}, rounds=3, min_time=0.4)[variant]


def fresh_table(rounds: int = 2) -> None:
    """Per-width samples/s with every variant timed in a new process, as a study worker meets it.

    A sweep's workers are fresh processes that never run a large matmul, so glibc
    keeps serving the NCHW backward pass's large temporaries from fresh mmap pages.
    Each (variant, width) runs in its own spawned process, variants interleaved,
    ``rounds`` times; the best round counts.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    print(f"\nsmall widths, each timed in a fresh process (1 thread, batch {BATCH}, modes {MODES}, best of "
          f"{rounds}); samples/s per model (stacked: {SEEDS} seeds' total)")
    print(f"{'N':>3} {'width':>5} {'NCHW /s':>8} {'ours /s':>8} {'speed-up':>8} {'stacked':>8} {'speed-up':>8} "
          f"{'kept':>6}")
    ctx = mp.get_context("spawn")
    for n in GRIDS:
        for width in SMALL_WIDTHS:
            best = dict.fromkeys(("nchw", "ours", "stacked", "stacked_kept"), 0.0)
            for _ in range(rounds):
                for variant in best:
                    with cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                        best[variant] = max(best[variant], pool.submit(_fresh_rate, variant, width, n).result())
            print(f"{n:>3} {width:>5} {best['nchw']:>8.0f} {best['ours']:>8.0f} {best['ours'] / best['nchw']:>7.2f}x "
                  f"{best['stacked']:>8.0f} {best['stacked'] / best['nchw']:>7.2f}x "
                  f"{best['stacked_kept'] / best['stacked']:>5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler breakdown")
    parser.add_argument("--no-widths", action="store_true", help="skip the small-width table")
    parser.add_argument("--no-mfu", action="store_true", help="skip the width-32 MFU section")
    parser.add_argument("--fresh", action="store_true",
                        help="also time every small width in fresh processes (the study's workers' regime)")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    if not args.no_widths:
        for threads in sorted({1, default_threads}):
            width_table(threads)
        torch.set_num_threads(default_threads)
    if args.fresh:
        fresh_table()
    if args.no_mfu:
        return
    torch.manual_seed(0)
    ours = build_model("fno", modes=MODES, width=WIDTH, N=N)
    textbook = build_model("fno", modes=MODES, width=WIDTH, N=N)
    for block in textbook.blocks:
        block.spectral = TextbookSpectralConv2d(WIDTH, WIDTH, MODES, MODES)
    sample = torch.rand(2, 1, N, N)
    flops = {"ours": forward_flops(ours, sample), "textbook": forward_flops(textbook, sample)}
    print(f"fno w={WIDTH} m={MODES} N={N} batch {BATCH}: {count_params(ours):,} parameters (real numbers), "
          f"{flops['ours'] / 1e6:.1f} MFLOP forward per sample (textbook layer: {flops['textbook'] / 1e6:.1f})")

    results = {}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        fns = {"mm1024": matmul(1024), "mm2048": matmul(2048),
               "ours": train_step(ours), "textbook": train_step(textbook)}
        t = best_seconds(fns, rounds=3, min_time=0.5)
        peak = max(2 * 1024**3 / t["mm1024"], 2 * 2048**3 / t["mm2048"])
        results[threads] = (peak, {k: BATCH / t[k] for k in ("ours", "textbook")})
    best_peak = max(peak for peak, _ in results.values())
    for threads, (peak, rates) in results.items():
        print(f"\n{threads} thread(s): fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
        for name, rate in rates.items():
            achieved = 3 * flops[name] * rate
            print(f"  {name:9s} {rate:6.2f} samples/s  {achieved / 1e9:5.1f} GFLOP/s  "
                  f"MFU {achieved / peak:6.1%} of this peak, {achieved / best_peak:6.1%} of best peak")
        print(f"  speed ratio ours/textbook: {rates['ours'] / rates['textbook']:.2f}")
    print(f"\nbest peak over thread counts: {best_peak / 1e9:.1f} GFLOP/s")
    if args.profile:
        torch.set_num_threads(1)
        profile_step(train_step(ours))
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
