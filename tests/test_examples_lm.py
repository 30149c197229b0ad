"""The byte-level transformer example: the model, its FLOPs by hand, and a tiny real sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _pipeline import plan_train_fit_resume, same_runs

from flops_fit.api import find_optimal
from flops_fit.examples import lm
from flops_fit.flops import count_params, forward_flops
from flops_fit.results import load_results
from flops_fit.scaling import fit_isoflop
from flops_fit.training import TrainSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "notebooks" / "example_lm"


@pytest.mark.parametrize(("d", "n_layer", "t"), [(8, 1, 16), (12, 2, 8)])
def test_shapes_parameters_and_tied_output(d: int, n_layer: int, t: int) -> None:
    model = lm.ByteGPT(d, n_layer=n_layer, n_head=4, seq_len=t)
    idx = torch.randint(0, 256, (3, t))
    logits = model(idx)
    assert logits.shape == (3, t, 256)
    lm.next_token_loss(logits, idx).backward()
    assert model.head.weight is model.tok.weight
    # Embeddings (256 + T)·d, blocks 12d² + 4d each (no biases in the matmuls), final LayerNorm 2d.
    assert count_params(model) == (256 + t) * d + n_layer * (12 * d * d + 4 * d) + 2 * d
    assert model.embedding_params() == (256 + t) * d


def test_causal_positions_do_not_see_the_future() -> None:
    model = lm.ByteGPT(8, seq_len=8).eval()
    idx = torch.randint(0, 256, (1, 8))
    changed = idx.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 256
    assert torch.allclose(model(idx)[0, :5], model(changed)[0, :5])


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_forward_flops_match_the_hand_count(device: str) -> None:
    d, L, T, V = 16, 2, 32, 256
    model = lm.ByteGPT(d, n_layer=L, seq_len=T)
    x = torch.zeros(2, T, dtype=torch.long)
    if device == "meta":
        model, x = model.to("meta"), x.to("meta")
    # Per token: 24·L·d² in the blocks' matmuls, 2·d·V in the output layer, and per layer
    # 4·T·d in attention (Q K^T and A V in full, no causal saving); embeddings cost nothing.
    assert forward_flops(model, x) == T * (24 * L * d * d + 2 * d * V + 4 * L * T * d)


def test_flops_per_token_against_six_n_and_kaplan() -> None:
    row = lm.flops_per_token(32)  # n_layer 2, seq_len 64
    d, L, T, V = 32, 2, 64, 256
    n = row["params"]
    assert row["measured"] == 3 * (24 * L * d * d + 2 * d * V + 4 * L * T * d)
    assert row["six_n"] == 6 * n and row["nonembedding_params"] == n - (V + T) * d
    assert row["kaplan"] == 6 * row["nonembedding_params"] + 6 * L * T * d
    assert row["attention"] + row["output_layer"] == 3 * (4 * L * T * d + 2 * d * V)
    assert row["measured_vs_six_n"] == pytest.approx(row["measured"] / (6 * n))
    table = lm.flops_table([8, 96])
    assert table["measured_vs_six_n"].round(2).tolist() == [1.35, 1.07]  # small models: 6N undercounts


def test_next_token_loss_of_uniform_logits_is_log_vocab() -> None:
    loss = lm.next_token_loss(torch.zeros(2, 5, 256), torch.randint(0, 256, (2, 5)))
    assert loss.item() == pytest.approx(math.log(256))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_model": 10}, r"Got d_model=10, expected a multiple of n_head=4"),
        ({"d_model": 8, "n_layer": 0}, r"Got n_layer=0, expected an int >= 1"),
        ({"d_model": 8.0}, r"Got d_model=8.0, expected an int >= 1"),
    ],
)
def test_bad_sizes_are_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        lm.ByteGPT(**kwargs)


def test_a_sequence_longer_than_the_positions_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"Got a sequence of 9 tokens, expected at most seq_len=8"):
        lm.ByteGPT(8, seq_len=8)(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.slow
def test_a_tiny_sweep_on_the_stdlib_plans_trains_fits_and_resumes(tmp_path) -> None:
    train, held = lm.stdlib_datasets(16, max_files=12, eval_windows=32)

    def find(**kw):
        return find_optimal(lm.ByteGPT, "d_model", {"seq_len": 16, "n_layer": 1}, train, lm.next_token_loss,
                            [3e7, 1e8], eval_dataset=held, tokens_per_sample=16, sizes=[4, 8, 16],
                            settings=TrainSettings(batch_size=8, lr=1e-2), device="cpu", progress=False,
                            fit_options={"n_bootstrap": 20}, **kw)

    plan, table = plan_train_fit_resume(find, tmp_path)
    frame = plan.to_frame()
    assert frame["epochs"].tolist() == pytest.approx((frame["train_samples"] / len(train)).tolist())
    assert frame["flops_per_token"].tolist() == pytest.approx((frame["flops_per_sample"] / 16).tolist())
    assert (table["final_loss"] < math.log(256)).all()  # every run beats a uniform guess of the next byte
    assert table["holdout_samples"].eq(len(held)).all()  # scored on the held-out files, not a split of train


def test_the_committed_folder_is_the_plan_of_run() -> None:
    plan = lm.run("unused", train=False)
    assert same_runs(EXAMPLE, plan, "d_model")


def test_the_committed_fit_is_what_its_readme_says() -> None:
    df = load_results(EXAMPLE)
    with pytest.warns(UserWarning, match=r"Left out of the power laws 2 budget\(s\)"):
        fit = fit_isoflop(df, loss="final_loss", n_bootstrap=1000, seed=0)
    assert (df["status"] == "ok").all() and len(df) == 25
    assert fit.budgets["interior"].tolist() == [False, False, True, True, True]
    assert fit.exponents["a"] == pytest.approx(0.568, abs=5e-4)
    assert fit.ci["a"] == pytest.approx((0.282, 0.877), abs=5e-4)
