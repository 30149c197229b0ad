"""IsoFLOP planning: for each compute budget, pick the model sizes and the data each can afford.

:func:`plan_sweep` builds an IsoFLOP sweep (Chinchilla "Approach 2" [1]_): for
each compute budget C, several model sizes N, each trained on the
D = C / (FLOPs per sample) samples the budget affords. It probes candidate
sizes (parameters and FLOPs per sample), chooses a log-uniform spread around
each budget's compute-optimal centre and drops infeasible ones. The result is
a :class:`~flops_fit.planning.SweepPlan`; :mod:`flops_fit.planning` re-exports
:func:`plan_sweep` and the constants.

Cost per training sample is ``6·N·tokens_per_sample`` by default (dense
transformers [2]_), or ``3 × forward_flops(model, sample_input)`` measured by
running the model (:mod:`flops_fit.flops`), which is right for convolutions
and Fourier neural operators where 6·N is not.

References
----------
.. [1] J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
   arXiv:2203.15556 (2022).
.. [2] J. Kaplan et al., "Scaling Laws for Neural Language Models",
   arXiv:2001.08361 (2020).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from flops_fit.contracts import validate_model
from flops_fit.flops import forward_flops, train_flops
from flops_fit.planning.common import CHINCHILLA_TOKENS_PER_PARAM, SIX_N, fmt, scalar
from flops_fit.planning.experiment import Experiment
from flops_fit.planning.inputs import check_plan_options, validate_budgets
from flops_fit.planning.plan import SweepPlan
from flops_fit.user_model import build_at_size, model_name, model_params, to_device

__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "SIX_N",
    "plan_sweep",
    "validate_budgets",
]


@dataclass(frozen=True)
class _Probe:
    size: Any
    params: int
    flops_per_sample: float  # training FLOPs per sample
    measured: bool = False  # by running the model (else 6·N per token)


def _shapes(x: Any) -> Any:
    """Shape of a tensor, or of each tensor of a tuple, for messages."""
    if isinstance(x, (tuple, list)):
        return tuple(_shapes(v) for v in x)
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def _probe(model_cls: Any, size_param: str, size: Any, kwargs: Mapping[str, Any],
           sample_input: Any, tokens_per_sample: float) -> _Probe:
    """N and training FLOPs per sample of one size; on the meta device when the model allows."""

    def measure(device: str | None) -> _Probe:
        model = build_at_size(model_cls, size_param, size, kwargs, device=device, require_module=False)
        n = model_params(model)
        if sample_input is None or not isinstance(model, torch.nn.Module):
            return _Probe(size, n, SIX_N * n * tokens_per_sample)
        x = sample_input if device is None else to_device(sample_input, device)
        try:
            return _Probe(size, n, train_flops(forward_flops(model, x), 1), measured=True)
        except Exception as exc:
            if device is not None:  # the meta device refuses some models: retried on the CPU
                raise
            raise ValueError(
                f"{model_name(model_cls)}({size_param}={size!r}) cannot run on a sample_input of "
                f"shape {_shapes(sample_input)}: {type(exc).__name__}: {exc}. Expected a batch the "
                "model accepts (find_optimal uses the dataset's first input)"
            ) from exc

    try:
        # Shapes only: no memory, no arithmetic, so large candidates cost nothing.
        return measure("meta")
    except Exception:  # constructors or forwards that need real data fall back to the CPU
        return measure(None)


def _candidate_sizes(size_range: tuple[int, int], num: int = 32) -> list[int]:
    lo, hi = size_range
    return sorted({int(round(v)) for v in np.geomspace(lo, hi, num)})


def _select(probes: list[_Probe], budget: float, n: int, spread: float,
            target: float, tokens_per_sample: float) -> tuple[list[_Probe], int]:
    """Up to ``n`` probes spread log-uniformly in N around the budget's centre.

    The centre is the probe whose tokens per parameter (C / f · t / N) is
    closest, in log, to ``target``; the aims are centre · spread^[-1..1].
    Returns the chosen probes (ascending N) and the centre's index.
    """
    params = np.array([p.params for p in probes], dtype=float)
    ratio = np.array([budget / p.flops_per_sample * tokens_per_sample / p.params for p in probes])
    centre = int(np.argmin(np.abs(np.log(ratio) - math.log(target))))
    if len(probes) <= n:
        return list(probes), centre
    aims = params[centre] * spread ** np.linspace(-1.0, 1.0, n) if n > 1 else params[[centre]]
    chosen: list[int] = []
    for aim in aims:
        i = int(np.argmin(np.abs(np.log(params) - math.log(aim))))
        if i not in chosen:
            chosen.append(i)
    # Coarse candidate lists map several aims to one size; fill from nearest the centre.
    for i in np.argsort(np.abs(np.log(params) - math.log(params[centre])), kind="stable"):
        if len(chosen) >= n:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return [probes[i] for i in sorted(chosen, key=lambda i: params[i])], centre


def plan_sweep(
    model_cls: Callable[..., torch.nn.Module],
    size_param: str,
    model_kwargs: Mapping[str, Any] | None = None,
    compute_budgets: Sequence[float] | None = None,
    *,
    num_sizes_per_budget: int = 7,
    sizes: Sequence[Any] | None = None,
    sample_input: Any = None,
    tokens_per_sample: float = 1,
    flops: Literal["auto", "6N", "measured"] = "auto",
    size_range: tuple[int, int] = (4, 4096),
    spread: float = 4.0,
    target_tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM,
    min_samples: int = 1,
    min_samples_per_param: float = 0.0,
    seed: int | None = None,
    validated: bool = False,
) -> SweepPlan:
    """Plan an IsoFLOP sweep: per budget, several sizes, each with the data the budget affords.

    Parameters
    ----------
    model_cls : callable
        Class (or function) building the model; ``size_param`` sets its size.
    size_param : str
        Constructor argument that sets the size (``"width"``, ``"d_model"``).
    model_kwargs : dict, optional
        The other constructor arguments.
    compute_budgets : sequence of float
        Training budgets C in FLOPs.
    num_sizes_per_budget : int
        Sizes per budget (fewer when fewer candidates exist or some are infeasible).
    sizes : sequence, optional
        Candidate size values; every one must build. Default: integers
        log-spaced over ``size_range``, probed upward until past the largest
        budget's range (ones that do not build are skipped with a warning).
    sample_input : tensor or tuple of tensors, optional
        A batch the model accepts. When given, FLOPs per sample are measured:
        ``3 × forward_flops(model, sample_input)``.
    tokens_per_sample : float
        Tokens in one sample (sequence length); 6N FLOPs are per token, and
        the centre is set in tokens per parameter. 1 for non-token data.
    flops : {"auto", "6N", "measured"}
        "auto" measures when ``sample_input`` is given, else uses
        ``6 · N · tokens_per_sample``.
    size_range : (int, int)
        Range of generated candidate sizes when ``sizes`` is None.
    spread : float
        Sizes aim at N_c / spread .. N_c · spread (log-uniform) around the
        centre N_c, the size trained at ``target_tokens_per_param``. The
        default 4 spans 16x in N (about 1.2 decades), like Chinchilla's
        IsoFLOP profiles.
    target_tokens_per_param : float
        Tokens per parameter at the centre (20, Hoffmann et al. 2022).
    min_samples : int
        Sizes whose D = round(C / FLOPs per sample) is below this are
        infeasible for that budget.
    min_samples_per_param : float
        Sizes with D / N below this are infeasible (0 disables; a bound on
        samples, not tokens, so it also makes sense for non-token data).
    seed : int, optional
        Put in every config (the runner otherwise adds its own).
    validated : bool
        True only when the caller has already run
        :func:`~flops_fit.contracts.validate_model` on ``model_cls`` and passes
        the ascending tuple :func:`validate_budgets` returned (``find_optimal``
        does both in its documented order), so neither runs twice.

    Returns
    -------
    SweepPlan
        Experiments ascending by budget, then N. D is rounded to the nearest
        integer, so D · FLOPs per sample is within half a sample's FLOPs of C.

    Raises
    ------
    ValueError
        Bad budgets or options, a given size that cannot be built, no
        candidate that builds, or a budget with no feasible size (named).

    Warns
    -----
    UserWarning
        Infeasible sizes dropped (which, for which budget, and why); generated
        candidates that did not build; a budget's centre at the edge of the
        probed range.

    Notes
    -----
    The centre (20 tokens per parameter) is Chinchilla's result for language
    models. For other data (images, operators) it is only a first guess at
    where the optimum lies: pass ``sizes`` that bracket it, and check that the
    fitted minima are interior. Candidates are probed on the ``meta`` device
    (shapes only, no memory), falling back to the CPU for models that need
    real tensors to be built or run.
    """
    if validated:  # find_optimal ran validate_model and validate_budgets, in its own order
        budgets = tuple(compute_budgets)
    else:
        budgets = validate_budgets(compute_budgets)
    given = check_plan_options(num_sizes_per_budget=num_sizes_per_budget, sizes=sizes, sample_input=sample_input,
                               tokens_per_sample=tokens_per_sample, flops=flops, size_range=size_range,
                               spread=spread, target_tokens_per_param=target_tokens_per_param)
    lo, hi = size_range
    kwargs = dict(model_kwargs or {})
    if not validated:
        validate_model(model_cls, size_param, kwargs, probe_size=min(given) if given else lo)
    measured_input = sample_input if flops != "6N" else None

    if given is not None:
        probes = [_probe(model_cls, size_param, s, kwargs, measured_input, tokens_per_sample) for s in given]
    else:
        probes = _probe_upward(model_cls, size_param, kwargs, measured_input, tokens_per_sample,
                               _candidate_sizes((lo, hi)), budgets[-1], spread, target_tokens_per_param)
    probes.sort(key=lambda p: p.params)
    rule = "measured" if all(p.measured for p in probes) else "6N"
    if flops == "measured" and rule == "6N":
        raise ValueError(f"flops='measured' needs a model that is a torch.nn.Module, to run on "
                         f"sample_input; {model_name(model_cls)} is not one (plan it with flops='6N')")

    hparams = {k: scalar(v) for k, v in kwargs.items()}
    if seed is not None:
        hparams["seed"] = seed
    name = getattr(model_cls, "__name__", repr(model_cls))
    experiments: list[Experiment] = []
    for budget in budgets:
        chosen, centre = _select(probes, budget, num_sizes_per_budget, spread,
                                 target_tokens_per_param, tokens_per_sample)
        if given is None and centre in (0, len(probes) - 1) and len(probes) > 1:
            end = "smallest" if centre == 0 else "largest"
            warnings.warn(
                f"compute budget {fmt(budget)}: its compute-optimal centre is at the {end} probed "
                f"size ({size_param}={probes[centre].size}); widen size_range={size_range}",
                stacklevel=2,
            )
        kept, dropped = [], []
        for p in chosen:
            d = int(round(budget / p.flops_per_sample))
            if d < min_samples:
                dropped.append(f"{size_param}={p.size} ({d} samples < min_samples={min_samples})")
            elif d / p.params < min_samples_per_param:
                dropped.append(f"{size_param}={p.size} ({d / p.params:.3g} samples per parameter "
                               f"< min_samples_per_param={min_samples_per_param})")
            else:
                kept.append((p, d))
        if not kept:
            smallest = probes[0]
            raise ValueError(
                f"No feasible model size for compute budget {fmt(budget)} FLOPs: "
                f"{'; '.join(dropped)}. The smallest size, {size_param}={smallest.size}, costs "
                f"{fmt(smallest.flops_per_sample)} FLOPs per sample; raise the budget or use smaller sizes"
            )
        if dropped:
            warnings.warn(
                f"compute budget {fmt(budget)}: dropped infeasible sizes {'; '.join(dropped)}",
                stacklevel=2,
            )
        for p, d in kept:
            experiments.append(Experiment(
                compute_budget=budget, size_value=p.size, model_params=p.params, train_samples=d,
                flops_per_sample=p.flops_per_sample, size_param=size_param, model=name, hparams=hparams,
            ))
    return SweepPlan(
        experiments=tuple(experiments), budgets=budgets, model=name, size_param=size_param,
        model_kwargs=kwargs, kind="isoflop", model_cls=model_cls, sample_input=sample_input,
        flops_rule=rule, tokens_per_sample=float(tokens_per_sample),
    )


def _probe_upward(model_cls: Any, size_param: str, kwargs: Mapping[str, Any], sample_input: Any,
                  tokens_per_sample: float, candidates: list[int], largest_budget: float,
                  spread: float, target: float) -> list[_Probe]:
    """Probe generated candidates from small to large, stopping past the largest budget's aims.

    The stop keeps probing cheap (and keeps the CPU fallback from building
    huge models): once the largest budget's centre N_c is passed, one size
    beyond N_c · spread is enough for any budget's upper aim.
    """
    probes: list[_Probe] = []
    failed: list[tuple[int, Exception]] = []
    centre = None
    for size in candidates:
        try:
            p = _probe(model_cls, size_param, size, kwargs, sample_input, tokens_per_sample)
        except (ValueError, TypeError) as exc:
            failed.append((size, exc))
            continue
        probes.append(p)
        ratio = largest_budget / p.flops_per_sample * tokens_per_sample / p.params
        if centre is None and ratio <= target:
            centre = p.params
        if centre is not None and p.params > centre * spread:
            break
    if not probes:
        raise ValueError(
            f"None of the candidate sizes {size_param}={candidates} could be built; "
            f"first error: {failed[0][1]}"
        )
    if failed:
        warnings.warn(
            f"Skipped {size_param}={[s for s, _ in failed]} that could not be built "
            f"(first error: {failed[0][1]})",
            stacklevel=3,
        )
    return probes

