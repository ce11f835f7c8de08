"""QoE serving: the shared strict app (`workloads.common.serving`) for windows of cell measurements.

`POST /predict` takes `{"windows": [[[...features...] x window] x n]}` and answers
`{"predictions": [...], "ids": [...]}`; the Ray Serve deployment (`serve_deployment.py`) mounts
the same app with a batching predictor that follows the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from workloads.common.serving import ModelSlot, PrometheusMetrics, Served, parse_tensor
from workloads.common.serving import create_app as create_serving_app


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
            return self.model(self._torch.from_numpy(windows.astype(np.float32, copy=False))).numpy()


def parse_windows(body: bytes, info: ModelInfo) -> np.ndarray:
    """Strict parse of `{"windows": [...]}` into (n, window, features) float32; ValueError on anything else."""
    return parse_tensor(
        body, "windows", (None, info.window, info.features), ("windows", "time steps", "numbers")
    )


def served(info: ModelInfo, predict: Callable[[np.ndarray], Any]) -> Served:
    """One QoE model version as the app serves it (`predict` may be Ray Serve's batching queue)."""
    return Served(
        version=info.version,
        parse=partial(parse_windows, info=info),
        predict=predict,
        describe={"input": {"window": info.window, "features": info.features}},
    )


def create_app(predictor: Callable[[np.ndarray], Any], info: ModelInfo, *, registry: Any = None) -> Any:
    """The HTTP surface around one fixed `predictor` (the following app lives in serve_deployment)."""
    return create_serving_app(
        name=info.name,
        slot=ModelSlot(served(info, predictor)),
        metrics=PrometheusMetrics(info.name, registry=registry),
    )
