"""Pareto fronts: brute-force agreement, plot contents, filters, and which fronts a table allows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _tables import pairs, points, synthetic_results  # noqa: E402

from flops_fit.pareto import (  # noqa: E402
    LABELS,
    axis_label,
    category_columns,
    cost_columns,
    filter_results,
    metric_direction,
    pareto_front,
    pareto_pairs,
    plot_fronts,
    plot_pareto,
    quality_columns,
    run_table,
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


def test_plot_pareto_draws_front_solid_dominated_faded_and_step_line():
    df = synthetic_results()
    ax = plot_pareto(df, "model_params", "ssim_phase", hue="fno_input_transform")
    ok = df.dropna(subset=["ssim_phase"])
    mask = pareto_front(ok, {"model_params": "min", "ssim_phase": "max"})
    assert points(ax, "front") == pairs(ok[mask], "model_params", "ssim_phase")
    assert points(ax, "dominated") == pairs(ok[~mask], "model_params", "ssim_phase")
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
    df = synthetic_results()
    out = plot_pareto(df, "inference_time_s", "mae_phase", ax=ax, logx=False, title="t")
    assert out is ax and ax.get_title() == "t" and ax.get_xscale() == "linear"
    ok = df.dropna(subset=["mae_phase"])
    mask = pareto_front(ok, {"inference_time_s": "min", "mae_phase": "min"})
    assert points(ax, "front") == pairs(ok[mask], "inference_time_s", "mae_phase")
    assert ax.get_xlabel() == "inference time (s / sample)"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": "model_params", "y": "model_params"}, r"Got x=y='model_params', expected two"),
    ({"x": "nope", "y": "ssim_phase"}, r"Got x='nope', expected a column of df"),
    ({"x": "model_params", "y": "ssim_phase", "hue": "colour"}, r"Got hue='colour'"),
    ({"x": "fno_modes", "y": "ssim_phase"}, r"Got column 'fno_modes' with no known direction"),
])
def test_plot_pareto_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_pareto(synthetic_results(), **kwargs)


def test_plot_pareto_rejects_log_of_nonpositive():
    df = synthetic_results()
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
    df = synthetic_results()
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
    df = synthetic_results().drop(columns=["inference_time_s", "architecture"])
    with pytest.raises(ValueError, match=r"Got max_inference_time on column='inference_time_s'"):
        filter_results(df, max_inference_time=1.0)
    with pytest.raises(ValueError, match=r"Got architectures on column='architecture'"):
        filter_results(df, architectures=["fno"])


def test_plot_pareto_keeps_a_category_colour_when_others_are_filtered_out():
    df = synthetic_results().dropna(subset=["ssim_phase"])
    cats = ["fno", "hybrid"]
    full = plot_pareto(df, "model_params", "ssim_phase", hue="architecture", categories=cats)
    only = plot_pareto(df[df["architecture"] == "hybrid"], "model_params", "ssim_phase",
                       hue="architecture", categories=cats)
    colour = {t.get_text(): tuple(h.get_facecolor()[0])
              for t, h in zip(full.get_legend().get_texts(), full.get_legend().legend_handles,
                              strict=True) if t.get_text() in cats}
    (hybrid,) = [h for t, h in zip(only.get_legend().get_texts(), only.get_legend().legend_handles,
                                   strict=True) if t.get_text() == "hybrid"]
    assert tuple(hybrid.get_facecolor()[0]) == colour["hybrid"] != colour["fno"]


def test_cost_quality_and_category_columns():
    df = synthetic_results()
    df["final_loss"] = 0.1  # a run_sweep measurement named like a quality
    df["all_nan_mse"] = np.nan
    assert cost_columns(df) == ["model_params", "inference_time_s", "train_flops"]
    assert quality_columns(df) == ["ssim_phase", "mae_phase", "final_loss"]
    assert category_columns(df) == ["architecture", "fno_input_transform", "fno_modes", "fno_width"]
    generic = pd.DataFrame({"depth": [1, 2], "accuracy_top1": [0.5, 0.6]})
    assert cost_columns(generic) == [] and quality_columns(generic) == []


def test_pareto_pairs_prefers_the_study_columns_then_the_tables_own():
    df = synthetic_results()
    assert pareto_pairs(df) == [("model_params", "ssim_phase"), ("inference_time_s", "ssim_phase")]
    own = pd.DataFrame({"train_flops": [1e9, 2e9], "final_loss": [0.3, 0.2]})
    assert pareto_pairs(own) == [("train_flops", "final_loss")]


@pytest.mark.parametrize(("df", "match"), [
    (synthetic_results().iloc[:0], r"Got 0 runs, expected at least 1 to draw a front"),
    (pd.DataFrame({"depth": [1], "final_loss": [0.2]}), r"Got no cost column, expected one of"),
    (pd.DataFrame({"model_params": [1], "depth": [2]}), r"Got no quality column, expected a metric"),
    (pd.DataFrame({"model_params": [1.0, np.nan], "ssim_phase": [np.nan, 0.5]}),
     r"Got no run with both a cost \(\['model_params'\]\) and a quality \(\['ssim_phase'\]\)"),
])
def test_pareto_pairs_says_why_none_applies(df, match):
    with pytest.raises(ValueError, match=match):
        pareto_pairs(df)


def test_plot_fronts_one_panel_per_pair_coloured_by_architecture():
    df = synthetic_results()
    fig = plot_fronts(df, pareto_pairs(df) + [("train_flops", "mae_phase")])
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and len(shown) == 3
    assert [ax.get_xlabel() for ax in shown] == [
        "parameters (real numbers)", "inference time (s / sample)", "training FLOPs"]
    assert shown[0].get_legend().get_title().get_text() == "architecture"
    with pytest.raises(ValueError, match=r"Got no \(cost, quality\) pair, expected at least 1"):
        plot_fronts(df, [])


def test_run_table_known_columns_best_first():
    df = synthetic_results()
    df["experiment_id"] = [f"{i:012x}" for i in range(len(df))]
    table = run_table(df)
    assert list(table.columns) == ["architecture", "fno_input_transform", "fno_modes", "fno_width",
                                   "model_params", "inference_time_s", "train_flops",
                                   "ssim_phase", "mae_phase", "experiment_id"]
    assert table["ssim_phase"].dropna().is_monotonic_decreasing  # best first; failed runs last
    by_mae = run_table(df, qualities=["mae_phase"], sort_by="mae_phase")
    assert "ssim_phase" not in by_mae and by_mae["mae_phase"].dropna().is_monotonic_increasing


def test_run_table_of_a_generic_sweep_keeps_its_own_columns():
    df = pd.DataFrame({"depth": [1, 2], "accuracy_top1": [0.5, 0.6], "experiment_id": ["a", "b"],
                       "status": "ok", "error": None, "device": "cpu", "version_torch": "2"})
    assert list(run_table(df).columns) == ["depth", "accuracy_top1", "experiment_id"]


@pytest.mark.parametrize(("params", "minor"), [
    ([1.5e5, 6e5, 1.3e6, 5e6], {"2", "5"}),  # one decade tick in view: 2x and 5x beside it
    ([1e3, 6e5, 5e6], set()),  # several: decade ticks alone
])
def test_log_axis_minor_labels_do_not_crowd(params, minor):
    # 2x10^5, 3x10^5, 4x10^5, 6x10^5 ran into each other in the explorer's 576-px plot.
    df = pd.DataFrame({"model_params": params, "ssim_phase": np.linspace(0.8, 0.84, len(params))})
    ax = plot_pareto(df, "model_params", "ssim_phase")
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert {label.split("\\times")[0][-1] for label in labels} == minor


def test_bookkeeping_measurements_are_not_qualities() -> None:
    # A labelled column is not a quality by its label alone: the group size of a
    # stacked run has no "better" direction and must not reach the explorer's y axis.
    runs = pd.DataFrame({"ssim_phase": [0.9, 0.8], "trained_together": [3, 1], "train_time_s": [1.0, 2.0]})
    assert quality_columns(runs) == ["ssim_phase"]
