"""One experiment of the FNO study: simulate (or load) the data, train, stitch, measure.

:func:`train_and_evaluate` is the function :func:`flops_fit.runner.run_sweep`
calls once per experiment config; :func:`evaluate` and
:func:`mean_patch_baseline` score a model, or the learn-nothing floor, on the
stitched test object. The sweep itself (grids, IsoFLOP plans) is in
:mod:`flops_fit.ptycho.study`.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flops_fit.device import DeviceSettings, synchronize
from flops_fit.flops import count_params, forward_flops, train_flops
from flops_fit.metrics import complex_metrics
from flops_fit.ptycho import fitting as ptrain
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import GridLinesData, stitch
from flops_fit.timing import time_inference

__all__ = [
    "DATA_PRESETS",
    "MODEL_ARGS",
    "StudyData",
    "build_study_model",
    "data_config",
    "data_spec",
    "evaluate",
    "load_data",
    "mean_patch_baseline",
    "score",
    "study_data",
    "study_keys",
    "train_and_evaluate",
]

#: Simulation presets by name; the light ones are N = 32 with far fewer patches.
DATA_PRESETS = {
    "light": GridLinesConfig.light,
    "light_isoflop": GridLinesConfig.light_isoflop,
    "full": GridLinesConfig,
}


def data_spec(light: bool, data: GridLinesConfig | None = None, *, isoflop: bool = False) -> str:
    """The ``data`` entry of an experiment config: a preset name, or the
    fields of a custom :class:`GridLinesConfig` as sorted JSON (flat, so the
    experiment id changes whenever the data do). ``isoflop`` picks the light
    IsoFLOP preset (more train objects) when ``light`` and no ``data``."""
    if data is None:
        return ("light_isoflop" if isoflop else "light") if light else "full"
    return json.dumps(data.to_dict(), sort_keys=True)


def data_config(spec: str) -> GridLinesConfig:
    """Inverse of :func:`data_spec`."""
    if spec in DATA_PRESETS:
        return DATA_PRESETS[spec]()
    try:
        fields = json.loads(spec)
    except json.JSONDecodeError:
        raise ValueError(
            f"Got data={spec!r}, expected one of {sorted(DATA_PRESETS)} "
            "or a JSON object of GridLinesConfig fields"
        ) from None
    return GridLinesConfig.from_dict(fields)


@dataclass(frozen=True)
class StudyData:
    """A study's data, resolved once per plan: the config entry, the config, its content key."""

    #: The ``data`` entry of every experiment config (:func:`data_spec`).
    spec: str
    #: What the runs simulate or load (:func:`data_config` of ``spec``).
    config: GridLinesConfig

    @functools.cached_property
    def key(self) -> str:
        """The ``data_key`` entry: ``config.cache_key()`` (reads a probe file, so once)."""
        return self.config.cache_key()


def study_data(light: bool, data: GridLinesConfig | None = None, *, isoflop: bool = False) -> StudyData:
    """The data a study plans with, for :func:`data_spec`'s arguments."""
    spec = data_spec(light, data, isoflop=isoflop)
    return StudyData(spec, data_config(spec))


@functools.lru_cache(maxsize=2)
def load_data(spec: str, cache_dir: str) -> GridLinesData:
    """The dataset behind a ``data`` entry, simulated once into ``cache_dir`` and then read.

    Kept in memory for the process: a sequential sweep calls
    :func:`train_and_evaluate` dozens of times on the same data.
    """
    return load_or_simulate(data_config(spec), cache_dir)


#: Study config key -> argument of :func:`~flops_fit.ptycho.models.build_model`. The
#: keys are the results' column names and enter the experiment ids; the model names
#: the same sizes its own way.
MODEL_ARGS = {"fno_input_transform": "input_transform", "fno_modes": "modes", "fno_width": "width"}


def build_study_model(config: dict[str, Any], *, N: int) -> torch.nn.Module:
    """The generator a study config describes, for ``N x N`` patches (no input scaling)."""
    return build_model(config["architecture"], **{arg: config[key] for key, arg in MODEL_ARGS.items()}, N=N)


def study_keys(model_args: dict[str, Any]) -> dict[str, Any]:
    """The study config entries for :func:`build_model` arguments: :data:`MODEL_ARGS` backwards."""
    return {key: model_args[arg] for key, arg in MODEL_ARGS.items()}


