"""A planned sweep: :class:`SweepPlan`, every experiment visible (and costed) before anything trains."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from flops_fit.planning.common import REPEAT_EPOCHS, SIX_N, fmt, jsonable
from flops_fit.planning.experiment import Experiment
from flops_fit.user_model import build_at_size

__all__ = ["SweepPlan"]


@dataclass(frozen=True, repr=False)
class SweepPlan:
    """A planned sweep: every experiment, visible before anything trains.

    Attributes
    ----------
    experiments : tuple of Experiment
    budgets : tuple of float or None
        Compute budgets in FLOPs (IsoFLOP plans), ascending; None for grids.
    model : str or None
        Name of the model class.
    size_param : str or None
        Name of the size argument.
    model_kwargs : dict
        The other constructor arguments.
    kind : {"isoflop", "grid"}
    flops_rule : {"measured", "6N"} or None
        How FLOPs per sample were counted: ``3 × forward_flops`` on the sample
        input, or ``6 · N · tokens_per_sample`` (Kaplan et al. 2020).
    tokens_per_sample : float
        Tokens in one sample (1 for non-token data).
    train_set_size : int or None
        Distinct training samples available (set by ``find_optimal`` from the
        dataset): :meth:`to_frame` then shows each run's passes over them.
    model_cls, sample_input
        What :func:`plan_sweep` received, kept (not serialised, not compared)
        so :meth:`estimate_time` can build the models.
    """

    experiments: tuple[Experiment, ...]
    budgets: tuple[float, ...] | None = None
    model: str | None = None
    size_param: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    kind: Literal["isoflop", "grid"] = "isoflop"
    flops_rule: Literal["measured", "6N"] | None = None
    tokens_per_sample: float = 1.0
    train_set_size: int | None = None
    model_cls: Callable[..., torch.nn.Module] | None = field(default=None, compare=False)
    sample_input: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "experiments", tuple(self.experiments))
        if self.budgets is not None:
            object.__setattr__(self, "budgets", tuple(float(b) for b in self.budgets))
        if self.kind not in ("isoflop", "grid"):
            raise ValueError(f"Got kind={self.kind!r}, expected one of ['isoflop', 'grid']")
        ids = [e.experiment_id for e in self.experiments]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"SweepPlan has repeated experiments (same config): {repeated}")

    @property
    def compute_budgets(self) -> list[float] | None:
        """The budgets as a list (flops-fit's name for :attr:`budgets`)."""
        return None if self.budgets is None else list(self.budgets)

    @property
    def num_experiments(self) -> int:
        """Number of experiments."""
        return len(self.experiments)

    def __len__(self) -> int:
        return len(self.experiments)

    @property
    def total_flops(self) -> float | None:
        """Training FLOPs of the whole plan (sum of D × FLOPs per sample); None for grids."""
        flops = [e.train_flops for e in self.experiments]
        if not flops or any(f is None for f in flops):
            return None
        return float(sum(flops))

    def configs(self) -> list[dict[str, Any]]:
        """One flat config dict per experiment, what :func:`flops_fit.runner.run_sweep` takes."""
        return [e.config() for e in self.experiments]

    def to_frame(self) -> pd.DataFrame:
        """One row per experiment: id, config, and for IsoFLOP plans the cost columns.

        IsoFLOP plans add ``samples_per_param`` (D/N), ``train_flops``,
        ``flops_vs_6N`` (FLOPs per sample over ``6 · N · tokens_per_sample``:
        1 under the 6N rule; for measured plans it shows what 6N misses, e.g.
        attention and weight reuse in convolutions), ``flops_per_token`` when
        a sample holds several tokens, and ``epochs`` (passes over the
        training set) when :attr:`train_set_size` is known. Columns an
        experiment does not have are left out or NaN.
        """
        rows = []
        for e in self.experiments:
            row = {"experiment_id": e.experiment_id, **e.config()}
            if e.compute_budget is not None:
                row["samples_per_param"] = e.samples_per_param
                row["train_flops"] = e.train_flops
                row.update(self._cost(e))
            rows.append(row)
        frame = pd.DataFrame(rows)
        if self.kind == "isoflop" and rows:
            first = ["experiment_id", "compute_budget", self.size_param, "model_params",
                     "train_samples", "samples_per_param", "flops_per_sample", "train_flops",
                     "flops_vs_6N", "flops_per_token", "epochs"]
            first = [c for c in first if c in frame.columns]
            frame = frame[first + [c for c in frame.columns if c not in first]]
        return frame

    def _cost(self, e: Experiment) -> dict[str, float]:
        out = {}
        if e.flops_per_sample is not None and e.model_params:
            out["flops_vs_6N"] = e.flops_per_sample / (SIX_N * e.model_params * self.tokens_per_sample)
            if self.tokens_per_sample != 1:
                out["flops_per_token"] = e.flops_per_sample / self.tokens_per_sample
        if self.train_set_size and e.train_samples is not None:
            out["epochs"] = e.train_samples / self.train_set_size
        return out

    def repeat_note(self, max_epochs: float = REPEAT_EPOCHS) -> str | None:
        """A sentence on runs that pass over the training set more than ``max_epochs`` times, or None.

        Muennighoff et al. (2023) find repeated data worth about as much as
        fresh data up to ~4 epochs and quickly less beyond: there the fit's D
        (samples seen) no longer means what Chinchilla's D (distinct tokens)
        means.
        """
        if not self.train_set_size:
            return None
        epochs = [e.train_samples / self.train_set_size for e in self.experiments if e.train_samples]
        many = [x for x in epochs if x > max_epochs]
        if not many:
            return None
        return (f"{len(many)} of {len(epochs)} runs pass over the {self.train_set_size} training samples "
                f"more than {max_epochs:g} times (up to {max(many):.3g}); beyond ~4 epochs repeated data is "
                "worth less than fresh data (Muennighoff et al. 2023), so D there is not Chinchilla's D "
                "(distinct tokens): use more data or smaller budgets")

    def __repr__(self) -> str:
        n = self.num_experiments
        if self.kind == "grid":
            axes = list(self.experiments[0].hparams) if self.experiments else []
            lines = [f"SweepPlan: grid of {n} experiments over {', '.join(axes)}"]
            table = self.to_frame().drop(columns="experiment_id")
        else:
            kwargs = f" (model_kwargs={self.model_kwargs})" if self.model_kwargs else ""
            budgets = ", ".join(fmt(b) for b in self.budgets or ())
            total = self.total_flops
            lines = [
                f"SweepPlan: IsoFLOP sweep of {self.model} over {self.size_param}{kwargs}",
                f"  budgets (FLOPs): {budgets}",
                f"  {n} experiments, {fmt(total) if total else 0} training FLOPs in total",
            ]
            names = {"compute_budget": "budget", self.size_param: self.size_param, "model_params": "params",
                     "train_samples": "samples", "samples_per_param": "samples/param",
                     "flops_per_sample": "FLOPs/sample", "flops_per_token": "FLOPs/token",
                     "flops_vs_6N": "FLOPs/6N", "epochs": "epochs"}
            frame = self.to_frame()
            table = frame[[c for c in names if c in frame.columns]].rename(columns=names)
        if n:
            lines.append(table.to_string(index=False, max_rows=20, float_format=fmt))
        if self.kind == "isoflop":
            lines += [f"  note: {note}" for note in self._notes()]
        return "\n".join(lines)

    def _notes(self) -> list[str]:
        notes = []
        if self.flops_rule == "6N":
            per = f" x {self.tokens_per_sample:g} tokens per sample" if self.tokens_per_sample != 1 else ""
            notes.append(f"FLOPs per sample are 6·N per token{per} (Kaplan et al. 2020), N from "
                         f"{self.model}'s parameter count or num_params(); nothing was run")
        elif self.flops_rule == "measured":
            notes.append("FLOPs per sample are 3 x forward FLOPs measured on the sample input "
                         "(FLOPs/6N compares them with the 6·N rule)")
        repeat = self.repeat_note()
        return notes + ([repeat] if repeat else [])

    def _repr_html_(self) -> str:
        # Jupyter: the summary lines, then the full table (up to 60 rows) as HTML.
        import html

        head = repr(self).splitlines()[: 1 if self.kind == "grid" else 3]
        table = self.to_frame().to_html(index=False, max_rows=60, float_format=fmt)
        return f"<pre>{html.escape(chr(10).join(head))}</pre>{table}"

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise the plan (not ``model_cls``/``sample_input``); write to ``path`` if given.

        Model kwargs that JSON cannot hold (classes, functions) are stored as
        their repr, so they do not round-trip; the experiments always do.
        """
        data = {
            "kind": self.kind,
            "model": self.model,
            "size_param": self.size_param,
            "model_kwargs": {k: jsonable(v) for k, v in self.model_kwargs.items()},
            "budgets": list(self.budgets) if self.budgets is not None else None,
            "flops_rule": self.flops_rule,
            "tokens_per_sample": self.tokens_per_sample,
            "train_set_size": self.train_set_size,
            "experiments": [asdict(e) for e in self.experiments],
        }
        text = json.dumps(data, indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> SweepPlan:
        """Read a plan written by :meth:`to_json`: JSON text, or a path to a file of it."""
        text = source
        if isinstance(source, Path) or not str(source).lstrip().startswith("{"):
            text = Path(source).read_text()
        data = json.loads(text)
        allowed = {"kind", "model", "size_param", "model_kwargs", "budgets", "experiments",
                   "flops_rule", "tokens_per_sample", "train_set_size"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"Unknown keys in a SweepPlan JSON: {unknown}, expected {sorted(allowed)}")
        names = {f.name for f in fields(Experiment)}
        experiments = []
        for item in data.get("experiments", []):
            extra = sorted(set(item) - names)
            if extra:
                raise ValueError(f"Unknown keys in an experiment: {extra}, expected {sorted(names)}")
            experiments.append(Experiment(**item))
        return cls(
            experiments=tuple(experiments),
            budgets=data.get("budgets"),
            model=data.get("model"),
            size_param=data.get("size_param"),
            model_kwargs=data.get("model_kwargs") or {},
            kind=data.get("kind", "isoflop"),
            flops_rule=data.get("flops_rule"),
            tokens_per_sample=data.get("tokens_per_sample", 1.0),
            train_set_size=data.get("train_set_size"),
        )

    def estimate_time(
        self,
        device: str = "cpu",
        *,
        steps: int = 3,
        batch_size: int = 8,
        builder: Callable[[dict[str, Any]], tuple[torch.nn.Module, Any]] | None = None,
        samples: int | Callable[[dict[str, Any]], int] | None = None,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Time a few training steps per distinct model and extrapolate to every experiment.

        Parameters
        ----------
        device : str
            Where to time (``"cpu"``, ``"cuda"``, ``"mps"``).
        steps : int
            Timed AdamW steps per distinct model (after one warm-up step); the
            median is used.
        batch_size : int
            Samples per timed step (the sample input's first item is repeated).
        builder : callable, optional
            ``builder(config) -> (model, sample_input)``. Default for plans from
            :func:`plan_sweep` given a ``sample_input``: the planned model at
            the experiment's size and that input. Grid plans (and plans read
            from JSON) need one.
        samples : int or callable, optional
            Training samples to extrapolate to: default the planned
            ``train_samples``; for grid plans an int or ``samples(config)``
            (e.g. ``lambda c: c["epochs"] * 4096``).
        by : sequence of str, optional
            Config keys that determine the model, so each distinct model is
            timed once. Default: every key except budget, N, D, FLOPs and seed.

        Returns
        -------
        pandas.DataFrame
            :meth:`to_frame` plus ``seconds_per_sample`` and
            ``estimated_time_s``; ``frame.attrs["total_time_s"]`` is the sum.
            Noisy on a shared machine; a planning aid, not a promise.
        """
        from flops_fit.training import time_train_step  # training is heavier than planning

        if builder is None:
            builder = self._default_builder()
        frame = self.to_frame()
        configs = self.configs()
        skip = {"compute_budget", "model_params", "train_samples", "flops_per_sample", "seed"}
        per_sample: dict[str, float] = {}
        seconds, estimates = [], []
        for experiment, config in zip(self.experiments, configs, strict=True):
            keys = list(by) if by is not None else [k for k in config if k not in skip]
            key = json.dumps({k: config.get(k) for k in keys}, sort_keys=True)
            if key not in per_sample:
                model, sample_input = builder(config)
                per_sample[key] = time_train_step(
                    model, sample_input, device=device, steps=steps, batch_size=batch_size
                )
            n = self._samples_for(experiment, config, samples)
            seconds.append(per_sample[key])
            estimates.append(per_sample[key] * n)
        frame["seconds_per_sample"] = seconds
        frame["estimated_time_s"] = estimates
        frame.attrs["total_time_s"] = float(sum(estimates))
        return frame

    def _default_builder(self) -> Callable[[dict[str, Any]], tuple[torch.nn.Module, Any]]:
        if self.model_cls is None or self.sample_input is None or self.size_param is None:
            raise ValueError(
                "estimate_time needs a way to build each model: pass "
                "builder=lambda config: (model, sample_input), or plan with "
                "plan_sweep(..., sample_input=...)"
            )
        model_cls, size_param, kwargs, x = self.model_cls, self.size_param, self.model_kwargs, self.sample_input
        return lambda config: (build_at_size(model_cls, size_param, config[size_param], kwargs), x)

    @staticmethod
    def _samples_for(experiment: Experiment, config: dict[str, Any], samples: Any) -> int:
        if callable(samples):
            return int(samples(config))
        if samples is not None:
            return int(samples)
        if experiment.train_samples is None:
            raise ValueError(
                "grid experiments have no planned train_samples; pass samples=<int> "
                "or samples=lambda config: <samples>"
            )
        return experiment.train_samples
