"""The result of a scaling-law fit: :class:`Result`.

A `Result` holds the fitted parameters (point estimate and bootstrap samples)
and answers the questions a study asks: the compute-optimal model size,
data and loss for a budget (`predict`, `chinchilla_table`), a figure of the
IsoFLOP curves and the frontier (`plot`), and a JSON round trip. The closed
forms it evaluates (``C = k N D``, the Chinchilla loss) are :mod:`flops_fit.laws`.

Named ``fit_result`` so it cannot be mistaken for :mod:`flops_fit.results`,
the on-disk record of a sweep.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from flops_fit.laws import PARAM_NAMES, chinchilla_loss, law_at, percentile_interval

__all__ = ["Result"]

_FORMAT = "flops_fit.Result/1"


def _jsonable(x: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN); numpy scalars become Python."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _frame_from_json(d: dict | None) -> pd.DataFrame | None:
    if d is None:
        return None
    return pd.DataFrame({k: [np.nan if v is None else v for v in col] for k, col in d.items()})


@dataclass(frozen=True, eq=False)
class Result:
    """A fitted scaling law, its uncertainty and the data it came from.

    Attributes
    ----------
    method : {"parametric", "isoflop"}
        Approach 3 (``L = E + A/N**alpha + B/D**beta``) or Approach 2
        (``N_opt = k_N C**a``, ``D_opt = k_D C**b``, ``L_opt = k_L C**c``).
    params : dict
        Point estimates by name.
    bootstrap : dict
        Bootstrap samples per parameter (NaN where a resample failed); empty
        when no bootstrap was run, and then intervals are NaN.
    flops_per_sample_per_param : float
        ``k`` in ``C = k N D`` used to turn budgets into allocations.
    ci_level : float
        Coverage of the percentile intervals.
    converged : bool
        Whether the point-estimate optimisation reported success.
    message : str
        Optimiser message and warnings, for the record.
    data : DataFrame
        Fitted points: ``budget`` (FLOPs, NaN if unknown), ``N``, ``D``, ``loss``.
    budgets : DataFrame or None
        Approach 2 only: one row per budget with the parabola minimum and
        whether it is interior (used for the power laws).
    """

    method: Literal["parametric", "isoflop"]
    params: dict[str, float]
    bootstrap: dict[str, np.ndarray]
    flops_per_sample_per_param: float
    data: pd.DataFrame
    ci_level: float = 0.95
    converged: bool = True
    message: str = ""
    budgets: pd.DataFrame | None = field(default=None)

    def __post_init__(self) -> None:
        if self.method not in PARAM_NAMES:
            raise ValueError(f"Got method={self.method!r}, expected one of {list(PARAM_NAMES)}")
        names = set(PARAM_NAMES[self.method])
        if set(self.params) != names:
            raise ValueError(
                f"Got params {sorted(self.params)} for method={self.method!r}, "
                f"expected {sorted(names)}"
            )

    # --- parameters -------------------------------------------------------------------
    @property
    def n_bootstrap(self) -> int:
        """Number of bootstrap resamples (0 when none)."""
        return len(next(iter(self.bootstrap.values()))) if self.bootstrap else 0

    def _derived(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if self.method == "parametric":
            s = p["alpha"] + p["beta"]
            return {**p, "a": p["beta"] / s, "b": p["alpha"] / s}
        return dict(p)

    @property
    def exponents(self) -> dict[str, float]:
        """Frontier exponents: ``N_opt ~ C**a``, ``D_opt ~ C**b``."""
        d = self._derived(self.params)
        return {"a": float(d["a"]), "b": float(d["b"])}

    def _interval(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval over axis 0, ignoring failed (NaN) resamples."""
        return percentile_interval(samples, self.ci_level)

    @property
    def ci(self) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile interval of every parameter and exponent."""
        point = self._derived(self.params)
        boot = self._derived({k: np.asarray(v, float) for k, v in self.bootstrap.items()})
        out = {}
        for name in point:
            lo, hi = self._interval(np.asarray(boot.get(name, np.empty(0)), float))
            out[name] = (float(lo), float(hi))
        return out

    def summary(self) -> pd.DataFrame:
        """Parameters and exponents with their intervals (one row each)."""
        point, ci = self._derived(self.params), self.ci
        return pd.DataFrame(
            {"estimate": [float(point[n]) for n in point],
             "ci_low": [ci[n][0] for n in point], "ci_high": [ci[n][1] for n in point]},
            index=pd.Index(list(point), name="parameter"),
        )

    # --- predictions ------------------------------------------------------------------
    def predict(self, C: ArrayLike) -> pd.DataFrame:
        """Compute-optimal size, data and loss for budgets ``C``, with intervals.

        Parameters
        ----------
        C : float or array_like
            Training compute budgets (FLOPs), positive.

        Returns
        -------
        DataFrame
            One row per budget: ``compute_budget``, ``N_opt`` (parameters),
            ``D_opt`` (samples), ``loss_opt`` and their ``*_low`` / ``*_high``
            bootstrap bounds (NaN without bootstrap).
        """
        C = np.atleast_1d(np.asarray(C, float))
        if C.ndim != 1 or not np.all(np.isfinite(C) & (C > 0)):
            raise ValueError(f"Got C={C.tolist()}, expected positive finite FLOPs")
        k = self.flops_per_sample_per_param
        boot = {n: np.asarray(v, float)[:, None] for n, v in self.bootstrap.items()}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            point = law_at(self.method, self.params, C, k)
            samples = law_at(self.method, boot, C, k) if boot else [np.empty((0, C.size))] * 3
        samples = [np.broadcast_to(np.asarray(smp, float), (len(samples[0]), C.size)) for smp in samples]
        fitted = np.all(np.isfinite(np.hstack(list(boot.values()))), axis=1) if boot else np.zeros(0, bool)
        overflow = fitted & ~np.all(np.isfinite(np.hstack(samples)), axis=1) if boot else fitted
        if overflow.any():
            warnings.warn(f"{int(overflow.sum())} of {len(overflow)} bootstrap resamples overflow at "
                          f"C = {C.max():.3g} FLOPs; they are NaN in the intervals", UserWarning, stacklevel=2)
        samples = [np.where(np.isfinite(smp), smp, np.nan) for smp in samples]
        out = {"compute_budget": C}
        for name, est, smp in zip(("N_opt", "D_opt", "loss_opt"), point, samples, strict=True):
            lo, hi = self._interval(np.asarray(smp, float))
            out[name], out[f"{name}_low"], out[f"{name}_high"] = est, lo, hi
        return pd.DataFrame(out)

    def chinchilla_table(self, budgets: ArrayLike | None = None) -> pd.DataFrame:
        """Hoffmann et al. (2022) Table 3 for this fit: optimum per budget.

        Parameters
        ----------
        budgets : array_like, optional
            Compute budgets (FLOPs). Default: every decade from the smallest
            fitted budget to 100 x the largest (the last two are extrapolation).

        Returns
        -------
        DataFrame
            `predict` columns plus ``D_per_N`` (samples per parameter), indexed
            by ``compute_budget``; ``.to_markdown()`` renders it.
        """
        if budgets is None:
            C = self._data_budgets()
            lo, hi = np.floor(np.log10(C.min())), np.ceil(np.log10(C.max())) + 2
            budgets = 10.0 ** np.arange(lo, hi + 1)
        table = self.predict(budgets)
        table["D_per_N"] = table["D_opt"] / table["N_opt"]
        return table.set_index("compute_budget")

    def _data_budgets(self) -> np.ndarray:
        """Budget of each fitted point: given, else ``k N D``."""
        d = self.data
        C = d["budget"].to_numpy(float)
        implied = self.flops_per_sample_per_param * d["N"].to_numpy(float) * d["D"].to_numpy(float)
        return np.where(np.isfinite(C), C, implied)

    # --- figure -----------------------------------------------------------------------
    def plot(self, *, figsize: tuple[float, float] = (11.0, 4.2)) -> Figure:
        """IsoFLOP curves with fitted minima (left) and the frontier (right)."""
        return _plot_result(self, figsize)

    # --- persistence ------------------------------------------------------------------
    def to_json(self) -> str:
        """Serialise to a JSON string (NaN written as null)."""
        doc = {
            "format": _FORMAT, "method": self.method, "params": self.params,
            "bootstrap": {k: np.asarray(v, float) for k, v in self.bootstrap.items()},
            "flops_per_sample_per_param": self.flops_per_sample_per_param,
            "ci_level": self.ci_level, "converged": self.converged, "message": self.message,
            "data": self.data.to_dict(orient="list"),
            "budgets": None if self.budgets is None else self.budgets.to_dict(orient="list"),
        }
        return json.dumps(_jsonable(doc))

    @classmethod
    def from_json(cls, text: str) -> Result:
        """Inverse of `to_json`."""
        doc = json.loads(text)
        if doc.get("format") != _FORMAT:
            raise ValueError(f"Got format={doc.get('format')!r}, expected {_FORMAT!r}")
        nan = lambda v: np.nan if v is None else v  # noqa: E731
        return cls(
            method=doc["method"], params={k: float(v) for k, v in doc["params"].items()},
            bootstrap={k: np.array([nan(x) for x in v], float) for k, v in doc["bootstrap"].items()},
            flops_per_sample_per_param=float(doc["flops_per_sample_per_param"]),
            data=_frame_from_json(doc["data"]), ci_level=float(doc["ci_level"]),
            converged=bool(doc["converged"]), message=doc["message"],
            budgets=_frame_from_json(doc["budgets"]),
        )

    def save(self, path: str | Path) -> Path:
        """Write `to_json` to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Read a file written by `save`."""
        return cls.from_json(Path(path).read_text())


def _groups(result: Result) -> list[tuple[float, pd.DataFrame]]:
    """Fitted points split by budget (given, else ``k N D`` rounded to 0.1 decade)."""
    C = result._data_budgets()
    given = np.isfinite(result.data["budget"].to_numpy(float))
    key = np.where(given, C, 10.0 ** np.round(np.log10(C), 1))
    return [(float(c), result.data[key == c]) for c in np.unique(key)]


def _plot_result(result: Result, figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    ax_iso, ax_front = fig.subplots(1, 2)
    groups = _groups(result)
    logc = np.log10([c for c, _ in groups])
    norm = (logc - logc.min()) / max(np.ptp(logc), 1e-12)
    colors = colormaps["viridis"](0.9 * norm)
    k = result.flops_per_sample_per_param
    for (C, g), color in zip(groups, colors, strict=True):
        N = g["N"].to_numpy(float)
        ax_iso.scatter(N, g["loss"], s=14, color=color, alpha=0.7, label=f"{C:.1e} FLOPs")
        grid = np.geomspace(N.min(), N.max(), 100)
        if result.method == "parametric" and len(groups) <= 12:
            p = result.params
            ax_iso.plot(grid, chinchilla_loss(grid, C / (k * grid), **p), color=color, lw=1)
            n_opt, d_opt, l_opt = law_at("parametric", p, np.array(C), k)
            ax_iso.plot(n_opt, l_opt, "*", color=color, ms=11, mec="k")
    if result.method == "isoflop" and result.budgets is not None:
        for row, color in zip(result.budgets.itertuples(), colors, strict=False):
            if not np.isfinite(row.c2):
                continue
            x = np.linspace(row.x_min, row.x_max, 100)
            z = (x - row.x_mean) / row.x_scale
            ax_iso.plot(np.exp(x), row.c0 + row.c1 * z + row.c2 * z * z, color=color, lw=1)
            if np.isfinite(row.N_opt):
                face = color if row.interior else "none"
                ax_iso.plot(row.N_opt, row.loss_opt, "*", ms=11, mfc=face, mec="k")
    ax_iso.set(xscale="log", xlabel="parameters N", ylabel="loss",
               title="IsoFLOP curves (stars: minima; hollow: not used)")
    ax_iso.legend(fontsize=7, title="budget", title_fontsize=7)

    C_all = result._data_budgets()
    C = np.geomspace(C_all.min(), C_all.max() * 100.0, 60)
    pred = result.predict(C)
    for name, style, label in (("N_opt", "-", "N* (parameters)"), ("D_opt", "--", "D* (samples)")):
        line = ax_front.plot(C, pred[name], style, label=label)[0]
        ax_front.fill_between(C, pred[f"{name}_low"], pred[f"{name}_high"],
                              color=line.get_color(), alpha=0.2, lw=0)
        if result.method == "isoflop" and result.budgets is not None:
            b = result.budgets
            ok = b["interior"].to_numpy(bool)
            ax_front.plot(b["budget"][ok], b[name][ok], "o", color=line.get_color())
            ax_front.plot(b["budget"][~ok], b[name][~ok], "o", mfc="none",
                          color=line.get_color())
        else:  # optima at the fitted budgets, to show where the data end
            at = result.predict([c for c, _ in groups])
            ax_front.plot(at["compute_budget"], at[name], "*", color=line.get_color())
    a, b_exp = result.exponents["a"], result.exponents["b"]
    ax_front.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
                 ylabel="compute-optimal allocation",
                 title=rf"frontier: $N^*\propto C^{{{a:.3f}}}$, $D^*\propto C^{{{b_exp:.3f}}}$")
    ax_front.legend(fontsize=8)
    return fig
