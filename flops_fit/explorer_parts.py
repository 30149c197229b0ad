"""The explorer's parts that need no widgets: slider ranges, the filters in words, a picked run.

`quality_range` and `log_range` set the sliders, `describe_filters` says in
words what the filters exclude, `run_label` names a run in one line and
`run_details` gathers its config, metrics and reconstruction preview
(`kv_table` renders them). Pure functions of a results table (and the run
folders), which the tests call without ipywidgets; :mod:`flops_fit.explorer`
wires them to the widgets.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.checks import is_int
from flops_fit.columns import LABELS, axis_label, metric_direction
from flops_fit.records import BOOKKEEPING_COLUMNS, RUNS_NAME

__all__ = [
    "FILTERED_COLUMNS",
    "PREVIEW_NAME",
    "QualityRange",
    "RunDetails",
    "describe_filters",
    "fmt_value",
    "kv_table",
    "log_range",
    "quality_range",
    "run_details",
    "run_label",
    "shown",
]

PREVIEW_NAME = "reconstruction.png"  # what a ptycho run leaves in runs/<experiment_id>/
_QUALITY_STEPS = 200  # quality slider resolution: 0.5 % of the metric's spread
_LOG_STEPS = 100  # log sliders: 1 % of the decades spanned
FILTERED_COLUMNS = {"architectures": "architecture", "transforms": "fno_input_transform"}


@dataclass(frozen=True)
class QualityRange:
    """Settings of the quality slider for one metric.

    ``loosest`` is the end that excludes no run: the minimum for a metric
    where higher is better (the slider is a lower limit), the maximum where
    lower is better (an upper limit).
    """

    min: float
    max: float
    step: float
    loosest: float
    description: str


def quality_range(df: pd.DataFrame, column: str) -> QualityRange:
    """Range, step and starting value of the quality slider for ``column``.

    Parameters
    ----------
    df : DataFrame
        The runs the explorer shows.
    column : str
        A quality column with a known direction (`metric_direction`).

    Returns
    -------
    QualityRange
        Spans the finite values of ``column`` (one unit above a single value,
        0 to 1 when there is none), starting at the loosest end.

    Examples
    --------
    >>> r = quality_range(pd.DataFrame({"mae_phase": [0.1, 0.3]}), "mae_phase")
    >>> r.loosest, r.description
    (0.3, 'max phase MAE (rad)')
    """
    higher_is_better = metric_direction(column) == "max"
    v = df[column].to_numpy(float) if column in df.columns else np.array([])
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = (lo, lo + 1.0) if higher_is_better else (hi - 1.0, hi)
    return QualityRange(
        min=lo, max=hi, step=(hi - lo) / _QUALITY_STEPS, loosest=lo if higher_is_better else hi,
        description=f"{'min' if higher_is_better else 'max'} {axis_label(column)}",
    )


def log_range(values: Iterable[float]) -> tuple[float, float, float] | None:
    """(min, max, step) in log10 units for a log slider over positive ``values``.

    A single distinct value gets a tenth of a decade around it (the browser's
    slider rejects an empty range); None when there is no finite positive value.
    """
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return None
    lo, hi = float(np.log10(v.min())), float(np.log10(v.max()))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    return lo, hi, (hi - lo) / _LOG_STEPS


def describe_filters(filters: Mapping[str, Any]) -> str:
    """The limits in a set of `filter_results` arguments, in words ("no limits" for none).

    >>> describe_filters({"max_params": 2e4, "min_quality": 0.3, "quality": "mae_phase",
    ...                   "architectures": ["fno"]})
    'parameters (real numbers) ≤ 2e+04 · phase MAE (rad) ≤ 0.3 · architecture: fno'
    """
    parts = [f"{axis_label(column)} ≤ {filters[name]:.3g}"
             for name, column in (("max_params", "model_params"),
                                  ("max_inference_time", "inference_time_s"))
             if filters.get(name) is not None]
    if filters.get("min_quality") is not None:
        q = filters.get("quality", "ssim_phase")
        sign = "≥" if metric_direction(q) == "max" else "≤"
        parts.append(f"{axis_label(q)} {sign} {filters['min_quality']:.4g}")
    for name, column in FILTERED_COLUMNS.items():
        if filters.get(name) is not None:
            parts.append(f"{column.replace('_', ' ')}: {', '.join(filters[name]) or '(none)'}")
    return " · ".join(parts) or "no limits"


def shown(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not np.isfinite(value))


def fmt_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if is_int(value):
        return f"{value:,}"
    return str(value)


def run_label(row: Mapping[str, Any], y: str, *, short: bool = False) -> str:
    """One line naming a run: what tells it apart, its size, its ``y`` and its id.

    ``short`` leaves out the metric's name and the id (for a list of runs).

    >>> row = {"architecture": "fno", "fno_width": 16, "fno_modes": 12,
    ...        "model_params": 606530, "ssim_phase": 0.8266, "experiment_id": "3818e71b10ea"}
    >>> run_label(row, "ssim_phase")
    'fno w16 m12 · 6.07e+05 params · phase SSIM 0.8266 · 3818e71b10ea'
    >>> run_label(row, "ssim_phase", short=True)
    'fno w16 m12 · 6.07e+05 params · 0.8266'
    """
    parts = [str(row[k]) for k in ("architecture",) if shown(row.get(k))]
    parts += [f"{p}{row[k]}" for k, p in (("fno_width", "w"), ("fno_modes", "m"))
              if shown(row.get(k))]
    transform = row.get("fno_input_transform")
    if shown(transform) and transform != "none":
        parts.append(str(transform))
    name = " ".join(parts)
    fields = [name] if name else []
    if shown(row.get("model_params")):
        fields.append(f"{float(row['model_params']):.3g} params")
    if shown(row.get(y)):
        fields.append(f"{float(row[y]):.4g}" if short else f"{axis_label(y)} {float(row[y]):.4g}")
    if shown(row.get("experiment_id")) and not short:
        fields.append(str(row["experiment_id"]))
    return " · ".join(fields)


@dataclass(frozen=True)
class RunDetails:
    """What the explorer shows of one run.

    ``config`` holds the hyperparameters, ``metrics`` the measurements (known
    metrics first, labelled), ``image`` the run's ``reconstruction.png`` when
    it left one, and ``note`` says why something is missing.
    """

    experiment_id: str | None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    image: Path | None = None
    note: str = ""


def _is_measurement(column: str) -> bool:
    try:
        metric_direction(column)
    except ValueError:
        return column in LABELS
    return True


def run_details(row: pd.Series, *, results_dir: str | Path | None = None,
                record: Mapping[str, Any] | None = None) -> RunDetails:
    """Config, metrics and reconstruction of the run in ``row``.

    Parameters
    ----------
    row : Series
        One row of a results table.
    results_dir : str or Path, optional
        The sweep folder; its ``runs/<experiment_id>/reconstruction.png`` is
        the picture shown.
    record : mapping, optional
        The run's record from ``runs.jsonl`` (`flops_fit.results.load_records`):
        its ``config`` and ``measurements`` split the row exactly. Without one,
        a column whose name gives a direction (or has a label) counts as a
        measurement and the rest as config.

    Returns
    -------
    RunDetails
        Missing values (NaN) are left out.
    """
    values = {k: v for k, v in row.items() if shown(v)}
    eid = str(values["experiment_id"]) if "experiment_id" in values else None
    skip = {*BOOKKEEPING_COLUMNS, *(k for k in values if str(k).startswith("version_"))}
    if record is not None:
        config = {k: v for k, v in record["config"].items() if shown(v)}
        measured = {k: v for k, v in record["measurements"].items() if shown(v)}
    else:
        config = {k: v for k, v in values.items() if k not in skip and not _is_measurement(k)}
        measured = {k: v for k, v in values.items() if k not in skip and _is_measurement(k)}
    order = [k for k in LABELS if k in measured] + [k for k in measured if k not in LABELS]
    metrics = {k: measured[k] for k in order}
    notes, image = [], None
    if results_dir is None or eid is None:
        notes.append("no results folder or experiment id given: no picture")
    else:
        path = Path(results_dir) / RUNS_NAME / eid / PREVIEW_NAME
        if path.is_file():
            image = path
        else:
            notes.append(f"no {PREVIEW_NAME} in {RUNS_NAME}/{eid}/")
    return RunDetails(eid, config, metrics, image, "; ".join(notes))


_CELL = "style='padding:0 0.4em; line-height:1.35'"


def kv_table(title: str, items: Mapping[str, Any], labels: bool) -> str:
    """A compact two-column HTML table (JupyterLab's default cells are roomy)."""
    rows = "".join(
        f"<tr><td {_CELL}>{html.escape(axis_label(k) if labels else str(k))}</td>"
        f"<td {_CELL[:-1]}; text-align:right'>{html.escape(fmt_value(v))}</td></tr>"
        for k, v in items.items())
    return (f"<table class='ff-{title}' style='font-size:85%; border-collapse:collapse'>"
            f"<thead><tr><th colspan='2' {_CELL[:-1]}; text-align:left'>{title}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
