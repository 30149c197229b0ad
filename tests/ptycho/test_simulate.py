"""Grid-lines simulator: physics, determinism, stitching, cache, validation."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.draw import line

from flops_fit.ptycho import cache
from flops_fit.ptycho import config as ptycho_config
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.probe import ideal_disk_probe
from flops_fit.ptycho.simulate import (
    far_field_amplitude,
    make_object,
    scan_positions,
    simulate,
    stitch,
)

TINY = GridLinesConfig(N=16, size=48, nlines=20, train_stride=4, test_stride=8, nphotons=1e6)


@pytest.fixture(scope="module")
def tiny():
    return simulate(TINY)


@pytest.fixture(scope="module")
def tiny_noiseless():
    return simulate(TINY.replace(poisson=False))


# --- physics ---------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "rtol"), [(np.complex64, 1e-5), (np.complex128, 1e-12)])
def test_far_field_conserves_energy(dtype, rtol):
    rng = np.random.default_rng(0)
    psi = (rng.standard_normal((5, 16, 16)) + 1j * rng.standard_normal((5, 16, 16))).astype(dtype)
    amp = far_field_amplitude(psi)
    assert amp.dtype == np.abs(psi).dtype
    np.testing.assert_allclose(
        (amp.astype(np.float64) ** 2).sum(axis=(-2, -1)),
        (np.abs(psi.astype(np.complex128)) ** 2).sum(axis=(-2, -1)),
        rtol=rtol,
    )


@pytest.mark.parametrize("N", [7, 8])
def test_far_field_is_centred_fft(N):
    # independent reference: numpy's FFT, divided by N, zero frequency moved to N // 2
    rng = np.random.default_rng(1)
    psi = rng.standard_normal((2, N, N)) + 1j * rng.standard_normal((2, N, N))
    expected = np.abs(np.fft.fftshift(np.fft.fft2(psi), axes=(-2, -1)) / N)
    np.testing.assert_allclose(far_field_amplitude(psi), expected, rtol=1e-12, atol=1e-12)


def test_noiseless_patterns_carry_the_exit_wave_energy(tiny_noiseless):
    split = tiny_noiseless.train
    s = split.intensity_scale
    counts = ((split.X[:, 0].astype(np.float64) * s) ** 2).sum(axis=(1, 2))
    exit_wave = (np.abs(s * split.Y.astype(np.complex128) * split.probe) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(counts, exit_wave, rtol=1e-5)
    # and their mean is nphotons exactly, by the choice of the intensity scale
    assert counts.mean() == pytest.approx(TINY.nphotons, rel=1e-5)


def test_mean_counts_match_nphotons_within_poisson_error(tiny):
    split = tiny.train
    counts = (split.X[:, 0].astype(np.float64) * split.intensity_scale) ** 2
    np.testing.assert_allclose(counts, np.rint(counts), atol=0.05)  # whole photons
    totals = counts.sum(axis=(1, 2))
    # each total is Poisson with mean sum(lambda); their mean over n patterns is nphotons
    assert abs(totals.mean() - TINY.nphotons) < 5 * math.sqrt(TINY.nphotons / split.n)


def test_counts_have_poisson_statistics(tiny, tiny_noiseless):
    # same seed, noise on/off: the objects are the same, only the draw differs
    np.testing.assert_array_equal(tiny.train.Y, tiny_noiseless.train.Y)
    s = tiny.train.intensity_scale
    lam = (tiny_noiseless.train.X.astype(np.float64) * s) ** 2
    counts = (tiny.train.X.astype(np.float64) * s) ** 2
    bright = lam > 50  # normal approximation of (counts - lambda) / sqrt(lambda) holds
    z = (counts[bright] - lam[bright]) / np.sqrt(lam[bright])
    assert bright.sum() > 1000
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=0.05)


def test_ideal_disk_probe_diameter_at_n64():
    probe = ideal_disk_probe(64)
    amp = np.abs(probe)
    assert probe.dtype == np.complex64 and np.all(np.angle(probe[amp > 0]) == 0)
    # half-maximum disk vs the threshold's analytic radius sigma sqrt(2 ln 2), sigma = N/(0.7 pi^2)
    diameter = 2 * math.sqrt((amp > amp.max() / 2).sum() / math.pi)
    analytic = 2 * 64 / (0.7 * math.pi**2) * math.sqrt(2 * math.log(2))
    assert analytic == pytest.approx(21.8, abs=0.1)
    assert diameter == pytest.approx(22, abs=1)
    assert (amp[31] > amp.max() / 2).sum() == 22  # centre row
    # normalisation: mean |P| over r < N/4 is 1/10
    c = np.arange(64) - 31.5
    inside = np.hypot(c[:, None], c[None, :]) < 16
    assert amp[inside].mean() == pytest.approx(0.1, rel=1e-6)


def test_make_object_matches_full_canvas_blur():
    # independent reference: blur the whole 2 size canvas, then crop (the facts' recipe)
    size, nlines = 40, 15
    canvas = np.zeros((2 * size, 2 * size))
    for r0, c0, r1, c1 in np.random.default_rng(3).integers(0, 2 * size, size=(nlines, 4)):
        canvas[line(r0, c0, r1, c1)] = 1
    full = (
        gaussian_filter(canvas, 1)
        + 2 * gaussian_filter(canvas, 5)
        + 5 * gaussian_filter(canvas, 10)
    )
    amp = full[size // 2 : size // 2 + size, size // 2 : size // 2 + size]
    phi = np.pi * np.tanh((amp - amp.max() / 2) / (3 * amp.mean()))
    obj = make_object(size, nlines, np.random.default_rng(3))
    np.testing.assert_allclose(obj, amp * np.exp(1j * phi), rtol=1e-12, atol=1e-14)
    flat = make_object(size, nlines, np.random.default_rng(3), set_phi=False)
    np.testing.assert_array_equal(flat.imag, 0)


def test_reference_object_statistics():
    obj = make_object(392, 400, np.random.default_rng(0))
    amp, phi = np.abs(obj), np.angle(obj)
    assert obj.shape == (392, 392)
    assert 0.3 < amp.min() < 0.8 and 4.0 < amp.max() < 6.0 and 2.3 < amp.mean() < 3.0
    assert -1.0 < phi.min() < -0.5 and 0.7 < phi.max() < 1.1


def test_scan_counts_of_the_reference_and_light_preset():
    assert len(scan_positions(392, 64, 4)) == 83**2 == 6889
    assert len(scan_positions(392, 64, 10)) == 33**2 == 1089
    light = GridLinesConfig.light()
    assert light.N == 32
    assert light.n_positions(light.train_stride) ** 2 == 2704
    assert light.n_positions(light.test_stride) ** 2 == 1369
    assert (light.n_patches("train"), light.n_patches("test")) == (2704, 1369)
    assert GridLinesConfig(n_train_objects=3).n_patches("train") == 3 * 6889
    with pytest.raises(ValueError, match=r"Got split='val', expected 'train' or 'test'"):
        light.n_patches("val")


def test_split_shapes_and_dtypes(tiny):
    m_train, m_test = 9, 5
    for split, m in ((tiny.train, m_train), (tiny.test, m_test)):
        n = m * m
        assert split.X.shape == (n, 1, 16, 16) and split.X.dtype == np.float32
        assert split.Y.shape == (n, 16, 16) and split.Y.dtype == np.complex64
        assert split.positions.shape == (n, 2) and split.object_index.shape == (n,)
        assert split.objects.shape == (1, 48, 48) and split.objects.dtype == np.complex64
        assert split.probe.shape == (16, 16) and split.probe.dtype == np.complex64
        assert np.all(split.X >= 0)
    # patches are the object windows at the positions
    i = 7
    r, c = tiny.train.positions[i]
    np.testing.assert_array_equal(
        tiny.train.Y[i] * np.complex64(tiny.train.patch_norm),
        tiny.train.objects[0, r : r + 16, c : c + 16],
    )


def test_test_split_reuses_train_scale_and_norm(tiny):
    assert tiny.test.intensity_scale == tiny.train.intensity_scale
    assert tiny.test.patch_norm == tiny.train.patch_norm
    peaks = [np.abs(tiny.train.Y[i]).max() for i in range(tiny.train.n)]
    assert np.mean(peaks) == pytest.approx(1.0, rel=1e-5)  # Y divided by mean patch peak


def test_same_seed_same_arrays(tiny):
    again = simulate(TINY)
    for name in ("train", "test"):
        for field in ("X", "Y", "objects", "positions", "probe"):
            np.testing.assert_array_equal(
                getattr(getattr(again, name), field), getattr(getattr(tiny, name), field)
            )


def test_train_and_test_objects_differ(tiny):
    assert not np.allclose(tiny.train.objects[0], tiny.test.objects[0])
    other = simulate(TINY.replace(train_seed=7))
    assert not np.allclose(other.train.objects, tiny.train.objects)
    # same test objects; only their float32 round trip through the train patch_norm differs
    np.testing.assert_allclose(other.test.objects, tiny.test.objects, rtol=1e-6)


@pytest.mark.parametrize("split_name", ["train", "test"])
def test_stitching_ground_truth_patches_is_exact(tiny, split_name):
    split = getattr(tiny, split_name)
    recon, truth = stitch(split.Y, split)
    m = 9 if split_name == "train" else 5
    assert recon.shape == truth.shape == (m * split.stride, m * split.stride)
    np.testing.assert_array_equal(recon, truth)
    lo = (16 - split.stride) // 2
    np.testing.assert_array_equal(
        truth, split.objects[0, lo : lo + m * split.stride, lo : lo + m * split.stride]
    )


def test_stitch_tiles_row_major_and_rescales(tiny):
    split = tiny.test  # 5 x 5 patches, stride 8
    pred = np.broadcast_to(np.arange(25, dtype=np.complex64)[:, None, None], split.Y.shape)
    recon, _ = stitch(torch.from_numpy(pred.copy()), split)
    blocks = recon[::8, ::8] / np.complex64(split.patch_norm)
    np.testing.assert_allclose(blocks, np.arange(25).reshape(5, 5), rtol=1e-6)


def test_stitch_several_objects():
    data = simulate(TINY.replace(n_test_objects=2))
    split = data.test
    assert split.objects.shape[0] == 2 and split.n == 50
    np.testing.assert_array_equal(split.object_index, np.repeat([0, 1], 25))
    for k in range(2):
        recon, truth = stitch(split.Y, split, object_index=k)
        np.testing.assert_array_equal(recon, truth)
    assert not np.allclose(stitch(split.Y, split, object_index=1)[1], split.objects[0, 4:44, 4:44])


def test_user_probe_file(tmp_path):
    rng = np.random.default_rng(0)
    raw = (rng.random((16, 16)) + 0.1) * np.exp(1j * rng.random((16, 16)))
    path = tmp_path / "probe.npz"
    np.savez(path, probe=raw.astype(np.complex64), other=np.zeros(3))
    cfg = TINY.replace(probe=str(path))
    data = simulate(cfg)
    # normalised to mean |P| = 1/10 over r < N/4, phase kept
    c = np.arange(16) - 7.5
    inside = np.hypot(c[:, None], c[None, :]) < 4
    np.testing.assert_allclose(
        data.train.probe, raw / (10 * np.abs(raw.astype(np.complex64))[inside].mean()), rtol=1e-5
    )
    single = tmp_path / "single.npz"
    np.savez(single, raw)  # one unnamed array
    assert GridLinesConfig.from_dict({**TINY.to_dict(), "probe": single}).probe == str(single)


# --- config and cache ------------------------------------------------------------------


def test_config_round_trip_and_key():
    cfg = GridLinesConfig.from_dict(TINY.to_dict())
    assert cfg == TINY and cfg.cache_key() == TINY.cache_key()
    changes = [("nlines", 21), ("nphotons", 2e6), ("poisson", False), ("test_seed", 9)]
    keys = {TINY.cache_key()} | {TINY.replace(**{f: v}).cache_key() for f, v in changes}
    assert len(keys) == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.N = 32


def test_cache_key_has_format_version_and_probe_content(tmp_path, monkeypatch):
    key = TINY.cache_key()
    monkeypatch.setattr(ptycho_config, "FORMAT_VERSION", ptycho_config.FORMAT_VERSION + 1)
    assert TINY.cache_key() != key
    monkeypatch.undo()
    path = tmp_path / "p.npz"
    np.savez(path, probe=np.ones((16, 16), np.complex64))
    first = TINY.replace(probe=str(path)).cache_key()
    np.savez(path, probe=np.full((16, 16), 1 + 1j, np.complex64))
    assert TINY.replace(probe=str(path)).cache_key() != first


def test_load_or_simulate_caches(tmp_path, monkeypatch):
    cfg = TINY.replace(poisson=False)
    first = load_or_simulate(cfg, tmp_path / "cache")
    files = os.listdir(tmp_path / "cache")
    assert files == [f"gridlines_{cfg.cache_key()}.npz"]  # no temp file left
    monkeypatch.setattr(cache, "simulate", lambda cfg: pytest.fail("cache not used"))
    second = load_or_simulate(cfg, tmp_path / "cache")
    for name in ("train", "test"):
        a, b = getattr(first, name), getattr(second, name)
        for field in ("X", "Y", "positions", "object_index", "objects", "probe"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.intensity_scale, a.patch_norm, a.stride) == (
            b.intensity_scale,
            b.patch_norm,
            b.stride,
        )
    assert second.config == cfg


def test_corrupt_cache_is_reported_and_regenerated(tmp_path):
    cfg = TINY.replace(poisson=False)
    path = tmp_path / f"gridlines_{cfg.cache_key()}.npz"
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match=r"Cached dataset .* is unusable .*regenerating"):
        data = load_or_simulate(cfg, tmp_path)
    np.testing.assert_array_equal(data.train.X, simulate(cfg).train.X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_or_simulate(cfg, tmp_path)  # the regenerated file is valid


def test_mismatched_cache_is_reported_and_regenerated(tmp_path):
    cfg = TINY.replace(poisson=False)
    other = cfg.replace(nlines=5)
    load_or_simulate(other, tmp_path)
    (tmp_path / f"gridlines_{other.cache_key()}.npz").rename(
        tmp_path / f"gridlines_{cfg.cache_key()}.npz"
    )
    with pytest.warns(UserWarning, match="written for another config"):
        data = load_or_simulate(cfg, tmp_path)
    np.testing.assert_array_equal(data.train.Y, simulate(cfg).train.Y)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"N": 64}, ValueError, r"Got N=64 and size=48, expected N <= size"),
        ({"train_stride": 0}, ValueError, r"Got train_stride=0, expected an int >= 1"),
        ({"test_stride": -2}, ValueError, r"Got test_stride=-2, expected an int >= 1"),
        ({"train_stride": 17}, ValueError, r"Got train_stride=17 and N=16, expected train_stride <= N"),
        ({"nphotons": 0}, ValueError, r"Got nphotons=0, expected a finite number in \(0, 1e18\]"),
        ({"nphotons": -1e9}, ValueError, r"Got nphotons=-1000000000.0, expected a finite number"),
        ({"nphotons": float("nan")}, ValueError, r"Got nphotons=nan"),
        ({"nphotons": "1e9"}, TypeError, r"Got nphotons='1e9', expected a finite number"),
        ({"N": 16.0}, TypeError, r"Got N=16.0, expected an int >= 8"),
        ({"nlines": True}, TypeError, r"Got nlines=True, expected an int >= 1"),
        ({"nlines": 0}, ValueError, r"Got nlines=0, expected an int >= 1"),
        ({"n_train_objects": 0}, ValueError, r"Got n_train_objects=0, expected an int >= 1"),
        ({"train_seed": -1}, ValueError, r"Got train_seed=-1, expected an int >= 0"),
        ({"test_seed": 1}, ValueError, r"Got train_seed = test_seed = 1, expected different seeds"),
        ({"set_phi": 1}, TypeError, r"Got set_phi=1 \(int\), expected a bool"),
        ({"poisson": "yes"}, TypeError, r"Got poisson='yes' \(str\), expected a bool"),
        (
            {"probe": 3},
            TypeError,
            r"Got probe=3, expected one of \['curved_disk', 'ideal_disk'\] or a path to an .npz",
        ),
        (
            {"probe_convergence": "wide"},
            TypeError,
            r"Got probe_convergence='wide', expected a number in \[0, 1\]",
        ),
        ({"probe_convergence": 1.5}, ValueError, r"Got probe_convergence=1.5, expected a number"),
        ({"probe_convergence": float("nan")}, ValueError, r"Got probe_convergence=nan"),
        (
            {"probe": "ideal_disk", "probe_convergence": 0.3},
            ValueError,
            r"Got probe_convergence=0.3 with probe='ideal_disk', expected the default 0.55",
        ),
        ({"probe": "no/such/probe.npz"}, ValueError, r"probe file not found: 'no/such/probe.npz'"),
        ({"bogus": 1}, ValueError, r"Unknown GridLinesConfig keys \['bogus'\]; allowed keys are"),
    ],
)
def test_config_validation(changes, error, match):
    with pytest.raises(error, match=match):
        TINY.replace(**changes)
    with pytest.raises(error, match=match):
        GridLinesConfig.from_dict({**TINY.to_dict(), **changes})


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"probe": np.ones((16, 16))}, r"Got a probe array of dtype float64 in '.*', expected a complex one"),
        (
            {"probe": np.ones((8, 16), np.complex64)},
            r"Got a probe array of shape \(8, 16\) in .*, expected \(N, N\) = \(16, 16\)",
        ),
        (
            {"a": np.ones((16, 16), np.complex64), "b": np.ones((16, 16), np.complex64)},
            r"with arrays \['a', 'b'\], expected one array or one named 'probe'",
        ),
        ({"probe": np.full((16, 16), np.nan, np.complex64)}, r"has non-finite values"),
        ({"probe": np.zeros((16, 16), np.complex64)}, r"probe is zero everywhere within r < N/4"),
    ],
)
def test_bad_probe_files(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        TINY.replace(probe=str(path))


def test_stitch_validation(tiny):
    split = tiny.test
    with pytest.raises(
        ValueError,
        match=r"Got pred_patches of shape \(24, 16, 16\), expected the split's patch shape "
        r"\(25, 16, 16\)",
    ):
        stitch(split.Y[:24], split)
    with pytest.raises(ValueError, match=r"Got pred_patches of dtype float32, expected complex"):
        stitch(split.Y.real, split)
    with pytest.raises(ValueError, match=r"Got object_index=1, expected an int in \[0, 1\)"):
        stitch(split.Y, split, object_index=1)


def test_cfg_type_validation(tmp_path):
    with pytest.raises(TypeError, match=r"Got cfg of type dict, expected a GridLinesConfig"):
        load_or_simulate(TINY.to_dict(), tmp_path)
    with pytest.raises(TypeError, match=r"Got cfg of type dict, expected a GridLinesConfig"):
        simulate(TINY.to_dict())


def test_object_without_lines_in_view():
    # one short line in a canvas corner never reaches the blurred crop
    class CornerRng:
        def integers(self, low, high, size):
            return np.zeros(size, dtype=np.int64)

    with pytest.raises(
        ValueError,
        match=r"no line reaches the 200 x 200 crop; use more than "
        r"nlines=1",
    ):
        make_object(200, 1, CornerRng())
