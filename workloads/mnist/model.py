"""A small CNN for grayscale digits (any H x W >= 4): two conv layers, pooling to 4 x 4, a linear head."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, channels: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),  # keeps a 4 x 4 layout of where the strokes are
        )
        self.head = nn.Linear(2 * channels * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, H, W) floats in 0..1 -> (n, classes) logits."""
        return self.head(self.features(x).flatten(1))
