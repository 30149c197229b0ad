"""The image-classifier example: the CNN, its FLOPs by hand, and a tiny real sweep on the digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _pipeline import plan_train_fit_resume, same_runs
from torch import nn

from flops_fit.api import find_optimal
from flops_fit.examples import digits
from flops_fit.examples.data import digits_datasets
from flops_fit.flops import count_params, forward_flops
from flops_fit.results import load_results
from flops_fit.scaling import fit_isoflop
from flops_fit.training import TrainSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "notebooks" / "example_digits"


@pytest.mark.parametrize(("w", "c", "hw"), [(2, 1, 8), (5, 3, 32), (4, 1, 6)])
def test_parameters_and_flops_match_the_hand_count(w: int, c: int, hw: int) -> None:
    model = digits.SmallCNN(w, in_channels=c)
    x = torch.randn(3, c, hw, hw)
    assert model(x).shape == (3, 10)
    assert count_params(model) == 54 * w * w + 9 * c * w + 5 * w + 2 * w * 10 + 10
    # 3x3 convolutions at every pixel (the third after a 2x2 pool), then the classifier.
    assert forward_flops(model, x) == (18 * c * w + 54 * w * w) * hw * hw + 4 * w * 10


def test_bad_width_is_named() -> None:
    with pytest.raises(ValueError, match=r"Got width=0, expected an int >= 1"):
        digits.SmallCNN(0)


def test_the_plan_counts_passes_over_the_digits_and_warns_beyond_four() -> None:
    with pytest.warns(UserWarning, match=r"^(\d+) of 24 runs pass over the 1438 training samples more than 4 "
                                         r"times \(up to [\d.]+\); beyond ~4 epochs repeated data is worth less "
                                         r"than fresh data \(Muennighoff et al. 2023\)"):
        plan = digits.run("unused", train=False)
    frame = plan.to_frame()
    assert frame["epochs"].tolist() == pytest.approx((frame["train_samples"] / 1438).tolist())
    assert frame["flops_vs_6N"].min() > 20  # each weight reused at 16-64 pixels: 6·N undercounts a CNN
    assert "runs pass over the 1438 training samples more than 4 times" in repr(plan).splitlines()[-1]


def test_no_repeat_warning_when_every_run_sees_each_image_at_most_four_times(recwarn) -> None:
    plan = digits.run("unused", train=False, compute_budgets=[1e8, 2e8], sizes=[8, 16, 32])
    assert plan.to_frame()["epochs"].max() <= 4
    assert not [w for w in recwarn if "pass over" in str(w.message)]
    assert plan.repeat_note() is None


@pytest.mark.slow
def test_a_tiny_sweep_on_the_digits_plans_trains_fits_and_resumes(tmp_path) -> None:
    train, held = digits_datasets()

    def find(**kw):
        return find_optimal(digits.SmallCNN, "width", {}, train, nn.CrossEntropyLoss(), [3e7, 1e8],
                            eval_dataset=held, sizes=[2, 4, 8], settings=TrainSettings(batch_size=32, lr=1e-2),
                            device="cpu", progress=False, fit_options={"n_bootstrap": 20}, **kw)

    plan, table = plan_train_fit_resume(find, tmp_path)
    assert table["holdout_samples"].eq(len(held)).all()
    assert plan.to_frame()["epochs"].max() < 2


def test_the_committed_folder_is_the_plan_of_run() -> None:
    with pytest.warns(UserWarning, match=r"pass over the 1438 training samples"):
        plan = digits.run("unused", train=False)
    assert same_runs(EXAMPLE, plan, "width")


def test_the_committed_fit_is_what_its_readme_says() -> None:
    df = load_results(EXAMPLE)
    fit = fit_isoflop(df, loss="final_loss", n_bootstrap=1000, seed=0)
    assert (df["status"] == "ok").all() and len(df) == 24
    assert fit.budgets["interior"].all()
    assert fit.budgets["p_interior"].round(2).tolist() == [0.69, 0.81, 0.98, 0.98]
    assert fit.exponents["a"] == pytest.approx(0.482, abs=5e-4)
    assert fit.ci["a"] == pytest.approx((0.245, 1.209), abs=5e-4)
