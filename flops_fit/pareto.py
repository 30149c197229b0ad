"""Pareto fronts of quality against cost: the non-dominated set, a plot, a live explorer.

A run is on the front when no other run is at least as good in every
objective and strictly better in one. `pareto_front` finds it, `plot_pareto`
draws it (this is ``pareto_plot.png``), `filter_results` narrows a results
table and `explore` wraps both in ipywidgets sliders and pickers.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "LABELS",
    "ParetoExplorer",
    "axis_label",
    "explore",
    "filter_results",
    "metric_direction",
    "pareto_front",
    "plot_pareto",
]

Direction = Literal["min", "max"]

# Axis labels with units for the results-table columns.
LABELS = {
    "model_params": "parameters (real numbers)",
    "inference_time_s": "inference time (s / sample)",
    "train_flops": "training FLOPs",
    "flops_per_sample": "forward FLOPs per sample",
    "train_time_s": "training time (s)",
    "compute_budget": "compute budget (FLOPs)",
    "train_samples": "training samples",
    "ssim_phase": "phase SSIM", "ssim_amp": "amplitude SSIM",
    "ms_ssim_phase": "phase MS-SSIM", "ms_ssim_amp": "amplitude MS-SSIM",
    "psnr_phase": "phase PSNR (dB)", "psnr_amp": "amplitude PSNR (dB)",
    "mae_phase": "phase MAE (rad)", "mae_amp": "amplitude MAE",
    "mse_phase": "phase MSE (rad²)", "mse_amp": "amplitude MSE",
    "frc50_phase": "phase FRC, 0.5 threshold", "frc50_amp": "amplitude FRC, 0.5 threshold",
    "frc1over7_phase": "phase FRC, 1/7 threshold", "frc1over7_amp": "amplitude FRC, 1/7 threshold",
    "final_train_loss": "final training loss", "final_test_loss": "final test loss",
}
# Which way is better, by column-name prefix (first match wins).
_BETTER: tuple[tuple[str, Direction], ...] = (
    ("ssim", "max"), ("ms_ssim", "max"), ("psnr", "max"), ("frc", "max"),
    ("mae", "min"), ("mse", "min"), ("final_", "min"), ("loss", "min"),
    ("model_params", "min"), ("inference_time", "min"), ("train_time", "min"),
    ("train_flops", "min"), ("flops", "min"),
)
_COSTS = ("model_params", "inference_time_s", "train_flops")
_ARCH, _TRANSFORM = "architecture", "fno_input_transform"
_ID_COLUMNS = ("architecture", "fno_input_transform", "fno_modes", "fno_width", "epochs")


def axis_label(column: str) -> str:
    """Human label with units for a results column (the name itself if unknown)."""
    return LABELS.get(column, column)


def metric_direction(column: str) -> Direction:
    """Whether larger ("max") or smaller ("min") values of ``column`` are better."""
    for prefix, direction in _BETTER:
        if column.startswith(prefix):
            return direction
    raise ValueError(
        f"Got column {column!r} with no known direction, expected one starting with "
        f"{[p for p, _ in _BETTER]}; pass the direction ('min' or 'max') explicitly"
    )


def _plottable(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows with finite ``x`` and ``y`` (failed runs have NaN metrics)."""
    return df[np.isfinite(df[x].to_numpy(float)) & np.isfinite(df[y].to_numpy(float))]


def _require(df: pd.DataFrame, column: str, role: str) -> None:
    if column not in df.columns:
        raise ValueError(f"Got {role}={column!r}, expected a column of df: {list(df.columns)}")