def score(pred: np.ndarray, data: GridLinesData, *, loss: str = "mae") -> dict[str, float]:
    """Score predicted test patches ``(n, N, N)`` (complex) on the stitched test object.

    Returns the :func:`~flops_fit.metrics.complex_metrics` of the stitched
    reconstruction against the ground-truth crop, plus ``final_test_loss``
    (the training objective on the test patches).
    """
    return _scores(pred, stitch(pred, data.test), data, loss)


def _scores(pred: np.ndarray, stitched: tuple[np.ndarray, np.ndarray], data: GridLinesData,
            loss: str) -> dict[str, float]:
    """:func:`score` of ``pred`` whose ``(reconstruction, truth)`` is ``stitched`` already."""
    test = data.test
    out = complex_metrics(*stitched)
    with torch.inference_mode():
        out["final_test_loss"] = float(
            ptrain.LOSSES[loss](
                ptrain.as_channels(pred),
                ptrain.as_channels(test.Y),
                torch.from_numpy(test.X),
                torch.from_numpy(test.probe),
            )
        )
    return out


def evaluate(
    model: torch.nn.Module,
    data: GridLinesData,
    *,
    device: str = "cpu",
    loss: str = "mae",
    settings: DeviceSettings | None = None,
) -> dict[str, float]:
    """Reconstruct the test object with ``model`` and :func:`score` it.

    ``settings`` (default: those of ``device``) sets the inference precision.
    """
    return score(ptrain.predict(model, data.test.X, device=device, settings=settings), data, loss=loss)


def mean_patch_baseline(data: GridLinesData) -> dict[str, float]:
    """Scores of predicting the mean training patch for every test patch.

    What a network that learned only the average object would score: the
    floor every trained model's metrics should be read against. Phase SSIM
    is high here (about 0.85 on the light data) because phase mapped to
    [0, 1] with data range 1 leaves little contrast for SSIM to penalise.
    """
    mean = data.train.Y.mean(axis=0)  # (N, N) complex
    return score(np.broadcast_to(mean, data.test.Y.shape), data)


def _save_preview(path: Path, recon: np.ndarray, truth: np.ndarray, title: str) -> None:
    """A small PNG: amplitude and phase of the reconstruction beside the truth."""
    from matplotlib.figure import Figure  # no pyplot state: safe in worker threads

    fig = Figure(figsize=(6, 5.6), dpi=60)
    axes = fig.subplots(2, 2)
    panels = [
        (np.abs(truth), "true amplitude"),
        (np.abs(recon), "reconstructed amplitude"),
        (np.angle(truth), "true phase (rad)"),
        (np.angle(recon), "reconstructed phase (rad)"),
    ]
    for ax, (img, label) in zip(axes.flat, panels, strict=True):
        im = ax.imshow(img, cmap="gray")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)


def train_and_evaluate(
    config: dict[str, Any],
    run_dir: Path,
    *,
    device: str = "cpu",
    cache_dir: str | Path = "data_cache",
    progress: bool = True,
) -> dict[str, Any]:
    """Train one study experiment and measure it (the function the runner calls).

    Parameters
    ----------
    config : dict
        A study config: ``architecture, fno_input_transform, fno_modes,
        fno_width, data, seed, batch_size, lr, loss, schedule`` and either ``epochs``
        or ``train_samples`` (IsoFLOP mode); optionally ``data_key``, the
        :meth:`~flops_fit.ptycho.config.GridLinesConfig.cache_key` the data must
        have, and ``precision`` (``fp32``, ``tf32``, ``bf16``), else the device's
        default (:meth:`~flops_fit.device.DeviceSettings.for_device`).
    run_dir : pathlib.Path
        Folder for this run's ``metrics.json``, ``history.json`` and
        ``reconstruction.png``.
    device : str
        Torch device string.
    cache_dir : str or pathlib.Path
        Where simulated datasets are cached.

    Returns
    -------
    dict
        ``model_params`` (real numbers), ``flops_per_sample`` (forward FLOPs),
        ``train_samples`` (samples seen), ``train_flops``, ``train_time_s``,
        ``inference_time_s`` (s / sample, at the training batch size, in the
        run's precision), ``final_train_loss``, ``final_test_loss``,
        ``precision`` (the one used), the
        :func:`~flops_fit.metrics.complex_metrics` of the stitched test
        reconstruction and, on CUDA, ``gpu_name`` and ``gpu_peak_memory_gb``
        (peak allocated by tensors during the run).
    """
    data = checked_data(config, cache_dir)
    model, fwd, settings = prepare_run(config, data, device)
    start = time.perf_counter()
    history = ptrain.fit(model, *train_args(data), seed=config["seed"], progress=progress, settings=settings,
                         **fit_settings(config, data, device))
    synchronize(torch.device(device))  # the last step may still be queued on an accelerator
    measured = measure_run(model, config, data, history, time.perf_counter() - start, fwd, settings, device, run_dir)
    return {**measured, "trained_together": 1}


