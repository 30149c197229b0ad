"""Tiny user models shared by the planning, IsoFLOP and API tests."""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    """Two 3x3 convolutions, 1 -> w -> 1 channels; N = 19w + 1."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(torch.relu(self.c1(x)))


class MLP(nn.Module):
    """N = w^2 + 7w + 1 with in_features=4: Linear(4,w), Linear(w,w), Linear(w,1)."""

    def __init__(self, width: int, in_features: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_params(w: int) -> int:
    return w * w + 7 * w + 1
