"""A small image classifier sized by ``width``, on scikit-learn's bundled digits.

:class:`SmallCNN` is three 3×3 convolutions and a linear classifier; it takes
any image size and channel count, so the same class trains on the 8×8
digits (:func:`flops_fit.examples.data.digits_datasets`, 1,797 images, no
download) and on CIFAR-10 when its files are on disk
(:func:`flops_fit.examples.data.cifar10_datasets`). :func:`run` trains the
digits IsoFLOP sweep by ``find_optimal`` and fits it.

The digits are a small dataset: every IsoFLOP budget that separates model
sizes passes over the 1,438 training images many times, so the fit's D is
samples *seen*, not distinct samples, and the plan says so (Muennighoff et
al. 2023). Read its exponent as a property of this data-constrained regime,
not as Chinchilla's.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flops_fit.checks import check_int
from flops_fit.training import TrainSettings

__all__ = ["CPU_BUDGETS", "CPU_SETTINGS", "CPU_SIZES", "SmallCNN", "run"]

CPU_BUDGETS = (1e9, 3e9, 1e10, 3e10)  # training FLOPs per run
CPU_SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32)  # width candidates
# AdamW 1e-2: at 1e10 FLOPs it beat 3e-3 by 0.3-0.6 nats of held-out loss at widths 4 and 12.
CPU_SETTINGS = TrainSettings(batch_size=32, lr=1e-2)


class SmallCNN(nn.Module):
    """Three 3×3 convolutions (``width``, ``2·width``, ``2·width`` channels), then a linear classifier.

    Parameters
    ----------
    width : int
        Channels of the first convolution; sets the size.
    in_channels : int
        1 for the digits, 3 for CIFAR-10.
    num_classes : int

    Notes
    -----
    ReLU after each convolution, a 2×2 max-pool after the second, a global
    average pool before the classifier (so any image size works). With
    ``c`` input channels, ``K`` classes and ``H × W`` images (H, W even):
    ``N = 54 w² + 9 c w + 5 w + 2 w K + K`` parameters and
    ``(18 c w + 54 w²) · H W + 4 w K`` forward FLOPs per image, each weight
    reused at every pixel: about ``H W`` times the 2·N of a dense layer.

    Examples
    --------
    >>> SmallCNN(4)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, width: int = 8, *, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (("width", width), ("in_channels", in_channels), ("num_classes", num_classes)):
            check_int(name, value, minimum=1)
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of images ``(B, in_channels, H, W)``."""
        return self.classifier(self.features(x))


def run(output_dir: str | Path, *, compute_budgets: Sequence[float] = CPU_BUDGETS,
        sizes: Sequence[int] = CPU_SIZES, settings: TrainSettings = CPU_SETTINGS,
        executor: cf.Executor | None = None, **options: Any) -> Any:
    """Train the IsoFLOP sweep of :class:`SmallCNN` on the digits into ``output_dir`` and fit it.

    The defaults are the CPU sweep committed as ``notebooks/example_digits``;
    ``executor`` and ``**options`` go to :func:`flops_fit.find_optimal`
    (``train=False`` returns the plan). Finished runs in ``output_dir`` are
    skipped.
    """
    from flops_fit.api import find_optimal
    from flops_fit.examples.data import digits_datasets

    train, held = digits_datasets()
    return find_optimal(SmallCNN, "width", {}, train, nn.CrossEntropyLoss(), compute_budgets,
                        eval_dataset=held, sizes=sizes, num_sizes_per_budget=6, settings=settings,
                        output_dir=output_dir, executor=executor, **options)