def checked_data(config: dict[str, Any], cache_dir: str | Path) -> GridLinesData:
    """The config's data, refused if its content key is not the one planned."""
    data = load_data(config["data"], str(cache_dir))
    key = data.config.cache_key()
    if config.get("data_key", key) != key:
        raise ValueError(
            f"Got data_key={config['data_key']!r} for data={config['data']!r}, expected {key!r}: "
            "the preset changed since this experiment was planned; plan it again"
        )
    return data


def prepare_run(config: dict[str, Any], data: GridLinesData, device: str
             ) -> tuple[torch.nn.Module, float, DeviceSettings]:
    """The config's model (input-scaled, on ``device``), its forward FLOPs per sample and device settings."""
    train = data.train
    model = ptrain.InputScale(build_study_model(config, N=train.X.shape[-1]), ptrain.input_scale(train.X))
    fwd = forward_flops(model, torch.from_numpy(train.X[:1]))
    dev = torch.device(device)
    settings = DeviceSettings.for_device(dev)
    if config.get("precision") is not None:
        settings = settings.replace(precision=config["precision"])
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    return model.to(device), fwd, settings


def train_args(data: GridLinesData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return data.train.X, data.train.Y, data.train.probe


def fit_settings(config: dict[str, Any], data: GridLinesData, device: str) -> dict[str, Any]:
    """The :func:`~flops_fit.ptycho.fitting.fit` keywords a config sets."""
    samples = config.get("train_samples") or config["epochs"] * len(data.train.X)
    return {"samples": int(samples), "batch_size": config["batch_size"], "lr": config["lr"],
            "loss": config["loss"], "schedule": config["schedule"], "device": device}


def measure_run(model: torch.nn.Module, config: dict[str, Any], data: GridLinesData, history: list[dict[str, float]],
             train_time: float, fwd: float, settings: DeviceSettings, device: str, run_dir: Path) -> dict[str, Any]:
    """Score a trained model, time its inference, write the run's files; the measurements."""
    dev = torch.device(device)
    train = data.train
    seen = history[-1]["samples_seen"]
    # Predict and stitch once: the metrics and the preview share them.
    pred = ptrain.predict(model, data.test.X, device=device, settings=settings)
    recon, truth = stitch(pred, data.test)
    metrics = _scores(pred, (recon, truth), data, config["loss"])
    batch = torch.from_numpy(data.test.X[: config["batch_size"]]).to(device)
    with settings.matmuls(dev.type), settings.autocast(dev.type):
        inference_time = time_inference(model, batch)
    out = {
        "model_params": count_params(model),
        "flops_per_sample": fwd,
        "train_samples": seen,
        "epochs_completed": seen / len(train.X),
        "train_flops": train_flops(fwd, seen),
        "train_time_s": train_time,
        "inference_time_s": inference_time,
        "final_train_loss": history[-1]["train_loss"],
        "n_train_patches": len(train.X),
        "n_test_patches": len(data.test.X),
        "precision": settings.precision,
        **metrics,
    }
    if dev.type == "cuda":
        out["gpu_name"] = torch.cuda.get_device_name(dev)
        out["gpu_peak_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=1))
    _save_preview(
        run_dir / "reconstruction.png",
        recon,
        truth,
        f"{config['architecture']} w{config['fno_width']} m{config['fno_modes']}: "
        f"phase SSIM {out['ssim_phase']:.3f}",
    )
    return out
