"""QoE serving: the shared strict app (`workloads.common.serving`) for windows of cell measurements.

`POST /predict` takes `{"windows": [[[...features...] x window] x n]}` and answers
`{"predictions": [...]}`; the Ray Serve deployment (`serve_deployment.py`) mounts the same app
with a batching predictor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.common.serving import create_app as create_serving_app
from workloads.common.serving import parse_tensor


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    window: int
    features: int


class Predictor:
    """Wraps a forecaster: numpy windows in, forecasts out (batched, no gradients)."""

    def __init__(self, model: Any, info: ModelInfo) -> None:
        import torch

        self.model = model
        self.info = info
        self._torch = torch
        torch.set_num_threads(1)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(windows.astype(np.float32))).numpy()


def parse_windows(body: bytes, info: ModelInfo) -> np.ndarray:
    """Strict parse of `{"windows": [...]}` into (n, window, features) float32; ValueError on anything else."""
    return parse_tensor(
        body, "windows", (None, info.window, info.features), ("windows", "time steps", "numbers")
    )


def create_app(predictor: Callable[[np.ndarray], Any], info: ModelInfo, *, registry: Any = None) -> Any:
    """The HTTP surface around `predictor` (plain, or async as Ray Serve's batching queue)."""
    return create_serving_app(
        name=info.name,
        version=info.version,
        parse=lambda body: parse_windows(body, info),
        predictor=predictor,
        describe={"input": {"window": info.window, "features": info.features}},
        registry=registry,
    )
