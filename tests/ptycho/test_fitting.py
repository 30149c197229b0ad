"""Training loop of the FNO study: exact sample counts, schedules, losses, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flops_fit.device import DeviceSettings
from flops_fit.errors import DivergedError
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.layers import SpectralConv2d
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import simulate

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
        ({"samples": 0}, r"Got samples=0, expected an int >= 1"),
    ],
)
def test_fit_rejects_bad_settings(data, kwargs: dict, match: str) -> None:
    args = {"samples": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        ptrain.fit(_model(), data.train.X, data.train.Y, data.train.probe, progress=False, **args)


@pytest.mark.parametrize("x", [np.zeros((2, 1, 4, 4), np.float32), np.full((2, 1, 4, 4), np.inf, np.float32)])
def test_input_scale_rejects_degenerate_inputs(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"Got training inputs of RMS .*, expected a finite number > 0"):
        ptrain.input_scale(x)


def test_predict_returns_complex_patches(data) -> None:
    pred = ptrain.predict(_model(), data.test.X, batch_size=3)
    assert pred.shape == data.test.Y.shape and np.iscomplexobj(pred)


# ---------------------------------------------------------------- the device fast path, exercised on the CPU


def _fit(data, samples: int = 98, **kwargs) -> tuple[list[dict], torch.nn.Module]:
    model = _model()
    history = ptrain.fit(model, data.train.X, data.train.Y, data.train.probe, samples=samples,
                         progress=False, **kwargs)
    return history, model


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("every", [2, 3, 50])
def test_checking_less_often_changes_no_result(data, every: int) -> None:
    ref_history, ref = _fit(data, schedule="cosine")
    history, model = _fit(data, schedule="cosine", settings=DeviceSettings(check_every=every))
    assert history == ref_history  # bit for bit: the loss sum is float64 on the device either way
    assert all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(ref), strict=True))


@pytest.mark.parametrize(("every", "reads"), [(1, 8), (3, 4), (50, 2)])
def test_the_host_reads_the_loss_only_at_the_checks(data, monkeypatch, every: int, reads: int) -> None:
    # 98 samples: 2 epochs of 4 batches. A check every `every` steps and at each epoch's end.
    seen = []

    def spy(read):
        def reader(self):
            if self.dtype == torch.float64:  # the loss sums (Adam reads its float32 step counters too)
                seen.append(1)
            return read(self)
        return reader

    monkeypatch.setattr(torch.Tensor, "item", spy(torch.Tensor.item))
    monkeypatch.setattr(torch.Tensor, "tolist", spy(torch.Tensor.tolist))
    _fit(data, settings=DeviceSettings(check_every=every))
    assert len(seen) == reads


def test_divergence_found_at_a_later_check_names_the_step(data) -> None:
    x = data.train.X.copy()
    x[3] = np.nan  # poisons the weights: every later loss is NaN too
    with pytest.raises(
        DivergedError, match=r"diverged at epoch 1: loss is nan \(found at step [34] of the epoch, checked every 3 steps\)"
    ):
        ptrain.fit(_model(), x, data.train.Y, data.train.probe, samples=49, progress=False,
                   settings=DeviceSettings(check_every=3))


def test_bf16_autocast_trains_close_to_fp32(data) -> None:
    ref_history, ref = _fit(data)
    history, model = _fit(data, settings=DeviceSettings(precision="bf16"))
    losses = np.array([h["train_loss"] for h in history])
    ref_losses = np.array([h["train_loss"] for h in ref_history])
    assert not np.array_equal(losses, ref_losses)  # autocast did run
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-2)
    bf16 = ptrain.predict(model, data.test.X, settings=DeviceSettings(precision="bf16"))
    fp32 = ptrain.predict(model, data.test.X)
    assert bf16.dtype == fp32.dtype == np.complex64
    assert np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32) < 2e-2


def test_the_spectral_product_stays_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    layer = SpectralConv2d(4, 4, 3, 3)
    x = torch.randn(2, 4, 12, 12)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        from_bf16 = layer(x.bfloat16())
    assert out.dtype == from_bf16.dtype == torch.float32
    assert torch.equal(out, ref)  # not one bit of bf16 in the product
    assert torch.equal(from_bf16, layer(x.bfloat16().float()))  # a bf16 input is upcast, then fp32


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compile_mode_compiles_the_training_forward(data, monkeypatch, mode: str) -> None:
    compiled, steps = [], []
    monkeypatch.setattr(torch, "compile", lambda model, mode: compiled.append(mode) or model)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    history, _ = _fit(data, settings=DeviceSettings(compile_mode=mode))
    assert compiled == [mode]
    assert len(steps) == (8 if mode == "reduce-overhead" else 0)  # one graph step per training step
    assert history == _fit(data)[0]


def test_predict_runs_in_eval_batches_and_fills_every_output(data) -> None:
    model, sizes = _model(), []
    model.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    whole = ptrain.predict(model, data.test.X, batch_size=len(data.test.X))  # 16 test patterns
    batched = ptrain.predict(model, data.test.X, settings=DeviceSettings(eval_batch=6))
    assert sizes == [16, 6, 6, 4]
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)  # convolutions round per batch size


def test_scaled_lr_is_the_square_root_rule() -> None:
    assert ptrain.scaled_lr(16) == pytest.approx(1e-3)
    assert ptrain.scaled_lr(64) == pytest.approx(2e-3)
    assert ptrain.scaled_lr(32, base_batch=8, base_lr=1e-2) == pytest.approx(2e-2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, r"Got batch_size=0, expected an int >= 1"),
        ((16.0,), {}, r"Got batch_size=16.0, expected an int >= 1"),
        ((16,), {"base_batch": -1}, r"Got base_batch=-1, expected an int >= 1"),
        ((16,), {"base_lr": float("nan")}, r"Got base_lr=nan, expected a finite number > 0"),
    ],
)
def test_scaled_lr_rejects_bad_input(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ptrain.scaled_lr(*args, **kwargs)
