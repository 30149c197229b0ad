"""The widget explorer: pure helpers, and the widgets driven from Python.

Observers fire synchronously outside a kernel, so setting ``.value`` here is
what a browser's message does in a kernel, minus the browser: its clamping
and step snapping are imitated where it matters (and tested for real in
test_explorer_browser.py).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _tables import pairs, points, synthetic_results  # noqa: E402

from flops_fit.explorer import (  # noqa: E402
    describe_filters,
    explore,
    log_range,
    quality_range,
    run_details,
    run_label,
)
from flops_fit.pareto import filter_results, pareto_front  # noqa: E402
from flops_fit.results import load_records, load_results  # noqa: E402
from flops_fit.runner import run_sweep  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(("column", "values", "expected"), [
    ("ssim_phase", [0.8, 0.9, np.nan], (0.8, 0.9, 0.8, "min phase SSIM")),
    ("psnr_phase", [-2.8, 25.0], (-2.8, 25.0, -2.8, "min phase PSNR (dB)")),
    ("mae_phase", [0.07, 1.75], (0.07, 1.75, 1.75, "max phase MAE (rad)")),
    ("ssim_phase", [0.5], (0.5, 1.5, 0.5, "min phase SSIM")),  # one value: a unit above it
    ("mae_phase", [0.5], (-0.5, 0.5, 0.5, "max phase MAE (rad)")),  # ... or below, loosest kept
    ("mae_phase", [np.nan], (0.0, 1.0, 1.0, "max phase MAE (rad)")),
])
def test_quality_range_starts_at_the_loosest_end(column, values, expected):
    r = quality_range(pd.DataFrame({column: values}), column)
    assert (r.min, r.max, r.loosest) == pytest.approx(expected[:3])
    assert r.description == expected[3]
    assert r.step == pytest.approx((r.max - r.min) / 200)


def test_log_range():
    lo, hi, step = log_range([1e3, 1e5, np.nan, 0])
    assert (lo, hi, step) == pytest.approx((3, 5, 0.02))
    lo, hi, _ = log_range([200.0, 200.0])  # the browser's slider needs a non-empty range
    assert lo < np.log10(200) < hi and hi - lo == pytest.approx(0.1)
    assert log_range([np.nan, -1]) is None


def test_run_label_without_study_columns():
    assert run_label({"experiment_id": "abc", "final_loss": 0.25}, "final_loss") == \
        "final loss 0.25 · abc".replace("final loss", "final_loss")
    assert run_label({"final_loss": 0.25}, "final_loss", short=True) == "0.25"


def test_describe_filters_names_every_limit():
    assert describe_filters({"quality": "ssim_phase"}) == "no limits"
    assert describe_filters({"max_inference_time": 1e-3, "min_quality": 0.8, "quality": "ssim_phase",
                             "transforms": []}) == (
        "inference time (s / sample) ≤ 0.001 · phase SSIM ≥ 0.8 · fno input transform: (none)")


def _write_png(path: Path) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=20)
    fig.add_subplot().plot([0, 1])
    fig.savefig(path, format="png")
    return path.read_bytes()


def _study_like(config: dict, run_dir: Path, *, device: str) -> dict:
    """Study-shaped measurements; width 8 leaves a reconstruction.png, width 4 none."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if config["fno_width"] == 8:
        _write_png(run_dir / "reconstruction.png")
    w = config["fno_width"] * (2 if config["architecture"] == "hybrid" else 1)
    return {"model_params": 1000 * w, "inference_time_s": 1e-4 * w, "ssim_phase": 0.8 + 0.01 * w,
            "mae_phase": 0.2 - 0.01 * w, "n_test_patches": 9}


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    from flops_fit.planning import grid

    folder = tmp_path / "study"
    plan = grid(architecture=["fno", "hybrid"], fno_input_transform=["none"], fno_width=[4, 8])
    run_sweep(plan, _study_like, folder, progress=False, device="cpu")
    return folder


