"""Inference timing: the median per sample, in eval and inference mode, the mode restored."""

from __future__ import annotations

import time

import pytest
import torch

from flops_fit.timing import time_inference


class _Sleeper(torch.nn.Module):
    """Sleeps a fixed time per call and records the mode it was called in."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.calls = seconds, []
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        time.sleep(self.seconds)
        return x * self.scale


@pytest.mark.parametrize("train_mode", [True, False])
def test_time_inference_is_the_median_per_sample_in_inference_mode(train_mode):
    model = _Sleeper(0.01).train(train_mode)
    per_sample = time_inference(model, torch.zeros(4, 3), warmup=2, repeats=5)
    assert 0.01 / 4 <= per_sample < 0.03 / 4  # sleep sets a floor; the median shrugs off a slow call
    assert model.calls == [(False, True)] * 7  # 2 warm-up + 5 timed, eval + inference mode
    assert model.training is train_mode


def test_time_inference_restores_the_mode_when_the_model_fails():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        time_inference(model, torch.zeros(2, 3))
    assert model.training


@pytest.mark.parametrize(
    ("model", "batch", "kw", "error", "match"),
    [
        ("m", torch.zeros(2), {}, TypeError, r"Got model of type str, expected a torch.nn.Module"),
        (None, torch.zeros(0, 3), {}, ValueError, r"Got batch \(0, 3\), expected a tensor with a non-empty leading batch"),
        (None, torch.zeros(()), {}, ValueError, r"Got batch \(\), expected a tensor"),
        (None, [1.0], {}, ValueError, r"Got batch list, expected a tensor"),
        (None, torch.zeros(2), {"warmup": -1}, ValueError, r"Got warmup=-1, expected an int >= 0"),
        (None, torch.zeros(2), {"repeats": 0}, ValueError, r"Got repeats=0, expected an int >= 1"),
        (None, torch.zeros(2), {"repeats": 2.0}, ValueError, r"Got repeats=2.0, expected an int >= 1"),
    ],
)
def test_time_inference_validates(model, batch, kw, error, match):
    with pytest.raises(error, match=match):
        time_inference(torch.nn.Identity() if model is None else model, batch, **kw)
