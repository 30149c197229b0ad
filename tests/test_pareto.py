"""Pareto fronts: brute-force agreement, plot contents, filters and the widget explorer."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from flops_fit.pareto import (  # noqa: E402
    LABELS,
    axis_label,
    explore,
    filter_results,
    metric_direction,
    pareto_front,
    plot_pareto,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def brute_force_front(F: np.ndarray) -> np.ndarray:
    """O(n^2) reference: minimisation matrix, NaN rows never on the front."""
    ok = ~np.isnan(F).any(axis=1)
    out = np.zeros(len(F), dtype=bool)
    for i in range(len(F)):
        if not ok[i]:
            continue
        out[i] = not any(
            ok[j] and np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(len(F))
        )
    return out


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_front_matches_brute_force_with_ties_duplicates_nans(m, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # Few distinct integers: many ties and duplicate rows.
    F = rng.integers(0, 5, size=(n, m)).astype(float)
    F[rng.random((n, m)) < 0.08] = np.nan
    F[rng.random((n, m)) < 0.03] = np.inf
    if n > 3:
        F[1] = F[0]  # an exact duplicate
    directions = rng.choice(["min", "max"], size=m)
    cols = [f"f{j}" for j in range(m)]
    df = pd.DataFrame({c: F[:, j] if d == "min" else -F[:, j]
                       for j, (c, d) in enumerate(zip(cols, directions, strict=True))})
    got = pareto_front(df, dict(zip(cols, directions, strict=True)))
    np.testing.assert_array_equal(got, brute_force_front(F))


def test_exact_ties_all_kept_and_nan_never_on_front():
    df = pd.DataFrame({"model_params": [10, 10, 20, 5, 1],
                       "ssim_phase": [0.9, 0.9, 0.95, 0.5, np.nan]})
    got = pareto_front(df, {"model_params": "min", "ssim_phase": "max"})
    assert got.tolist() == [True, True, True, True, False]


def test_three_objectives_known_answer():
    df = pd.DataFrame({"p": [1, 2, 3, 3], "t": [3, 2, 1, 3], "q": [0.1, 0.1, 0.1, 0.2]})
    got = pareto_front(df, {"p": "min", "t": "min", "q": "max"})
    assert got.tolist() == [True, True, True, True]
    df.loc[3, "q"] = 0.1  # now dominated by row 2 (same q, same p, worse t)
    assert pareto_front(df, {"p": "min", "t": "min", "q": "max"}).tolist() == [
        True, True, True, False]


def test_empty_and_all_nan():
    empty = pd.DataFrame({"a": [], "b": []}, dtype=float)
    assert pareto_front(empty, {"a": "min", "b": "max"}).shape == (0,)
    nan = pd.DataFrame({"a": [np.nan, 1.0], "b": [1.0, np.nan]})
    assert not pareto_front(nan, {"a": "min", "b": "max"}).any()


@pytest.mark.parametrize(("objectives", "error", "match"), [
    ({"a": "min"}, ValueError, r"Got 1 objective\(s\) \['a'\], expected at least 2"),
    ({"a": "min", "zz": "max"}, ValueError, r"Got objective='zz', expected a column of df"),
    ({"a": "min", "b": "up"}, ValueError, r"Got direction 'up' for 'b', expected 'min' or 'max'"),
    ({"a": "min", "s": "max"}, ValueError, r"Got objective 's' of dtype \w+, expected a numeric column"),
    ([("a", "min"), ("b", "max")], TypeError, r"expected a mapping like"),
])
def test_pareto_front_validation(objectives, error, match):
    df = pd.DataFrame({"a": [1.0], "b": [2.0], "s": ["x"]})
    with pytest.raises(error, match=match):
        pareto_front(df, objectives)


def _results(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small synthetic FNO results table with two failed runs."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "architecture": rng.choice(["fno", "hybrid"], n),
        "fno_input_transform": rng.choice(["none", "log", "sqrt"], n),
        "fno_modes": rng.choice([4, 8], n),
        "fno_width": rng.choice([4, 8], n),
        "model_params": np.round(10 ** rng.uniform(3, 6, n)),
        "inference_time_s": 10 ** rng.uniform(-4, -2, n),
        "train_flops": 10 ** rng.uniform(9, 12, n),
        "ssim_phase": np.round(rng.uniform(0.3, 0.95, n), 2),
        "mae_phase": rng.uniform(0.05, 0.5, n),
        "status": "ok",
    })
    df.loc[[3, 7], ["ssim_phase", "mae_phase", "inference_time_s"]] = np.nan
    df.loc[[3, 7], "status"] = "failed"
    return df


def _points(ax, gid: str) -> set[tuple[float, float]]:
    pts = [c.get_offsets() for c in ax.collections if c.get_gid() == gid]
    return {tuple(map(float, p)) for arr in pts for p in np.asarray(arr)}


def _pairs(df: pd.DataFrame, x: str, y: str) -> set[tuple[float, float]]:
    return set(zip(df[x].astype(float), df[y].astype(float), strict=True))


def test_plot_pareto_draws_front_solid_dominated_faded_and_step_line():
    df = _results()
    ax = plot_pareto(df, "model_params", "ssim_phase", hue="fno_input_transform")
    ok = df.dropna(subset=["ssim_phase"])
    mask = pareto_front(ok, {"model_params": "min", "ssim_phase": "max"})
    assert _points(ax, "front") == _pairs(ok[mask], "model_params", "ssim_phase")
    assert _points(ax, "dominated") == _pairs(ok[~mask], "model_params", "ssim_phase")
    assert all(c.get_alpha() == 0.3 for c in ax.collections if c.get_gid() == "dominated")
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "front_line"]
    front_sorted = ok[mask].sort_values(["model_params", "ssim_phase"])
    np.testing.assert_array_equal(line.get_xdata(), front_sorted["model_params"])
    assert line.get_drawstyle() == "steps-post"
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "parameters (real numbers)"
    assert ax.get_ylabel() == "phase SSIM"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"log", "none", "sqrt", "Pareto front"} <= set(legend)
    assert any("2 run(s) without" in t.get_text() for t in ax.texts)


def test_plot_pareto_on_given_axes_with_min_quality_metric():
    fig, ax = plt.subplots()
    df = _results()
    out = plot_pareto(df, "inference_time_s", "mae_phase", ax=ax, logx=False, title="t")
    assert out is ax and ax.get_title() == "t" and ax.get_xscale() == "linear"
    ok = df.dropna(subset=["mae_phase"])
    mask = pareto_front(ok, {"inference_time_s": "min", "mae_phase": "min"})
    assert _points(ax, "front") == _pairs(ok[mask], "inference_time_s", "mae_phase")
    assert ax.get_xlabel() == "inference time (s / sample)"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": "model_params", "y": "model_params"}, r"Got x=y='model_params', expected two"),
    ({"x": "nope", "y": "ssim_phase"}, r"Got x='nope', expected a column of df"),
    ({"x": "model_params", "y": "ssim_phase", "hue": "colour"}, r"Got hue='colour'"),
    ({"x": "fno_modes", "y": "ssim_phase"}, r"Got column 'fno_modes' with no known direction"),
])
def test_plot_pareto_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_pareto(_results(), **kwargs)


def test_plot_pareto_rejects_log_of_nonpositive():
    df = _results()
    df.loc[0, "model_params"] = 0
    with pytest.raises(ValueError, match=r"Got logx=True but 'model_params' has values <= 0"):
        plot_pareto(df, "model_params", "ssim_phase")


@pytest.mark.parametrize(("column", "expected"), [
    ("ssim_phase", "max"), ("psnr_amp", "max"), ("frc50_phase", "max"), ("mae_phase", "min"),
    ("final_test_loss", "min"), ("model_params", "min"), ("inference_time_s", "min"),
    ("train_flops", "min"),
])
def test_metric_direction(column, expected):
    assert metric_direction(column) == expected


def test_axis_labels_have_units():
    assert axis_label("train_flops") == "training FLOPs"
    assert axis_label("something_else") == "something_else"
    assert "(s / sample)" in LABELS["inference_time_s"]


@pytest.mark.parametrize("kwargs", [
    {}, {"max_params": 1e4}, {"max_inference_time": 1e-3}, {"min_quality": 0.6},
    {"min_quality": 0.2, "quality": "mae_phase"}, {"architectures": "fno"},
    {"architectures": ["fno", "hybrid"], "transforms": ["log"]},
    {"max_params": 1e5, "max_inference_time": 3e-3, "min_quality": 0.5, "transforms": ["none"]},
])
def test_filter_results_matches_pandas_query(kwargs):
    df = _results()
    expected = np.ones(len(df), dtype=bool)
    if "max_params" in kwargs:
        expected &= df["model_params"] <= kwargs["max_params"]
    if "max_inference_time" in kwargs:
        expected &= df["inference_time_s"] <= kwargs["max_inference_time"]
    if "min_quality" in kwargs:
        q = kwargs.get("quality", "ssim_phase")
        expected &= (df[q] >= kwargs["min_quality"]) if q == "ssim_phase" \
            else (df[q] <= kwargs["min_quality"])
    if "architectures" in kwargs:
        archs = kwargs["architectures"]
        expected &= df["architecture"].isin([archs] if isinstance(archs, str) else archs)
    if "transforms" in kwargs:
        expected &= df["fno_input_transform"].isin(kwargs["transforms"])
    pd.testing.assert_frame_equal(filter_results(df, **kwargs), df[expected])


def test_filter_results_missing_column():
    df = _results().drop(columns=["inference_time_s", "architecture"])
    with pytest.raises(ValueError, match=r"Got max_inference_time on column='inference_time_s'"):
        filter_results(df, max_inference_time=1.0)
    with pytest.raises(ValueError, match=r"Got architectures on column='architecture'"):
        filter_results(df, architectures=["fno"])


def test_explorer_slider_changes_plot_as_pure_filter_says():
    df = _results()
    ui = explore(df)
    c = ui.controls
    assert set(c) == {"max_params", "max_inference_time", "min_quality", "architectures",
                      "transforms", "x", "y"}
    assert len(ui.current) == len(df)  # every control starts at its loosest
    assert ui.image.value[:8] == b"\x89PNG\r\n\x1a\n"

    c["max_params"].value = 2e4  # observers fire synchronously outside a kernel
    expected = filter_results(df, max_params=2e4)
    pd.testing.assert_frame_equal(ui.current, expected)
    ok = expected.dropna(subset=["ssim_phase"])
    mask = pareto_front(ok, {"model_params": "min", "ssim_phase": "max"})
    assert _points(ui.axes, "front") | _points(ui.axes, "dominated") == _pairs(
        ok, "model_params", "ssim_phase")
    assert _points(ui.axes, "front") == _pairs(ok[mask], "model_params", "ssim_phase")
    pd.testing.assert_frame_equal(
        ui.current_front, ok[mask].sort_values(["model_params", "ssim_phase"]))

    c["min_quality"].value = 0.6
    c["transforms"].value = ("log", "none")
    expected = filter_results(df, max_params=2e4, min_quality=0.6, transforms=["log", "none"])
    pd.testing.assert_frame_equal(ui.current, expected)
    assert _points(ui.axes, "front") | _points(ui.axes, "dominated") == _pairs(
        expected, "model_params", "ssim_phase")
    for row in ui.current_front.itertuples():
        assert f"{row.model_params:.4g}" in ui.table.value


def test_explorer_metric_pickers_switch_axes_and_reset_quality():
    df = _results()
    ui = explore(df)
    c = ui.controls
    c["min_quality"].value = 0.8
    c["y"].value = "mae_phase"  # the quality slider now spans MAE, loosest = largest
    assert c["min_quality"].value == pytest.approx(df["mae_phase"].max())
    assert c["min_quality"].description == "max mae_phase"
    assert ui.filters()["min_quality"] is None
    c["x"].value = "train_flops"
    assert ui.axes.get_xlabel() == "training FLOPs"
    assert ui.axes.get_ylabel() == "phase MAE (rad)"
    c["min_quality"].value = 0.3
    expected = filter_results(df, min_quality=0.3, quality="mae_phase")
    pd.testing.assert_frame_equal(ui.current, expected)
    assert _points(ui.axes, "front") | _points(ui.axes, "dominated") == _pairs(
        expected, "train_flops", "mae_phase")


def test_explorer_skips_controls_for_missing_columns():
    df = _results().drop(columns=["inference_time_s", "architecture", "train_flops"])
    ui = explore(df, y="mae_phase")
    assert "max_inference_time" not in ui.controls and "architectures" not in ui.controls
    assert [v for _, v in ui.controls["x"].options] == ["model_params"]
    assert ui.axes.get_ylabel() == "phase MAE (rad)"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": "ssim_phase"}, r"Got x='ssim_phase', expected one of \['model_params'"),
    ({"y": "model_params"}, r"Got y='model_params', expected one of \['ssim_phase'"),
])
def test_explorer_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore(_results(), **kwargs)


def test_explorer_needs_cost_and_quality_columns():
    with pytest.raises(ValueError, match=r"expected at least one of \['model_params'"):
        explore(pd.DataFrame({"ssim_phase": [0.5]}))