def test_run_details_split_config_from_metrics_by_the_run_log(study_folder: Path):
    df = load_results(study_folder)
    records = load_records(study_folder)
    row = df[(df["fno_width"] == 8) & (df["architecture"] == "fno")].iloc[0]
    d = run_details(row, results_dir=study_folder, record=records[row["experiment_id"]])
    assert d.experiment_id == row["experiment_id"]
    assert d.config == {"architecture": "fno", "fno_input_transform": "none", "fno_width": 8,
                        "seed": 0}
    assert list(d.metrics) == ["model_params", "inference_time_s", "ssim_phase", "mae_phase",
                               "n_test_patches"]  # known metrics first, in LABELS order
    assert d.image == study_folder / "runs" / d.experiment_id / "reconstruction.png"
    assert d.note == ""
    # Without the log (a table-only copy), names decide: n_test_patches has no direction.
    guess = run_details(row, results_dir=study_folder)
    assert guess.config == {**d.config, "n_test_patches": 9}
    assert "status" not in guess.config and "wall_time_s" not in guess.metrics
    small = df[df["fno_width"] == 4].iloc[0]
    none = run_details(small, results_dir=study_folder)
    assert none.image is None and none.note == f"no reconstruction.png in runs/{small['experiment_id']}/"
    assert run_details(small).note == "no results folder or experiment id given: no picture"


def test_load_records_of_a_table_only_folder_is_empty(tmp_path: Path):
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "study_results.csv", index=False)
    assert load_records(tmp_path) == {}


# --------------------------------------------------------------------------- widgets from Python


def test_explorer_shows_the_best_front_run_and_its_reconstruction(study_folder: Path):
    df = load_results(study_folder)
    ui = explore(df, results_dir=study_folder)
    front = ui.current_front
    best = front["ssim_phase"].idxmax()
    assert ui.selected == best and ui.run_picker.value == best
    assert [v for _, v in ui.run_picker.options] == list(front.index)
    eid = df.loc[best, "experiment_id"]
    assert ui.preview.value == (study_folder / "runs" / eid / "reconstruction.png").read_bytes()
    assert ui.preview.layout.display is None
    assert eid in ui.details_html.value and "fno_width" in ui.details_html.value
    (ring,) = [c for c in ui.axes.collections if c.get_gid() == "selected"]
    assert tuple(ring.get_offsets()[0]) == (df.loc[best, "model_params"], df.loc[best, "ssim_phase"])
    assert ui.status.value.startswith(f"<b>4 of 4 runs shown, {len(front)} on the Pareto front</b>")

    other = next(i for i in front.index if df.loc[i, "fno_width"] == 4)
    ui.run_picker.value = other  # what picking in the list does
    assert ui.selected == other and ui.preview.layout.display == "none"
    assert "no reconstruction.png in runs/" in ui.details_html.value
    (ring,) = [c for c in ui.axes.collections if c.get_gid() == "selected"]
    assert tuple(ring.get_offsets()[0]) == (df.loc[other, "model_params"],
                                             df.loc[other, "ssim_phase"])

    ui.controls["architectures"].value = ("hybrid",)  # the picked run leaves the front
    if df.loc[other, "architecture"] != "hybrid":
        hybrid = ui.current_front
        assert ui.selected == hybrid["ssim_phase"].idxmax()
    ui.controls["max_params"].value = 10 ** ui.controls["max_params"].min  # nothing passes
    assert ui.selected is None and ui.current_front.empty
    assert "No run on the front" in ui.details_html.value
    assert ui.status.value.startswith("<b>0 of 4 runs shown, 0 on the Pareto front</b>")


@pytest.mark.parametrize("first", ["ssim_phase", "mae_phase"])
def test_switching_y_never_filters_a_run(first):
    df = synthetic_results()
    ui = explore(df, y=first)
    c = ui.controls
    for _ in range(4):
        quality = "ssim_phase" if c["y"].value == "mae_phase" else "mae_phase"
        c["min_quality"].value = float(df[c["y"].value].median())  # a limit on the old metric
        assert len(ui.current) < len(df)
        c["y"].value = quality
        r = quality_range(df, quality)
        assert c["min_quality"].value == r.loosest
        assert (c["min_quality"].min, c["min_quality"].max) == (r.min, r.max)
        assert ui.filters()["min_quality"] is None
        pd.testing.assert_frame_equal(ui.current, df)


def test_a_slider_snapped_near_its_loosest_end_is_no_limit():
    # The browser snaps values to the step grid and sends them back.
    df = synthetic_results()
    ui = explore(df, y="mae_phase")
    q = ui.controls["min_quality"]
    q.value = q.max - 0.4 * q.step
    assert ui.filters()["min_quality"] is None and len(ui.current) == len(df)
    q.value = q.max - 0.6 * q.step
    assert ui.filters()["min_quality"] == pytest.approx(q.max - 0.6 * q.step)
    p = ui.controls["max_params"]
    p.value = 10 ** (p.max - 0.4 * p.step)
    assert ui.filters()["max_params"] is None


