"""Tiny user models shared by the planning and API tests."""

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
