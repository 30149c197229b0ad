"""Device settings: validation, per-device defaults, the TF32 flags and autocast, on the CPU."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from flops_fit import device as fdevice
from flops_fit.device import DeviceSettings, fp32_matmuls, host_to_device


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp16"}, r"Got precision='fp16', expected one of \['fp32', 'tf32', 'bf16'\]"),
        ({"check_every": 0}, r"Got check_every=0, expected an int >= 1"),
        ({"check_every": True}, r"Got check_every=True, expected an int >= 1"),
        ({"eval_batch": 2.5}, r"Got eval_batch=2.5, expected an int >= 1"),
        ({"compile_mode": "fast"}, r"Got compile_mode='fast', expected one of \[None, 'default', 'reduce-overhead'"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeviceSettings(**kwargs)


def test_replace_validates() -> None:
    with pytest.raises(ValueError, match=r"Got precision='int8'"):
        DeviceSettings().replace(precision="int8")


def test_cpu_defaults_are_the_reference_loop() -> None:
    assert DeviceSettings.for_device("cpu") == DeviceSettings(
        precision="fp32", check_every=1, eval_batch=64, compile_mode=None
    )


@pytest.mark.parametrize(("capability", "precision"), [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")])
def test_cuda_defaults_use_bf16_where_the_gpu_has_it(monkeypatch, capability, precision) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    settings = DeviceSettings.for_device("cuda:0")
    assert settings.precision == precision
    assert (settings.check_every, settings.eval_batch) == (fdevice.ACCELERATOR_CHECK_EVERY, fdevice.CUDA_EVAL_BATCH)
    assert settings.compile_mode is None  # unmeasured: off


def _flags() -> tuple[str, str]:
    return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision


@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9")
@pytest.mark.parametrize(("tf32", "mode"), [(True, "tf32"), (False, "ieee")])
def test_fp32_matmuls_sets_and_restores_the_flags(tf32: bool, mode: str) -> None:
    before = _flags()
    with fp32_matmuls(tf32=tf32):
        assert _flags() == (mode, mode)
    assert _flags() == before
    with pytest.raises(KeyError), fp32_matmuls(tf32=tf32):
        raise KeyError("restored on the way out too")
    assert _flags() == before
    assert torch.backends.cuda.matmul.allow_tf32 in (True, False)  # the legacy flag is still readable


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", False), ("tf32", True), ("bf16", False)])
def test_matmuls_set_tf32_for_cuda_only(monkeypatch, precision: str, tf32: bool) -> None:
    calls = []
    monkeypatch.setattr(fdevice, "fp32_matmuls", lambda **kw: calls.append(kw) or contextlib.nullcontext())
    settings = DeviceSettings(precision=precision)
    with settings.matmuls("cpu"), settings.matmuls("mps"):
        assert calls == []  # other devices keep their own settings
    with settings.matmuls("cuda"):
        assert calls == [{"tf32": tf32}]  # bf16 too: its fp32 spectral product must not drop to TF32


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("tf32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_only_for_bf16(precision: str, dtype: torch.dtype) -> None:
    conv = torch.nn.Conv2d(1, 2, 3)
    with DeviceSettings(precision=precision).autocast("cpu"):
        assert conv(torch.rand(1, 1, 5, 5)).dtype == dtype


def test_host_to_device_on_the_cpu_is_a_plain_copy() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]  # not contiguous
    t = host_to_device(x, "cpu")
    assert t.device.type == "cpu" and t.is_contiguous() and np.array_equal(t.numpy(), x)
