"""One planned run: :class:`Experiment`, a flat config and the stable id hashed from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flops_fit.planning.common import SCALARS, scalar
from flops_fit.records import experiment_id

__all__ = ["Experiment"]


@dataclass(frozen=True)
class Experiment:
    """One planned run.

    Attributes
    ----------
    experiment_id : str
        12-hex hash of :meth:`config` (computed when left empty, checked when given).
    compute_budget : float or None
        Training budget C in FLOPs (None in grid plans).
    size_value : Any
        Value of the size argument (e.g. ``width=32``).
    model_params : int or None
        Parameters N of the model built at ``size_value``.
    train_samples : int or None
        Training samples D: ``round(C / flops_per_sample)``.
    samples_per_param : float or None
        D / N (computed when left empty).
    flops_per_sample : float or None
        Training FLOPs per sample (forward + backward).
    size_param : str or None
        Name of the size argument.
    model : str or None
        Name of the model class.
    hparams : dict
        Other config entries, all JSON scalars: the model kwargs, grid axes, seed.
    """

    experiment_id: str = ""
    compute_budget: float | None = None
    size_value: Any = None
    model_params: int | None = None
    train_samples: int | None = None
    samples_per_param: float | None = None
    flops_per_sample: float | None = None
    size_param: str | None = None
    model: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hparams", dict(self.hparams))  # a private copy: the id hashes it
        for key, value in self.hparams.items():
            if not isinstance(value, SCALARS):
                raise TypeError(
                    f"Got hparams[{key!r}]={value!r} ({type(value).__name__}), expected a str, int, float, bool or None"
                )
        taken = {k for k in self._fields() if k in self.hparams}
        if "experiment_id" in self.hparams or taken:
            raise ValueError(
                f"hparams may not use the names {sorted(taken | ({'experiment_id'} & set(self.hparams)))}, "
                "which the experiment sets itself"
            )
        if self.samples_per_param is None and self.train_samples and self.model_params:
            object.__setattr__(self, "samples_per_param", self.train_samples / self.model_params)
        expected = experiment_id(self.config())
        if not self.experiment_id:
            object.__setattr__(self, "experiment_id", expected)
        elif self.experiment_id != expected:
            raise ValueError(
                f"experiment_id {self.experiment_id!r} does not match its config (hash {expected!r})"
            )

    def _fields(self) -> dict[str, Any]:
        """The config entries this experiment sets itself (not None)."""
        own = {
            "model": self.model,
            "size_param": self.size_param,
            "compute_budget": self.compute_budget,
            "model_params": self.model_params,
            "train_samples": self.train_samples,
            "flops_per_sample": self.flops_per_sample,
        }
        if self.size_param is not None:
            own[self.size_param] = scalar(self.size_value)
        return {k: v for k, v in own.items() if v is not None}

    @property
    def train_flops(self) -> float | None:
        """Planned training FLOPs D × flops_per_sample (the budget up to rounding)."""
        if self.train_samples is None or self.flops_per_sample is None:
            return None
        return self.train_samples * self.flops_per_sample

    def config(self) -> dict[str, Any]:
        """Flat JSON-able dict the runner hashes and passes to the training function.

        Holds the model name, ``size_param`` and the size under its own name
        (``"width": 32``), the model kwargs / grid values, and the budget, N,
        D and FLOPs per sample when planned. Not the id (it is the hash of this).
        """
        own = self._fields()
        head = {k: own.pop(k) for k in ("model", "size_param") if k in own}
        if self.size_param is not None:
            head[self.size_param] = own.pop(self.size_param)
        return {**head, **self.hparams, **own}

