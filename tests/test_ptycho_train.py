"""Training loop of the FNO study: exact sample counts, schedules, losses, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flops_fit.ptycho import train as ptrain
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import simulate
from flops_fit.runner import DivergedError

TINY = GridLinesConfig(N=16, size=40, nlines=30, train_stride=4, test_stride=8, poisson=False)


@pytest.fixture(scope="module")
def data():
    return simulate(TINY)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("fno", modes=2, width=4, N=TINY.N)


@pytest.mark.parametrize("samples", [1, 7, 49, 100])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_fit_sees_exactly_the_requested_samples(data, samples: int, schedule: str) -> None:
    n = len(data.train.X)  # 49 patches
    history = ptrain.fit(_model(), data.train.X, data.train.Y, data.train.probe, samples=samples,
                         schedule=schedule, progress=False)
    assert history[-1]["samples_seen"] == samples
    assert len(history) == -(-samples // n)


def test_cosine_schedule_ends_annealed(data) -> None:
    model = _model()
    seen_lr = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen_lr.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        ptrain.fit(model, data.train.X, data.train.Y, data.train.probe, samples=160, lr=1e-2,
                   schedule="cosine", progress=False)
    # 49 patches an epoch in batches of 16, 16, 16, 1: three full epochs and 13 samples.
    assert len(seen_lr) == 3 * 4 + 1
    assert seen_lr[0] == pytest.approx(1e-2) and seen_lr[-1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(seen_lr, seen_lr[1:], strict=False))


def test_physics_loss_is_zero_for_the_true_object_without_noise(data) -> None:
    y = torch.from_numpy(np.stack([data.train.Y.real, data.train.Y.imag], axis=1))
    x = torch.from_numpy(data.train.X)
    probe = torch.from_numpy(data.train.probe)
    assert ptrain.physics_loss(y, y, x, probe).item() < 1e-5
    assert ptrain.physics_loss(0.5 * y, y, x, probe).item() > 0.1


def test_input_scale_gives_unit_rms(data) -> None:
    scaled = data.train.X * ptrain.input_scale(data.train.X)
    assert np.sqrt(np.mean(scaled.astype(np.float64) ** 2)) == pytest.approx(1.0)


def test_nan_loss_raises_diverged(data) -> None:
    x = data.train.X.copy()
    x[3] = np.nan
    with pytest.raises(DivergedError, match=r"diverged at epoch 1: loss is nan"):
        ptrain.fit(_model(), x, data.train.Y, data.train.probe, samples=49, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "mse"}, r"Got loss='mse', expected one of \['mae', 'physics'\]"),
        ({"schedule": "step"}, r"Got schedule='step', expected one of \['constant', 'cosine'\]"),
        ({"samples": 0}, r"samples must be >= 1, got 0"),
    ],
)
def test_fit_rejects_bad_settings(data, kwargs: dict, match: str) -> None:
    args = {"samples": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        ptrain.fit(_model(), data.train.X, data.train.Y, data.train.probe, progress=False, **args)


@pytest.mark.parametrize("x", [np.zeros((2, 1, 4, 4), np.float32), np.full((2, 1, 4, 4), np.inf, np.float32)])
def test_input_scale_rejects_degenerate_inputs(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"training inputs must have a finite, positive RMS"):
        ptrain.input_scale(x)


def test_predict_returns_complex_patches(data) -> None:
    pred = ptrain.predict(_model(), data.test.X, batch_size=3)
    assert pred.shape == data.test.Y.shape and np.iscomplexobj(pred)
