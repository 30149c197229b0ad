"""A small decoder-only transformer language model over bytes, sized by ``d_model``.

:class:`ByteGPT` is the GPT-2 layout (pre-LayerNorm blocks of causal
self-attention and a 4x MLP, learned positions, the output layer tied to the
token embedding) at nanoGPT's level of detail, on bytes (256 tokens, no
tokenizer). :func:`run` trains it by ``find_optimal`` on the Python standard
library's own source (:func:`flops_fit.examples.data.stdlib_corpus`, held
out by file) and fits the IsoFLOP laws.

FLOPs per token, three ways (:func:`flops_per_token`): what
``forward_flops`` measures, the 6·N rule with and without the embedding
parameters, and Kaplan et al.'s ``6·N_nonembed + 6·n_layer·n_ctx·d`` with
the attention term. At these sizes the choices differ by up to 2x, which is
the kind of counting choice Porian et al. (2024) find behind part of the
Kaplan/Chinchilla disagreement.

References
----------
Kaplan et al. (2020), "Scaling Laws for Neural Language Models", Table 1.
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
Porian et al. (2024), "Resolving Discrepancies in Compute-Optimal Scaling of
Language Models", sec. 3 (last-layer FLOPs, warm-up, tuning at small scale).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from flops_fit.checks import check_int
from flops_fit.examples.data import TokenChunks, stdlib_corpus
from flops_fit.flops import count_params, forward_flops, train_flops
from flops_fit.training import TrainSettings

__all__ = [
    "CPU_BUDGETS",
    "CPU_SETTINGS",
    "CPU_SIZES",
    "EVAL_WINDOWS",
    "SEQ_LEN",
    "ByteGPT",
    "flops_per_token",
    "next_token_loss",
    "run",
    "stdlib_datasets",
]

SEQ_LEN = 64  # bytes of context: a line or two of code
EVAL_WINDOWS = 512  # 32,768 held-out bytes score every run (cheap next to training)
CPU_BUDGETS = (1e10, 3e10, 1e11, 3e11, 1e12)  # training FLOPs per run
CPU_SIZES = (8, 12, 16, 24, 32, 48, 64, 96)  # d_model candidates (multiples of n_head = 4)
# AdamW 3e-3, 5 % warm-up, cosine to 10 %, for every size: a short check (d_model 16-64,
# 1e-3..1e-2) found 3e-3 best or near-best except at d_model 16, which preferred 1e-2.
# Not tuned per size (Porian et al. 2024: per-size tuning matters at small scale).
# Batches of 16 windows (1,024 bytes) give the smallest budgets' runs 100+ steps.
CPU_SETTINGS = TrainSettings(batch_size=16, lr=3e-3)


class _Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, then a 4x GELU MLP, each residual."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=False), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> 3 x (B, nh, T, hs)
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class ByteGPT(nn.Module):
    """Decoder-only transformer over bytes; ``d_model`` sets the size.

    Parameters
    ----------
    d_model : int
        Width of the residual stream; a multiple of ``n_head``.
    n_layer : int
        Transformer blocks.
    n_head : int
        Attention heads (head size ``d_model / n_head``).
    seq_len : int
        Longest input (learned positions).
    vocab_size : int
        256 for bytes.

    Notes
    -----
    Parameters: ``(vocab_size + seq_len) · d`` embeddings (the output layer
    is tied to the token embedding, so it adds none) plus
    ``n_layer · (12 d² + 4 d) + 2 d`` in the blocks and the final LayerNorm.
    Weights start at N(0, 0.02), the residual projections at
    0.02 / sqrt(2 n_layer) (GPT-2).

    Examples
    --------
    >>> ByteGPT(16)(torch.zeros(2, 64, dtype=torch.long)).shape
    torch.Size([2, 64, 256])
    """

    def __init__(self, d_model: int = 32, *, n_layer: int = 2, n_head: int = 4, seq_len: int = SEQ_LEN,
                 vocab_size: int = 256) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("n_layer", n_layer), ("n_head", n_head),
                            ("seq_len", seq_len), ("vocab_size", vocab_size)):
            check_int(name, value, minimum=1)
        if d_model % n_head:
            raise ValueError(f"Got d_model={d_model}, expected a multiple of n_head={n_head}")
        self.seq_len, self.n_layer = seq_len, n_layer
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.Sequential(*(_Block(d_model, n_head) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as in GPT-2 and nanoGPT
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab_size)`` of the next byte at every position of ``idx`` ``(B, T)``."""
        T = idx.shape[1]
        if T > self.seq_len:
            raise ValueError(f"Got a sequence of {T} tokens, expected at most seq_len={self.seq_len}")
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        return self.head(self.ln_f(self.blocks(x)))

    def embedding_params(self) -> int:
        """Parameters of the token and position embeddings (the tied output layer adds none)."""
        return self.tok.weight.numel() + self.pos.weight.numel()


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next byte, in nats per byte (divide by ln 2 for bits).

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, T, V)`` model output.
    targets : torch.Tensor
        ``(B, T)`` next tokens.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def flops_per_token(d_model: int, **model_kwargs: Any) -> dict[str, float]:
    """Training FLOPs per token of ``ByteGPT(d_model, **model_kwargs)``: measured and by rule.

    Returns
    -------
    dict
        ``d_model``; ``params`` N (all, the tied output layer once) and
        ``nonembedding_params``; training FLOPs per token (3 × forward, at a
        full ``seq_len`` window): ``measured`` (``forward_flops``: every
        matmul, attention's two in full, the output layer), ``six_n``
        (6·N), ``six_n_nonembed`` (6·N without embeddings), ``kaplan``
        (6·N_nonembed + 6·n_layer·seq_len·d, Kaplan et al. 2020's C with its
        attention term); the measured parts ``attention``
        (3·4·n_layer·seq_len·d) and ``output_layer`` (3·2·d·vocab, the
        "last layer" of Porian et al. 2024); and ``measured_vs_six_n``.
    """
    model = ByteGPT(d_model, **model_kwargs)
    T, L, V = model.seq_len, model.n_layer, model.tok.num_embeddings
    n = count_params(model)
    nonembed = n - model.embedding_params()
    measured = train_flops(forward_flops(model, torch.zeros(1, T, dtype=torch.long)), 1) / T
    return {
        "d_model": d_model, "params": n, "nonembedding_params": nonembed, "measured": measured,
        "six_n": 6.0 * n, "six_n_nonembed": 6.0 * nonembed, "kaplan": 6.0 * nonembed + 6.0 * L * T * d_model,
        "attention": 12.0 * L * T * d_model, "output_layer": 6.0 * d_model * V,
        "measured_vs_six_n": measured / (6.0 * n),
    }