def _objective_matrix(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> np.ndarray:
    """(n, m) float matrix in which smaller is better; NaN kept."""
    if not isinstance(objectives, Mapping):
        raise TypeError(f"Got objectives={objectives!r}, expected a mapping like "
                        "{'model_params': 'min', 'ssim_phase': 'max'}")
    if len(objectives) < 2:
        raise ValueError(f"Got {len(objectives)} objective(s) {list(objectives)}, "
                         "expected at least 2")
    cols = []
    for column, direction in objectives.items():
        _require(df, column, "objective")
        if direction not in ("min", "max"):
            raise ValueError(f"Got direction {direction!r} for {column!r}, "
                             "expected 'min' or 'max'")
        if not pd.api.types.is_numeric_dtype(df[column]):
            raise ValueError(f"Got objective {column!r} of dtype {df[column].dtype}, "
                             "expected a numeric column")
        values = df[column].to_numpy(dtype=float)
        cols.append(values if direction == "min" else -values)
    return np.stack(cols, axis=1) if cols else np.empty((len(df), 0))


def _front_2d(F: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, 2) minimisation matrix, O(n log n)."""
    order = np.lexsort((F[:, 1], F[:, 0]))  # by f0, then f1
    f0, f1 = F[order, 0], F[order, 1]
    first = np.r_[True, f0[1:] != f0[:-1]]  # first row of each equal-f0 group
    group = np.cumsum(first) - 1
    gmin = f1[first]  # smallest f1 per group (sorted)
    # A group's best rows survive iff they beat every row with a strictly smaller f0.
    ok = np.r_[True, gmin[1:] < np.minimum.accumulate(gmin)[:-1]]
    on = ok[group] & (f1 == gmin[group])
    out = np.empty(len(F), dtype=bool)
    out[order] = on
    return out


def _front_nd(F: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, m) minimisation matrix, O(n * front size).

    In lexicographic order no row is dominated by a later one, and every
    dominated row is dominated by a front row, so checking the front suffices.
    """
    front: list[int] = []
    for i in np.lexsort(F.T[::-1]):
        P = F[front]
        if not np.any(np.all(P <= F[i], axis=1) & np.any(P < F[i], axis=1)):
            front.append(i)
    out = np.zeros(len(F), dtype=bool)
    out[front] = True
    return out


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> np.ndarray:
    """Mask of the non-dominated rows of ``df``.

    Parameters
    ----------
    df : DataFrame
        One row per run.
    objectives : mapping of str to {"min", "max"}
        Two or more numeric columns and which way is better, e.g.
        ``{"model_params": "min", "ssim_phase": "max"}``.

    Returns
    -------
    ndarray of bool, shape (len(df),)
        True for rows no other row dominates (at least as good everywhere,
        strictly better somewhere). Rows with NaN in an objective (failed
        runs) are never on the front; exact ties are all kept.

    Examples
    --------
    >>> df = pd.DataFrame({"cost": [1, 2, 3], "quality": [0.5, 0.4, 0.9]})
    >>> pareto_front(df, {"cost": "min", "quality": "max"}).tolist()
    [True, False, True]
    """
    F = _objective_matrix(df, objectives)
    valid = np.flatnonzero(~np.isnan(F).any(axis=1))
    mask = np.zeros(len(df), dtype=bool)
    if valid.size == 0:
        return mask
    finder = _front_2d if F.shape[1] == 2 else _front_nd
    mask[valid[finder(F[valid])]] = True
    return mask


def plot_pareto(
    df: pd.DataFrame,
    x: str,
    y: str,
    *,
    hue: str | None = None,
    logx: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    x_direction: Direction | None = None,
    y_direction: Direction | None = None,
) -> Axes:
    """Scatter of ``y`` against ``x`` with the Pareto front drawn as a step line.

    Dominated runs are faded, front runs solid; colours follow ``hue``. Runs
    with NaN in ``x`` or ``y`` (failed) are counted in a note, not drawn. The
    front's scatter collections carry ``gid="front"``, the others
    ``gid="dominated"`` (for tests and post-processing).

    Parameters
    ----------
    df : DataFrame
        Results table.
    x, y : str
        Columns for the axes, typically a cost and a quality.
    hue : str, optional
        Column coloured by category (e.g. ``"fno_input_transform"``).
    logx : bool
        Log-scaled x axis (costs span decades).
    ax : Axes, optional
        Where to draw; a new figure otherwise.
    title : str, optional
        Axes title; default says how many runs are on the front.
    x_direction, y_direction : {"min", "max"}, optional
        Which way is better; inferred from the column name when omitted.

    Returns
    -------
    Axes
    """
    if x == y:
        raise ValueError(f"Got x=y={x!r}, expected two different columns")
    for column, role in ((x, "x"), (y, "y")) + (((hue, "hue"),) if hue else ()):
        _require(df, column, role)
    xd, yd = x_direction or metric_direction(x), y_direction or metric_direction(y)
    valid = _plottable(df, x, y)
    if logx and (valid[x] <= 0).any():
        raise ValueError(f"Got logx=True but {x!r} has values <= 0; pass logx=False")
    front = pareto_front(valid, {x: xd, y: yd})
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot only here, so notebooks display the figure

        ax = plt.subplots(figsize=(7.0, 4.5), layout="constrained")[1]
    cats = valid[hue].astype("string").fillna("n/a") if hue else pd.Series("all", valid.index)
    for i, cat in enumerate(sorted(cats.unique())):
        color, label = f"C{i % 10}", (str(cat) if hue else None)
        sel = (cats == cat).to_numpy()
        d, f = valid[sel & ~front], valid[sel & front]
        ax.scatter(d[x], d[y], s=22, color=color, alpha=0.3, lw=0, gid="dominated")
        ax.scatter(f[x], f[y], s=40, color=color, edgecolor="k", zorder=3, gid="front",
                   label=label)
    f = valid[front].sort_values([x, y])
    # Best quality reachable at a given cost: constant until the next front point.
    ax.step(f[x], f[y], where="post" if xd == "min" else "pre", color="k", lw=1.2,
            zorder=2, gid="front_line", label="Pareto front")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=axis_label(x), ylabel=axis_label(y),
           title=title or f"{int(front.sum())} of {len(valid)} runs on the Pareto front")
    hidden = len(df) - len(valid)
    if hidden:
        ax.text(0.99, 0.01, f"{hidden} run(s) without {x}/{y} not shown",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.4")
    ax.legend(fontsize=8, title=hue, title_fontsize=8)
    return ax


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def filter_results(
    df: pd.DataFrame,
    *,
    max_params: float | None = None,
    max_inference_time: float | None = None,
    min_quality: float | None = None,
    quality: str = "ssim_phase",
    architectures: str | Iterable[str] | None = None,
    transforms: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows of a results table that meet every given limit (None: no limit).

    Parameters
    ----------
    df : DataFrame
        Results table (``model_params``, ``inference_time_s``,
        ``architecture``, ``fno_input_transform``, quality columns).
    max_params : float, optional
        Largest ``model_params`` (real numbers) kept.
    max_inference_time : float, optional
        Largest ``inference_time_s`` (s / sample) kept.
    min_quality : float, optional
        Worst acceptable ``quality``: rows at least this good are kept
        (``>=`` for SSIM/PSNR/FRC, ``<=`` for MAE/MSE/losses).
    quality : str
        Column `min_quality` applies to.
    architectures, transforms : str or iterable of str, optional
        Values of ``architecture`` / ``fno_input_transform`` kept.

    Returns
    -------
    DataFrame
        The kept rows, original index. A limit excludes rows with NaN in its column.
    """
    keep = np.ones(len(df), dtype=bool)
    limits = (
        (max_params, "model_params", "max_params"),
        (max_inference_time, "inference_time_s", "max_inference_time"),
    )
    for limit, column, name in limits:
        if limit is not None:
            _require(df, column, f"{name} on column")
            keep &= (df[column] <= limit).to_numpy()
    if min_quality is not None:
        _require(df, quality, "quality")
        better = df[quality] >= min_quality if metric_direction(quality) == "max" \
            else df[quality] <= min_quality
        keep &= better.to_numpy()
    for names, column, name in ((architectures, _ARCH, "architectures"),
                                (transforms, _TRANSFORM, "transforms")):
        if names is not None:
            _require(df, column, f"{name} on column")
            keep &= df[column].astype("string").isin(_names(names)).fillna(False).to_numpy()
    return df[keep]


def explore(df: pd.DataFrame, **options: Any) -> ParetoExplorer:
    """Interactive Pareto explorer for a notebook; see `ParetoExplorer`."""
    return ParetoExplorer(df, **options)


class ParetoExplorer:
    """ipywidgets UI: limits and pickers -> filtered rows -> front, plot and table.

    Sliders: max parameters, max inference time, worst acceptable quality
    (of the y metric); pickers: architecture, input transform, x metric
    (parameters | inference time | train FLOPs) and y metric. Controls whose
    column is missing are left out. Every change recomputes ``current``
    (filtered rows), ``current_front`` (its front rows, by x), ``axes``
    (the drawn plot), the PNG in ``image`` and the HTML ``table``. Display
    the object (or ``.widget``) in a notebook.

    Parameters
    ----------
    df : DataFrame
        Results table.
    x, y : str, optional
        Initial cost and quality columns (first available by default).
    hue : str, optional
        Colour column; ``fno_input_transform`` when present.
    qualities : sequence of str, optional
        Quality columns offered for y (default: known metrics present in df).
    """

    def __init__(self, df: pd.DataFrame, *, x: str | None = None, y: str | None = None,
                 hue: str | None = None, qualities: Iterable[str] | None = None) -> None:
        import ipywidgets as w

        self.df = df
        costs = [c for c in _COSTS if c in df.columns]
        qual = list(qualities) if qualities is not None else [
            c for c in LABELS if c in df.columns and c not in costs and c not in
            ("flops_per_sample", "train_time_s", "compute_budget", "train_samples")]
        if not costs or not qual:
            raise ValueError(f"Got columns {list(df.columns)}, expected at least one of "
                             f"{list(_COSTS)} and one quality column such as 'ssim_phase'")
        for column, role, allowed in ((x, "x", costs), (y, "y", qual)):
            if column is not None and column not in allowed:
                raise ValueError(f"Got {role}={column!r}, expected one of {allowed}")
        self.hue = hue if hue is not None else (_TRANSFORM if _TRANSFORM in df.columns else None)
        c: dict[str, Any] = {}
        for name, column, desc in (("max_params", "model_params", "max params"),
                                   ("max_inference_time", "inference_time_s", "max time (s)")):
            v = df[column].to_numpy(float) if column in df.columns else np.array([])
            v = v[np.isfinite(v) & (v > 0)]
            if v.size:
                lo, hi = np.log10(v.min()), np.log10(v.max())
                c[name] = w.FloatLogSlider(value=v.max(), min=lo, max=max(hi, lo + 1e-9),
                                           step=(hi - lo) / 100 or 0.01, description=desc,
                                           readout_format=".3g")
        c["min_quality"] = w.FloatSlider(description="quality", readout_format=".4g")
        for name, column, desc in (("architectures", _ARCH, "architecture"),
                                   ("transforms", _TRANSFORM, "input transform")):
            if column in df.columns:
                opts = sorted(df[column].dropna().astype(str).unique())
                c[name] = w.SelectMultiple(options=opts, value=tuple(opts), description=desc,
                                           rows=min(len(opts), 4) or 1)
        c["x"] = w.Dropdown(options=[(axis_label(k), k) for k in costs], value=x or costs[0],
                            description="x")
        c["y"] = w.Dropdown(options=[(axis_label(k), k) for k in qual], value=y or qual[0],
                            description="y")
        self.controls = c
        self.image = w.Image(format="png")
        self.table = w.HTML()
        self._busy = False
        self._reset_quality()
        for control in c.values():
            control.observe(self._on_change, names="value")
        sliders = [c[k] for k in ("max_params", "max_inference_time", "min_quality") if k in c]
        pickers = [c[k] for k in ("architectures", "transforms", "x", "y") if k in c]
        self.widget = w.VBox([w.HBox(sliders), w.HBox(pickers), self.image, self.table])
        self.refresh()

    def _reset_quality(self) -> None:
        """Quality slider spans the y metric, starting at its worst value (no limit)."""
        y, s = self.controls["y"].value, self.controls["min_quality"]
        v = self.df[y].to_numpy(float)
        v = v[np.isfinite(v)]
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        s.min, s.max = min(lo, s.min), max(hi, s.max)  # widen first: min <= max always
        s.min, s.max, s.step = lo, hi, (hi - lo) / 200
        s.value = lo if metric_direction(y) == "max" else hi
        s.description = f"{'min' if metric_direction(y) == 'max' else 'max'} {y}"

    def _on_change(self, change: dict) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if change["owner"] is self.controls["y"]:
                self._reset_quality()
        finally:
            self._busy = False
        self.refresh()

    def filters(self) -> dict[str, Any]:
        """Current keyword arguments for `filter_results`; a control at its loosest is None."""
        c, out = self.controls, {"quality": self.controls["y"].value}
        for name in ("max_params", "max_inference_time"):
            if name in c:
                top = c[name].base ** c[name].max
                out[name] = None if c[name].value >= top * (1 - 1e-9) else c[name].value
        q = c["min_quality"]
        loosest = q.min if metric_direction(out["quality"]) == "max" else q.max
        out["min_quality"] = None if q.value == loosest else q.value
        for name in ("architectures", "transforms"):
            if name in c:
                chosen = c[name].value
                out[name] = None if set(chosen) == set(c[name].options) else list(chosen)
        return out

    def refresh(self) -> None:
        """Recompute the filtered rows, the front, the plot and the table."""
        x, y = self.controls["x"].value, self.controls["y"].value
        self.current = filter_results(self.df, **self.filters())
        fig = Figure(figsize=(7.0, 4.5), layout="constrained")
        self.figure, self.axes = fig, fig.add_subplot()
        plot_pareto(self.current, x, y, hue=self.hue, ax=self.axes)
        valid = _plottable(self.current, x, y)
        mask = pareto_front(valid, {x: metric_direction(x), y: metric_direction(y)})
        self.current_front = valid[mask].sort_values([x, y])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        self.image.value = buf.getvalue()
        cols = [k for k in (*_ID_COLUMNS, *_COSTS, y) if k in self.current_front.columns]
        self.table.value = self.current_front[list(dict.fromkeys(cols))].to_html(
            index=False, float_format="{:.4g}".format)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
