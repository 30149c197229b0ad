"""The CUDA fast path on a real GPU: precision, host syncs, copies, memory, pinning.

Marked ``cuda``: skipped without a GPU; ``benchmarks/gpu_check.py`` runs them
(``python -m pytest -m cuda -o addopts= tests/test_cuda.py``).
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _cuda_fns import cuda_worker_info, gpu_uuid

from flops_fit import executors
from flops_fit.device import DeviceSettings, fp32_matmuls
from flops_fit.executors import make_executor
from flops_fit.ptycho import experiment, study
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.layers import SpectralConv2d
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import simulate
from flops_fit.runner import run_sweep

pytestmark = pytest.mark.cuda

TINY = GridLinesConfig(N=16, size=40, nlines=30, train_stride=4, test_stride=8, poisson=False)  # 49 / 16 patches


@pytest.fixture(scope="module")
def data():
    return simulate(TINY)


@pytest.fixture
def fp32() -> DeviceSettings:
    return DeviceSettings.for_device("cuda").replace(precision="fp32")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("fno", modes=4, width=8, N=TINY.N)


def _rel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = (torch.as_tensor(v).detach().cpu().to(torch.complex128) for v in (a, b))
    return float((a - b).abs().norm() / b.abs().norm())


def _fit(model, data, *, device: str, settings: DeviceSettings | None = None, **kwargs):
    return ptrain.fit(model, data.train.X, data.train.Y, data.train.probe, device=device,
                      settings=settings, progress=False, **kwargs)


def test_tf32_flags_switch_cuda_matmuls() -> None:
    a, b = torch.randn(2, 512, 512, device="cuda").unbind()
    ref = a.double() @ b.double()
    with fp32_matmuls(tf32=True):
        tf32 = a @ b
    with fp32_matmuls(tf32=False):
        ieee = a @ b
    assert _rel(ieee, ref) < 1e-5 < 5e-5 < _rel(tf32, ref)  # TF32 keeps a 10-bit mantissa (~3e-4)


def test_the_spectral_product_is_ieee_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    layer = SpectralConv2d(16, 16, 6, 6)
    reference = copy.deepcopy(layer).double()  # on the CPU, float64
    layer = layer.cuda()
    x = torch.randn(8, 16, 32, 32, device="cuda")
    bf16 = DeviceSettings(precision="bf16")
    with bf16.matmuls("cuda"), bf16.autocast("cuda"):
        out = layer(x)
        conv = torch.nn.Conv2d(16, 16, 3).cuda()(x)
    assert conv.dtype == torch.bfloat16 and out.dtype == torch.float32  # autocast on, the layer out of it
    assert _rel(out, reference(x.cpu().double())) < 1e-5  # fp32 (bf16 would be ~1e-2, TF32 ~1e-4)


def test_training_waits_on_the_host_only_at_the_checks(data) -> None:
    model = _model().cuda()
    settings = DeviceSettings.for_device("cuda").replace(check_every=10)
    _fit(model, data, device="cuda", settings=settings, samples=4, batch_size=1)  # warm-up: handles, plans
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            # Batch 1: 49 steps in one epoch; checks after steps 10, 20, 30, 40 and 49.
            _fit(model, data, device="cuda", settings=settings, samples=49, batch_size=1)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert 5 <= len(syncs) <= 7, [str(w.message) for w in syncs]


def test_fp32_training_on_cuda_follows_the_cpu(data, fp32) -> None:
    cpu = _fit(_model(), data, device="cpu", samples=98, schedule="cosine")
    gpu = _fit(_model().cuda(), data, device="cuda", settings=fp32, samples=98, schedule="cosine")
    assert [h["samples_seen"] for h in gpu] == [h["samples_seen"] for h in cpu]
    np.testing.assert_allclose([h["train_loss"] for h in gpu], [h["train_loss"] for h in cpu], rtol=1e-3)


def test_stacked_seeds_on_cuda_train_as_alone(data, fp32) -> None:
    # Grouped convolutions (cuDNN) and the grouped spectral layer: each member as alone.
    alone = [_fit(_model().cuda(), data, device="cuda", settings=fp32, samples=98, seed=s) for s in (0, 1)]
    models = [_model().cuda(), _model().cuda()]
    together = ptrain.fit_members(models, data.train.X, data.train.Y, data.train.probe, seeds=[0, 1],
                                  samples=98, device="cuda", settings=fp32, progress=False)
    for ref, got in zip(alone, together, strict=True):
        np.testing.assert_allclose([h["train_loss"] for h in got], [h["train_loss"] for h in ref], rtol=1e-3)


def test_bf16_training_stays_close_to_fp32(data, fp32) -> None:
    ref = _fit(_model().cuda(), data, device="cuda", settings=fp32, samples=98)
    bf16 = _fit(_model().cuda(), data, device="cuda", samples=98)  # the CUDA default
    np.testing.assert_allclose([h["train_loss"] for h in bf16], [h["train_loss"] for h in ref], rtol=3e-2)


def test_predict_on_cuda_fills_every_output_and_matches_the_cpu(data, fp32) -> None:
    model = _model()
    cpu = ptrain.predict(model, data.test.X)
    model.cuda()
    gpu = ptrain.predict(model, data.test.X, device="cuda", settings=fp32.replace(eval_batch=5))
    assert np.isfinite(gpu).all() and _rel(gpu, cpu) < 1e-4  # pinned, non-blocking copies all landed
    bf16 = ptrain.predict(model, data.test.X, device="cuda")
    assert _rel(bf16, cpu) < 2e-2


def test_a_sweep_gives_the_gpu_memory_back_after_each_run(tmp_path: Path) -> None:
    configs = [
        {**c, "batch_size": 64}
        for c in study.study_grid(light=True, axes={"fno_width": [8, 12], "fno_modes": [8]}, epochs=1).configs()
    ]
    fn = functools.partial(experiment.train_and_evaluate, cache_dir=tmp_path / "cache", progress=False)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    df = run_sweep(configs, fn, tmp_path / "sweep", device="cuda", progress=False)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert (df["precision"] == "bf16").all() and (df["gpu_peak_memory_gb"] > 0).all()
    peak = torch.cuda.max_memory_reserved()
    assert peak > 100 * 2**20  # the runs did fill the cache
    cached_unused = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    assert cached_unused < peak / 4  # and gave it back (live tensors, e.g. cuFFT plans, may stay)


def test_each_pool_worker_sees_only_its_own_gpu() -> None:
    devices = list(range(min(torch.cuda.device_count(), 2)))
    # Keyed by the CUDA_VISIBLE_DEVICES entry a worker gets (this process may see only some GPUs).
    uuids = dict(zip(executors._visible_entries([str(i) for i in devices]), map(gpu_uuid, devices), strict=True))
    seen: dict[int, tuple[str | None, int, str]] = {}
    with make_executor(len(devices), devices=devices) as pool:
        deadline = time.monotonic() + 120
        while len(seen) < len(devices) and time.monotonic() < deadline:  # workers start lazily
            for pid, *info in (f.result() for f in [pool.submit(cuda_worker_info, 0.5) for _ in range(2 * len(devices))]):
                seen[pid] = tuple(info)
    assert sorted(visible for visible, _, _ in seen.values()) == sorted(uuids)
    for visible, count, uuid in seen.values():
        assert count == 1 and uuid == uuids[visible]  # CUDA_VISIBLE_DEVICES=i is physical GPU i
