"""The QoE forecaster: an LSTM over a window of cell measurements, predicting the next change.

The network sees the window normalised by training-set statistics (stored in the model, so
serving applies exactly the same scaling) and predicts the target's change after the window,
also normalised; the forecast is the last observed value plus that change. Predicting the change
makes "last value" the zero-knowledge starting point, which the model must then beat.
NAOMI's reference configuration is three LSTM layers of 150 units; the default here is smaller
for 2-core laptops and Raspberry Pis, and `hidden`/`layers` restore the reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    features: int = 4
    window: int = 10
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class QoeForecaster(nn.Module):
    """LSTM(layers x hidden) + Linear; inputs and outputs scaled by stored statistics."""

    def __init__(self, config: ModelConfig, target_index: int) -> None:
        super().__init__()
        self.config = config
        self.target_index = target_index
        self.lstm = nn.LSTM(
            config.features,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, 1)
        self.register_buffer("mean", torch.zeros(config.features))
        self.register_buffer("std", torch.ones(config.features))
        self.register_buffer("delta_std", torch.ones(1))

    def fit_scaling(self, x: np.ndarray, y: np.ndarray) -> None:
        """Statistics from the training windows only (no peeking at validation or test)."""
        flat = x.reshape(-1, x.shape[-1])
        std = flat.std(axis=0)
        self.mean.copy_(torch.from_numpy(flat.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0)))
        delta = y - x[:, -1, self.target_index]
        self.delta_std.fill_(float(max(delta.std(), 1e-6)))

    def normalised_delta(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm((x - self.mean) / self.std)
        return self.head(output[:, -1, :]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forecast of the target (same units as the data) for a batch of windows."""
        return x[:, -1, self.target_index] + self.normalised_delta(x) * self.delta_std

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = (y - x[:, -1, self.target_index]) / self.delta_std
        return nn.functional.mse_loss(self.normalised_delta(x), target)
