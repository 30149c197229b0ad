"""The FNO study: grid, per-experiment training, end-to-end runs at tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch

from flops_fit.metrics import complex_metrics
from flops_fit.ptycho import experiment, seed_groups, study
from flops_fit.ptycho.cache import load_or_simulate
from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.fitting import InputScale, input_scale
from flops_fit.ptycho.models import build_model
from flops_fit.ptycho.simulate import stitch

# 16-pixel patches on a 48-pixel object: 289 train and 81 test patches.
TINY = GridLinesConfig(N=16, size=48, nlines=40, train_stride=2, test_stride=4)
TINY_AXES = {"architecture": ["fno"], "fno_modes": [4], "fno_width": [8]}
SEED_COLUMNS = [
    "architecture", "fno_input_transform", "fno_modes", "fno_width", "epochs", "model_params",
    "inference_time_s", "ssim_phase", "psnr_phase", "mae_phase", "error",
]


@pytest.fixture(scope="module")
def light_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("light")
    return study.run_study(out, light=True, data=TINY, axes=TINY_AXES, epochs=8, progress=False)


def test_full_grid_has_54_experiments() -> None:
    plan = study.study_grid(light=False)
    frame = plan.to_frame()
    assert plan.num_experiments == 54
    assert set(frame["architecture"]) == {"fno", "hybrid"}
    assert set(frame["fno_input_transform"]) == {"none", "log1p", "sqrt"}
    assert set(frame["fno_modes"]) == {12, 16, 24} and set(frame["fno_width"]) == {32, 48, 64}
    assert set(frame["epochs"]) == {study.FULL_EPOCHS}


def test_light_grid_is_both_architectures_at_two_widths() -> None:
    configs = study.study_grid(light=True).configs()
    assert sorted((c["architecture"], c["fno_width"]) for c in configs) == [
        ("fno", 4), ("fno", 8), ("hybrid", 4), ("hybrid", 8)
    ]
    for config in configs:
        assert config["fno_input_transform"] == "none" and config["fno_modes"] == 12
        assert config["epochs"] == study.LIGHT_EPOCHS == 3 and config["data"] == "light"


def test_architectures_narrow_the_grid() -> None:
    plan = study.study_grid(architectures=["hybrid"])
    assert plan.num_experiments == 27 and set(plan.to_frame()["architecture"]) == {"hybrid"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"architectures": ["fnoo"]}, r"Got architecture='fnoo', expected one of \['fno', 'hybrid'\]"),
        ({"epochs": 0}, r"Got epochs=0, expected an int >= 1"),
        ({"axes": {"depth": [2]}}, r"Got axis='depth', expected one of \['architecture'"),
        ({"axes": {"fno_input_transform": ["log"]}}, r"Got fno_input_transform='log', expected one of"),
    ],
)
def test_study_grid_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        study.study_grid(**kwargs)


def test_data_spec_round_trips() -> None:
    assert experiment.data_config(experiment.data_spec(True)) == GridLinesConfig.light()
    assert experiment.data_config(experiment.data_spec(False, TINY)) == TINY
    assert experiment.data_spec(False, isoflop=True) == "full"
    assert experiment.data_spec(True, TINY, isoflop=True) == experiment.data_spec(True, TINY)
    with pytest.raises(
        ValueError, match=r"Got data='tiny', expected one of \['full', 'light', 'light_isoflop'\] or a JSON"
    ):
        experiment.data_config("tiny")


def test_light_isoflop_preset_is_n32_with_8_train_objects() -> None:
    iso = experiment.data_config(experiment.data_spec(True, isoflop=True))
    assert iso == GridLinesConfig.light().replace(N=32, train_stride=7, test_stride=10, n_train_objects=8)
    assert iso.n_train_objects * iso.n_positions(iso.train_stride) ** 2 == 21632
    assert iso.n_positions(iso.test_stride) ** 2 == 1369


def test_cpu_isoflop_default_plans_widths_2_to_12_at_n32() -> None:
    plan = study.isoflop_plan(study.CPU_BUDGETS)
    frame = plan.to_frame()
    assert sorted(frame["compute_budget"].unique()) == [3e10, 1e11, 3e11, 1e12]
    assert (frame.groupby("compute_budget")["width"].apply(sorted).map(tuple) == (2, 3, 4, 6, 8, 12)).all()
    assert set(frame["N"]) == {32}
    # The longest run: width 2 at 1e12, ~337k samples (~16 passes over 21,632 patches).
    assert frame["train_samples"].max() == 336630


def test_light_study_writes_table_plot_and_run_folders(light_run: Path) -> None:
    df = pd.read_csv(light_run)
    assert list(df["status"]) == ["ok"]
    assert set(SEED_COLUMNS) <= set(df.columns)
    for col in ["ssim_amp", "psnr_amp", "mae_amp", "frc50_phase", "flops_per_sample", "train_flops",
                "train_time_s", "final_train_loss", "final_test_loss"]:
        assert np.isfinite(df[col]).all(), col
    row = df.iloc[0]
    # Training FLOPs = 3 x forward x samples seen (8 epochs of 289 patches).
    assert row["train_samples"] == 8 * 289
    assert row["train_flops"] == pytest.approx(3 * row["flops_per_sample"] * row["train_samples"])
    image = matplotlib.image.imread(light_run.parent / "pareto_plot.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    run_dir = light_run.parent / "runs" / row["experiment_id"]
    assert json.loads((run_dir / "metrics.json").read_text())["ssim_phase"] == pytest.approx(row["ssim_phase"])
    assert len(json.loads((run_dir / "history.json").read_text())) == 8
    assert (run_dir / "reconstruction.png").stat().st_size > 1000


def test_trained_model_beats_untrained(light_run: Path, tmp_path: Path) -> None:
    trained = pd.read_csv(light_run).iloc[0]
    data = load_or_simulate(TINY, tmp_path)
    torch.manual_seed(0)
    untrained = InputScale(build_model("fno", modes=4, width=8, N=TINY.N), input_scale(data.train.X))
    baseline = experiment.evaluate(untrained, data)
    # Curved default probe: untrained ~0.84, 8 epochs ~0.88 (a constant phase scores ~0.85:
    # see metrics docs; the light-preset test below checks the margin over that floor).
    assert trained["ssim_phase"] > baseline["ssim_phase"] + 0.03
    assert trained["ssim_amp"] > baseline["ssim_amp"] + 0.3
    assert trained["final_test_loss"] < baseline["final_test_loss"]


def test_resume_skips_finished_runs(light_run: Path) -> None:
    before = pd.read_csv(light_run)
    again = study.run_study(light_run.parent, light=True, data=TINY, axes=TINY_AXES, epochs=8, progress=False)
    after = pd.read_csv(again)
    assert after["started_at"].tolist() == before["started_at"].tolist()


def test_isoflop_study_trains_each_experiment_for_its_budget(tmp_path: Path) -> None:
    budgets = [1e9, 3e9]
    path = study.run_study(tmp_path, light=True, data=TINY, compute_budgets=budgets, widths=[2, 4, 8],
                           axes={"fno_modes": [4]}, seed=[0, 1], progress=False)
    df = pd.read_csv(path)
    assert (df["status"] == "ok").all()
    assert set(df["compute_budget"]) == set(budgets)
    # Two seeds: every (budget, width) twice, trained from different initialisations.
    per_point = df.groupby(["compute_budget", "fno_width"])
    assert (per_point["seed"].apply(sorted).map(tuple) == (0, 1)).all()
    assert (per_point["final_test_loss"].nunique() == 2).all()
    # Every experiment sees exactly its planned samples, so 3 x forward x D hits the budget
    # to within one sample's FLOPs (D is rounded to whole samples).
    assert (np.abs(df["train_flops"] - df["compute_budget"]) <= 3 * df["flops_per_sample"]).all()
    assert df["epochs"].isna().all() and (df["epochs_completed"] > 0).all()


@pytest.mark.parametrize("seed", [-1, [], [0, 0], "0", True, [0, 1.5]])
def test_run_study_rejects_bad_seeds(tmp_path: Path, seed: object) -> None:
    with pytest.raises(ValueError, match=r"expected an int >= 0 or a non-empty list of distinct ints >= 0"):
        study.run_study(tmp_path, light=True, data=TINY, seed=seed, progress=False)


def test_isoflop_rejects_other_architectures(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"An IsoFLOP study sweeps fno widths; got architectures=\['hybrid'\]"):
        study.run_study(tmp_path, compute_budgets=[1e9], architectures=["hybrid"])


def test_mean_patch_baseline_is_written_and_matches_a_hand_built_constant(light_run: Path, tmp_path: Path) -> None:
    data = load_or_simulate(TINY, tmp_path)
    recon, truth = stitch(np.repeat(data.train.Y.mean(axis=0)[None], len(data.test.Y), axis=0), data.test)
    expected = complex_metrics(recon, truth)
    written = json.loads((light_run.parent / "baseline.json").read_text())
    assert written["ssim_phase"] == pytest.approx(expected["ssim_phase"])
    assert experiment.mean_patch_baseline(data)["mae_phase"] == pytest.approx(expected["mae_phase"])
    # The trained tiny model beats learning nothing on phase MAE and amplitude SSIM.
    trained = pd.read_csv(light_run).iloc[0]
    assert trained["mae_phase"] < written["mae_phase"] and trained["ssim_amp"] > written["ssim_amp"]


def test_default_probe_trains_past_the_mean_patch_floor(tmp_path: Path) -> None:
    # A regression to "learns the mean" (the flat probe's twin ambiguity, a broken input
    # scale) fails here: the smallest light model, one epoch (2,704 samples) of the real
    # light preset. Measured: phase MAE 0.09 rad below the floor and PSNR 5.2 dB above it.
    spec = experiment.data_spec(True)
    config = {
        **study.study_grid(light=True).configs()[0],
        "architecture": "fno", "fno_width": 4, "epochs": 1,
    }
    assert config["data"] == spec
    out = experiment.train_and_evaluate(config, tmp_path / "run", cache_dir=tmp_path, progress=False)
    floor = experiment.mean_patch_baseline(experiment.load_data(spec, str(tmp_path)))
    mae_margin = floor["mae_phase"] - out["mae_phase"]
    psnr_margin = out["psnr_phase"] - floor["psnr_phase"]
    print(f"margin over the mean-patch floor: phase MAE {mae_margin:.3f} rad, PSNR {psnr_margin:.2f} dB")
    assert mae_margin > 0.05 and psnr_margin > 3.0


def test_a_row_records_its_precision(light_run: Path, tmp_path: Path) -> None:
    assert pd.read_csv(light_run)["precision"].tolist() == ["fp32"]  # the CPU default
    [config] = study.study_grid(light=True, data=TINY, axes={"architecture": ["fno"], "fno_modes": [2], "fno_width": [4]},
                                   epochs=1).configs()
    out = experiment.train_and_evaluate({**config, "precision": "bf16"}, tmp_path / "run",
                                        cache_dir=tmp_path / "cache", progress=False)
    assert out["precision"] == "bf16" and np.isfinite(out["ssim_phase"]) and np.isfinite(out["final_train_loss"])
    with pytest.raises(ValueError, match=r"Got precision='fp8', expected one of \['fp32', 'tf32', 'bf16'\]"):
        experiment.train_and_evaluate({**config, "precision": "fp8"}, tmp_path / "bad", cache_dir=tmp_path / "cache")


def test_run_study_batch_size_scales_the_learning_rate(tmp_path: Path, monkeypatch) -> None:
    ran = []

    def fake_sweep(configs, fn, output_dir, **kwargs):
        ran.extend(configs)
        return pd.DataFrame()

    monkeypatch.setattr(study, "run_sweep", fake_sweep)
    study.run_study(tmp_path, light=True, data=TINY, axes={"architecture": ["fno"], "fno_modes": [4], "fno_width": [4, 8]},
                    batch_size=64, progress=False)
    assert [(c["batch_size"], c["lr"]) for c in ran] == [(64, pytest.approx(2e-3))] * 2
    with pytest.raises(ValueError, match=r"Got batch_size=0, expected an int >= 1"):
        study.run_study(tmp_path, light=True, data=TINY, batch_size=0, progress=False)


def test_study_keys_and_model_arguments_are_one_mapping() -> None:
    config = {"architecture": "fno", "fno_input_transform": "sqrt", "fno_modes": 4, "fno_width": 6}
    args = {arg: config[key] for key, arg in experiment.MODEL_ARGS.items()}
    assert args == {"input_transform": "sqrt", "modes": 4, "width": 6}
    assert experiment.study_keys({**args, "architecture": "fno", "N": 16}) == {k: config[k] for k in experiment.MODEL_ARGS}
    built = experiment.build_study_model(config, N=16)
    by_hand = build_model("fno", modes=4, width=6, input_transform="sqrt", N=16)
    assert [p.shape for p in built.parameters()] == [p.shape for p in by_hand.parameters()]


def test_run_study_reads_the_data_key_once_per_plan(tmp_path: Path, monkeypatch) -> None:
    # A probe file is hashed for the key: once per study, not once per experiment.
    calls, ran = [], []
    real = GridLinesConfig.cache_key
    monkeypatch.setattr(GridLinesConfig, "cache_key", lambda self: calls.append(1) or real(self))
    monkeypatch.setattr(study, "run_sweep", lambda configs, fn, out, **kw: ran.extend(configs) or pd.DataFrame())
    monkeypatch.setattr(study, "load_data", lambda spec, cache: None)
    monkeypatch.setattr(study, "mean_patch_baseline", lambda data: {"ssim_phase": 0.5})
    study.run_study(tmp_path, light=True, data=TINY, compute_budgets=[1e9, 3e9], widths=[2, 4, 8], axes={"fno_modes": [4]},
                    seed=[0, 1], progress=False)
    assert len(ran) == 12 and {c["data_key"] for c in ran} == {TINY.cache_key()}
    assert len(calls) == 2  # the plan's, and the one just asked for above


def test_train_and_evaluate_stitches_its_prediction_once(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = experiment.stitch
    monkeypatch.setattr(experiment, "stitch", lambda pred, test: calls.append(1) or real(pred, test))
    [config] = study.study_grid(light=True, data=TINY, axes={"architecture": ["fno"], "fno_modes": [2], "fno_width": [4]},
                                epochs=1).configs()
    out = experiment.train_and_evaluate(config, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert len(calls) == 1 and np.isfinite(out["ssim_phase"])
    assert (tmp_path / "run" / "reconstruction.png").is_file()


def test_seeds_trained_together_match_seeds_trained_alone(tmp_path: Path) -> None:
    args = dict(light=True, data=TINY, compute_budgets=[1e9], widths=[2, 4, 8], axes={"fno_modes": [4]},
                seed=[0, 1, 2], progress=False, device="cpu")
    together = pd.read_csv(study.run_study(tmp_path / "together", **args))
    alone = pd.read_csv(study.run_study(tmp_path / "alone", seeds_together=1, **args))
    assert (together["status"] == "ok").all() and (alone["status"] == "ok").all()
    assert (together["trained_together"] == 3).all() and (alone["trained_together"] == 1).all()
    key = ["fno_width", "seed"]
    a, b = together.set_index(key).sort_index(), alone.set_index(key).sort_index()
    assert a["experiment_id"].tolist() == b["experiment_id"].tolist()  # the same experiments
    assert (a["train_samples"] == b["train_samples"]).all()
    # The same models up to float rounding: every score within 1e-3 (relative).
    for column in ["final_train_loss", "final_test_loss", "ssim_phase", "mae_amp"]:
        np.testing.assert_allclose(a[column], b[column], rtol=1e-3)
    assert a["final_test_loss"].groupby("fno_width").nunique().eq(3).all()  # three different seeds


def test_hybrid_seeds_run_alone() -> None:
    fn = seed_groups.StudyExperiment("cache", max_group=3)
    assert fn.group_key({"architecture": "hybrid", "seed": 0}) is None
    assert fn.group_key({"architecture": "fno", "seed": 0, "fno_width": 2}) == (("architecture", "fno"), ("fno_width", 2))
    assert seed_groups.StudyExperiment("cache").group_key({"architecture": "fno", "seed": 0}) is None
    wide = {"architecture": "fno", "seed": 0, "fno_width": seed_groups.STACK_MAX_WIDTH + 1}
    assert fn.group_key(wide) is None  # measured slower stacked
    with pytest.raises(ValueError, match=r"Got max_group=0, expected an int >= 1"):
        seed_groups.StudyExperiment("cache", max_group=0)


def test_train_together_refuses_configs_that_differ_beyond_the_seed(tmp_path: Path) -> None:
    configs = [{"architecture": "fno", "seed": 0, "fno_width": 2}, {"architecture": "fno", "seed": 1, "fno_width": 4}]
    with pytest.raises(ValueError, match=r"Got configs that differ in more than their seed"):
        seed_groups.train_and_evaluate_together(configs, [tmp_path / "a", tmp_path / "b"], cache_dir=tmp_path)