def test_hue_picker_recolours_without_filtering():
    df = synthetic_results()
    ui = explore(df)
    assert ui.controls["hue"].value == "architecture"
    assert ui.axes.get_legend().get_title().get_text() == "architecture"
    ui.controls["hue"].value = "fno_width"
    assert ui.axes.get_legend().get_title().get_text() == "fno_width"
    assert len(ui.current) == len(df)
    ui.controls["hue"].value = ""
    assert ui.axes.get_legend().get_title().get_text() == ""


def test_explorer_labels_are_whole_words():
    ui = explore(synthetic_results())
    for control in ui.controls.values():
        assert control.style.description_width == "initial"  # the browser does not cut them
    assert ui.controls["max_params"].description == "max parameters"
    assert ui.controls["transforms"].description == "fno input transform"


def test_explorer_slider_changes_plot_as_pure_filter_says():
    df = synthetic_results()
    ui = explore(df)
    c = ui.controls
    assert set(c) == {"max_params", "max_inference_time", "min_quality", "architectures",
                      "transforms", "x", "y", "hue"}
    assert len(ui.current) == len(df)  # every control starts at its loosest
    assert ui.image.value[:8] == b"\x89PNG\r\n\x1a\n"

    c["max_params"].value = 2e4  # observers fire synchronously outside a kernel
    expected = filter_results(df, max_params=2e4)
    pd.testing.assert_frame_equal(ui.current, expected)
    ok = expected.dropna(subset=["ssim_phase"])
    mask = pareto_front(ok, {"model_params": "min", "ssim_phase": "max"})
    assert points(ui.axes, "front") | points(ui.axes, "dominated") == pairs(
        ok, "model_params", "ssim_phase")
    assert points(ui.axes, "front") == pairs(ok[mask], "model_params", "ssim_phase")
    pd.testing.assert_frame_equal(
        ui.current_front, ok[mask].sort_values(["model_params", "ssim_phase"]))

    c["min_quality"].value = 0.6
    c["transforms"].value = ("log", "none")
    expected = filter_results(df, max_params=2e4, min_quality=0.6, transforms=["log", "none"])
    pd.testing.assert_frame_equal(ui.current, expected)
    assert points(ui.axes, "front") | points(ui.axes, "dominated") == pairs(
        expected, "model_params", "ssim_phase")
    for row in ui.current_front.itertuples():
        assert f"{row.model_params:.4g}" in ui.table.value


def test_explorer_metric_pickers_switch_axes_and_reset_quality():
    df = synthetic_results()
    ui = explore(df)
    c = ui.controls
    c["min_quality"].value = 0.8
    c["y"].value = "mae_phase"  # the quality slider now spans MAE, loosest = largest
    assert c["min_quality"].value == pytest.approx(df["mae_phase"].max())
    assert c["min_quality"].description == "max phase MAE (rad)"
    assert ui.filters()["min_quality"] is None
    c["x"].value = "train_flops"
    assert ui.axes.get_xlabel() == "training FLOPs"
    assert ui.axes.get_ylabel() == "phase MAE (rad)"
    c["min_quality"].value = 0.3
    expected = filter_results(df, min_quality=0.3, quality="mae_phase")
    pd.testing.assert_frame_equal(ui.current, expected)
    assert points(ui.axes, "front") | points(ui.axes, "dominated") == pairs(
        expected, "train_flops", "mae_phase")


def test_explorer_skips_controls_for_missing_columns():
    df = synthetic_results().drop(columns=["inference_time_s", "architecture", "train_flops"])
    ui = explore(df, y="mae_phase")
    assert "max_inference_time" not in ui.controls and "architectures" not in ui.controls
    assert [v for _, v in ui.controls["x"].options] == ["model_params"]
    assert ui.axes.get_ylabel() == "phase MAE (rad)"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": "ssim_phase"}, r"Got x='ssim_phase', expected one of \['model_params'"),
    ({"y": "model_params"}, r"Got y='model_params', expected one of \['ssim_phase'"),
    ({"hue": "colour"}, r"Got hue='colour', expected one of \['', 'architecture'"),
])
def test_explorer_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore(synthetic_results(), **kwargs)


def test_explorer_needs_cost_and_quality_columns():
    with pytest.raises(ValueError, match=r"Got 1 run\(s\) with costs \[\] and qualities "
                                         r"\['ssim_phase'\], expected at least one run with a cost"):
        explore(pd.DataFrame({"ssim_phase": [0.5]}))