def flops_table(sizes: Sequence[int] = CPU_SIZES, **model_kwargs: Any) -> pd.DataFrame:
    """:func:`flops_per_token` for every size, one row each (join it to ``plan.to_frame()`` on ``d_model``)."""
    return pd.DataFrame([flops_per_token(d, **model_kwargs) for d in sizes])


def stdlib_datasets(seq_len: int = SEQ_LEN, *, root: str | Path | None = None, eval_windows: int = EVAL_WINDOWS,
                    max_files: int | None = None) -> tuple[TokenChunks, TokenChunks]:
    """(train, held-out) windows of the standard library's bytes, held out by file.

    See :func:`flops_fit.examples.data.stdlib_corpus` for ``root`` and
    ``max_files``; ``eval_windows`` evenly spaced held-out windows score
    every run.
    """
    corpus = stdlib_corpus(root, max_files=max_files)
    return TokenChunks(corpus.train, seq_len), TokenChunks(corpus.holdout, seq_len, limit=eval_windows)


def run(output_dir: str | Path, *, compute_budgets: Sequence[float] = CPU_BUDGETS,
        sizes: Sequence[int] = CPU_SIZES, settings: TrainSettings = CPU_SETTINGS,
        executor: cf.Executor | None = None, root: str | Path | None = None, **options: Any) -> Any:
    """Train the IsoFLOP sweep of :class:`ByteGPT` on the standard library and fit it.

    Parameters
    ----------
    output_dir : str or Path
        Results folder (resumable: finished runs are skipped).
    compute_budgets, sizes, settings
        Default: the CPU sweep committed as ``notebooks/example_lm``.
    executor : concurrent.futures.Executor, optional
        E.g. ``make_executor(2)``.
    root : str or Path, optional
        Source folder instead of the running Python's standard library.
    **options
        Passed to :func:`flops_fit.find_optimal` (``device``, ``fit_options``, ``train=False``...).

    Returns
    -------
    flops_fit.scaling.Result, or the SweepPlan with ``train=False``
    """
    from flops_fit.api import find_optimal

    train, held = stdlib_datasets(root=root)
    return find_optimal(ByteGPT, "d_model", {"seq_len": SEQ_LEN}, train, next_token_loss, compute_budgets,
                        eval_dataset=held, tokens_per_sample=SEQ_LEN, sizes=sizes, num_sizes_per_budget=5,
                        settings=settings, output_dir=output_dir, executor=executor, **options)
