"""The interactive Pareto explorer: sliders and pickers filter the runs, a picked run is shown.

`ParetoExplorer` wires ipywidgets to pure functions that the tests call
without widgets: `flops_fit.pareto.filter_results` and `pareto_front` for the
rows, and from :mod:`flops_fit.explorer_parts` `quality_range` and
`log_range` for the sliders, `run_label` and `run_details` for the run beside
the plot (re-exported here).

Two facts about the browser shape the slider code. A slider's range, step
and value reach the browser in one message (``hold_sync``): sent one by one,
the browser clamps the old value into a half-moved range and sends the
clamped value back, which hides runs nobody excluded. And the browser snaps a
value to its step grid, so a slider within half a step of its loosest end
means "no limit".
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flops_fit.explorer_parts import (
    FILTERED_COLUMNS,
    PREVIEW_NAME,
    QualityRange,
    RunDetails,
    describe_filters,
    kv_table,
    log_range,
    quality_range,
    run_details,
    run_label,
    shown,
)
from flops_fit.pareto import (
    axis_label,
    category_columns,
    cost_columns,
    filter_results,
    finite_rows,
    metric_direction,
    pareto_front,
    plot_pareto,
    quality_columns,
    run_table,
)
from flops_fit.records import load_records

__all__ = [
    "PREVIEW_NAME",
    "ParetoExplorer",
    "QualityRange",
    "RunDetails",
    "describe_filters",
    "explore",
    "log_range",
    "quality_range",
    "run_details",
    "run_label",
]

# Plot size in pixels: beside a 360-px-wide reconstruction.png it fits JupyterLab's
# notebook width at 1400 px (narrower windows wrap the picture below the plot).
_PLOT_PX, _DPI = (576, 396), 90


def _controls(df: pd.DataFrame, costs: list[str], qualities: list[str], *, x: str, y: str,
              hues: list[str], hue: str) -> dict[str, Any]:
    """The explorer's sliders and pickers, by name; those whose column is missing left out.

    Sliders redraw on release (``continuous_update=False``): a drag would queue
    a plot per step, and a browser with continuous updates on sends the kernel
    back every value it snaps or clamps, even of changes the kernel made.
    Descriptions keep their whole width (the browser cuts them at 80 px).
    """
    import ipywidgets as w

    style = {"description_width": "initial"}
    c: dict[str, Any] = {}
    for name, column, desc in (("max_params", "model_params", "max parameters"),
                               ("max_inference_time", "inference_time_s", "max inference time (s)")):
        span = log_range(df[column]) if column in df.columns else None
        if span is not None:
            lo, hi, step = span
            c[name] = w.FloatLogSlider(value=10**hi, min=lo, max=hi, step=step, description=desc,
                                       readout_format=".3g", continuous_update=False, style=style)
    r = quality_range(df, y)
    c["min_quality"] = w.FloatSlider(value=r.loosest, min=r.min, max=r.max, step=r.step,
                                     description=r.description, readout_format=".4g",
                                     continuous_update=False, style=style)
    for name, column in FILTERED_COLUMNS.items():
        if column in df.columns:
            opts = sorted(df[column].dropna().astype(str).unique())
            c[name] = w.SelectMultiple(options=opts, value=tuple(opts), style=style,
                                       description=axis_label(column).replace("_", " "),
                                       rows=max(2, min(len(opts), 4)))
    c["x"] = w.Dropdown(options=[(axis_label(k), k) for k in costs], value=x, description="x",
                        style=style)
    c["y"] = w.Dropdown(options=[(axis_label(k), k) for k in qualities], value=y, description="y",
                        style=style)
    c["hue"] = w.Dropdown(options=[("(none)", ""), *((k.replace("_", " "), k) for k in hues)],
                          value=hue, description="colour by", style=style)
    for name, widget in c.items():
        widget.add_class(f"ff-{name.replace('_', '-')}")  # what the browser test finds them by
    return c


def explore(df: pd.DataFrame, **options: Any) -> ParetoExplorer:
    """Interactive Pareto explorer for a notebook; see `ParetoExplorer`."""
    return ParetoExplorer(df, **options)


class ParetoExplorer:
    """ipywidgets UI: limits and pickers -> filtered runs -> front, plot, table; a picked run.

    Sliders: max parameters, max inference time, the quality limit (a lower
    limit for metrics where higher is better, an upper one otherwise; it
    follows the y metric and starts at its loosest end); pickers:
    architecture, input transform, x (parameters | inference time | train
    FLOPs), y, colour; and a list of the front's runs: the picked one is ringed
    on the plot and its config, metrics and ``reconstruction.png`` are shown
    beside it. Controls whose column is missing are left out; no picker
    filters a run by itself. Every change recomputes ``current`` (filtered
    rows), ``current_front`` (its front, by x), ``selected`` (the picked
    row's index), ``details`` (a `RunDetails`), the plot (``axes``, and its
    PNG in ``image``), the ``status`` line and the front ``table``. Display the
    object (or ``.widget``) in a notebook.

    Parameters
    ----------
    df : DataFrame
        Results table (one row per run).
    x, y : str, optional
        Initial cost and quality columns (first available by default).
    hue : str, optional
        Initial colour column (``architecture`` when present); "" for none.
    qualities : sequence of str, optional
        Quality columns offered for y (default: `quality_columns`).
    results_dir : str or Path, optional
        The folder ``df`` was loaded from: its run log splits config from
        metrics, its ``runs/<id>/reconstruction.png`` are shown.
    """

    def __init__(self, df: pd.DataFrame, *, x: str | None = None, y: str | None = None,
                 hue: str | None = None, qualities: Iterable[str] | None = None,
                 results_dir: str | Path | None = None) -> None:
        import ipywidgets as w

        self.df = df
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.records = load_records(self.results_dir) if self.results_dir is not None else {}
        costs = cost_columns(df)
        qual = list(qualities) if qualities is not None else quality_columns(df)
        if not costs or not qual:
            raise ValueError(
                f"Got {len(df)} run(s) with costs {costs} and qualities {qual}, expected at least "
                "one run with a cost (model_params, inference_time_s, train_flops) and a quality")
        for column, role, allowed in ((x, "x", costs), (y, "y", qual)):
            if column is not None and column not in allowed:
                raise ValueError(f"Got {role}={column!r}, expected one of {allowed}")
        hues = category_columns(df)
        if hue not in (None, "", *hues):
            raise ValueError(f"Got hue={hue!r}, expected one of {['', *hues]}")
        self._categories = {c: sorted(df[c].dropna().astype(str).unique()) for c in hues}
        c = _controls(df, costs, qual, x=x or costs[0], y=y or qual[0], hues=hues,
                      hue=hue if hue is not None else (hues[0] if hues else ""))
        self.controls = c
        self.run_picker = w.Select(options=[], rows=5, layout=w.Layout(width="auto"))
        self.status = w.HTML()
        # Images keep their aspect (height auto): a flex row would stretch them to its height.
        self.image = w.Image(format="png", layout=w.Layout(width=f"{_PLOT_PX[0]}px",
                                                           max_width="100%", height="auto"))
        self.preview = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.details_html = w.HTML()
        self.table = w.HTML()
        self.selected: Any = None
        self._busy = False
        for widget, name in ((self.run_picker, "run"), (self.status, "status"), (self.image, "plot"),
                             (self.preview, "reconstruction"), (self.details_html, "details"),
                             (self.table, "front-table")):
            widget.add_class(f"ff-{name}")
        for control in c.values():
            control.observe(self._on_change, names="value")
        self.run_picker.observe(self._on_pick, names="value")
        sliders = [c[k] for k in ("max_params", "max_inference_time", "min_quality") if k in c]
        pickers = [c[k] for k in ("architectures", "transforms", "x", "y", "hue") if k in c]
        side = w.VBox([w.HTML("<b>Runs on the front</b> (pick one to see it)"), self.run_picker,
                       self.preview, self.details_html],
                      layout=w.Layout(flex="1 1 340px", min_width="300px", max_width="440px"))
        self.widget = w.VBox([self.status, w.HBox(sliders, layout=w.Layout(flex_flow="row wrap")),
                              w.HBox(pickers, layout=w.Layout(flex_flow="row wrap")),
                              w.HBox([self.image, side], layout=w.Layout(
                                  flex_flow="row wrap", align_items="flex-start")),
                              self.table])
        self.widget.add_class("ff-explorer")
        self.refresh()

    def _reset_quality(self) -> None:
        """Point the quality slider at the y metric, at its loosest end (no limit)."""
        r, s = quality_range(self.df, self.controls["y"].value), self.controls["min_quality"]
        with s.hold_sync():  # one message: the browser never sees a half-moved range
            s.min, s.max = min(r.min, s.min), max(r.max, s.max)  # widen first: min <= max always
            s.min, s.max, s.step = r.min, r.max, r.step
            s.value = r.loosest
            s.description = r.description

    def _on_change(self, change: dict) -> None:
        if self._busy:  # a control this explorer is setting itself: one refresh at the end
            return
        self._busy = True
        try:
            if change["owner"] is self.controls["y"]:
                self._reset_quality()
        finally:
            self._busy = False
        self.refresh()

    def _on_pick(self, change: dict) -> None:
        if not self._busy and change["new"] is not None:
            self.selected = change["new"]
            self.refresh()

    def filters(self) -> dict[str, Any]:
        """Current keyword arguments for `filter_results`; a control at its loosest is None."""
        c, out = self.controls, {"quality": self.controls["y"].value}
        for name in ("max_params", "max_inference_time"):
            if name in c:
                s = c[name]
                out[name] = None if np.log10(s.value) >= s.max - s.step / 2 else s.value
        q, r = c["min_quality"], quality_range(self.df, out["quality"])
        out["min_quality"] = None if abs(q.value - r.loosest) <= q.step / 2 else q.value
        for name in FILTERED_COLUMNS:
            if name in c:
                chosen = c[name].value
                out[name] = None if set(chosen) == set(c[name].options) else list(chosen)
        return out

    def _pick(self, front: pd.DataFrame, y: str) -> Any:
        """Keep the picked run while it is on the front; else the front's best y."""
        if front.empty:
            return None
        if self.selected in front.index:
            return self.selected
        return front[y].idxmax() if metric_direction(y) == "max" else front[y].idxmin()

    def refresh(self) -> None:
        """Recompute the filtered rows, the front, the picked run, the plot and the tables."""
        c = self.controls
        x, y, hue = c["x"].value, c["y"].value, c["hue"].value or None
        filters = self.filters()
        self.current = filter_results(self.df, **filters)
        valid = finite_rows(self.current, x, y)
        mask = pareto_front(valid, {x: metric_direction(x), y: metric_direction(y)})
        self.current_front = valid[mask].sort_values([x, y])
        self.selected = self._pick(self.current_front, y)
        status = (f"{len(valid)} of {len(self.df)} runs shown, "
                  f"{int(mask.sum())} on the Pareto front")
        self.status.value = (f"<b>{status}</b> <span class='ff-limits'>"
                             f"({html.escape(describe_filters(filters))})</span>")
        fig = Figure(figsize=(_PLOT_PX[0] / _DPI, _PLOT_PX[1] / _DPI), layout="constrained")
        self.figure, self.axes = fig, fig.add_subplot()
        plot_pareto(self.current, x, y, hue=hue, ax=self.axes, title=status,
                    categories=self._categories.get(hue) if hue else None)
        if self.selected is not None:
            row = self.current_front.loc[self.selected]
            self.axes.scatter([row[x]], [row[y]], s=220, facecolors="none", edgecolors="red",
                              linewidths=2, zorder=4, gid="selected", label="picked run")
            self.axes.legend(fontsize=8, title=hue, title_fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI)
        self.image.value = buf.getvalue()
        self.table.value = run_table(self.current_front, qualities=[y], sort_by=x).to_html(
            index=False, float_format="{:.4g}".format)
        self._show_run(y)

    def _show_run(self, y: str) -> None:
        """The list of front runs and the picked run's picture, config and metrics."""
        options = [(run_label(row, y, short=True), idx)
                   for idx, row in self.current_front.iterrows()]
        self._busy = True
        try:
            with self.run_picker.hold_sync():
                self.run_picker.options = options
                self.run_picker.value = self.selected
        finally:
            self._busy = False
        if self.selected is None:
            self.details = None
            self.preview.layout.display = "none"
            self.details_html.value = "<i>No run on the front with these limits.</i>"
            return
        row = self.current_front.loc[self.selected]
        eid = row.get("experiment_id")
        self.details = d = run_details(row, results_dir=self.results_dir,
                                       record=self.records.get(eid) if shown(eid) else None)
        self.preview.value = d.image.read_bytes() if d.image is not None else b""
        self.preview.layout.display = None if d.image is not None else "none"
        note = f"<p><i>{html.escape(d.note)}</i></p>" if d.note else ""
        self.details_html.value = (
            f"<div class='ff-run-title'><b>{html.escape(run_label(row, y))}</b></div>{note}"
            f"<div style='display:flex; flex-wrap:wrap; gap:0.5em; align-items:flex-start; "
            f"max-height:24em; overflow-y:auto'>"
            f"{kv_table('config', d.config, labels=False)}"
            f"{kv_table('metrics', d.metrics, labels=True)}</div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
