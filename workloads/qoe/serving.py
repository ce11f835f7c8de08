"""QoE serving: a FastAPI app with strict input validation and Prometheus metrics.

`create_app(predictor)` is the HTTP surface the Ray Serve deployment mounts (and the generic
model server reuses): `POST /predict` takes `{"windows": [[[...features...] x window] x n]}`,
rejects malformed JSON, wrong shapes, non-finite numbers and oversized bodies with a 4xx and a
message (never a stack trace), and answers `{"predictions": [...]}`; `GET /healthz` reports
the loaded model; `GET /metrics` exposes latency, errors and prediction statistics.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

MAX_BODY_BYTES = 1_000_000
MAX_WINDOWS = 256


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


def create_app(predictor: Callable[[np.ndarray], Any], info: ModelInfo, *, registry: Any = None) -> Any:
    """The HTTP surface around `predictor` (plain, or async as Ray Serve's batching queue)."""
    from fastapi.responses import JSONResponse, PlainTextResponse

    metrics = registry or CollectorRegistry()
    latency = Histogram(
        "naomi_serving_request_seconds",
        "Prediction request latency",
        ["model"],
        registry=metrics,
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
    )
    errors = Counter(
        "naomi_serving_errors_total", "Rejected or failed requests", ["model", "reason"], registry=metrics
    )
    predicted = Histogram(
        "naomi_serving_prediction",
        "Predicted target values",
        ["model"],
        registry=metrics,
        buckets=(0, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
    )
    app = FastAPI(title=f"naomi {info.name}", docs_url=None, redoc_url=None, openapi_url=None)

    def reject(status: int, reason: str, message: str) -> JSONResponse:
        errors.labels(info.name, reason).inc()
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": info.name,
            "version": info.version,
            "input": {"window": info.window, "features": info.features},
        }

    @app.get("/metrics")
    def exposition() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics).decode(), media_type="text/plain; version=0.0.4")

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return reject(413, "too-large", f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            windows = parse_windows(body, info)
        except ValueError as error:
            return reject(400 if "JSON" in str(error) else 422, "invalid", str(error))
        try:
            forecasts = predictor(windows)
            if inspect.isawaitable(forecasts):
                forecasts = await forecasts
        except Exception:
            return reject(500, "model", "the model failed on this input")
        latency.labels(info.name).observe(time.perf_counter() - started)
        for value in forecasts:
            predicted.labels(info.name).observe(float(value))
        return JSONResponse(
            {"model": info.name, "version": info.version, "predictions": [float(v) for v in forecasts]}
        )

    return app


def parse_windows(body: bytes, info: ModelInfo) -> np.ndarray:
    """Strict parse of `{"windows": [...]}` into (n, window, features) float32; ValueError on anything else."""
    import json

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not allowed in JSON input")

    try:
        document = json.loads(body, parse_constant=no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"malformed JSON: {error.args[0] if error.args else error}") from None
    if not isinstance(document, dict) or set(document) != {"windows"}:
        raise ValueError('expected {"windows": [[[number, ...], ...], ...]}')
    windows = document["windows"]
    if not isinstance(windows, list) or not 1 <= len(windows) <= MAX_WINDOWS:
        raise ValueError(f"windows: expected a list of 1 to {MAX_WINDOWS} windows")
    for index, window in enumerate(windows):
        if not isinstance(window, list) or len(window) != info.window:
            raise ValueError(f"windows[{index}]: expected {info.window} time steps")
        for step, row in enumerate(window):
            if not isinstance(row, list) or len(row) != info.features:
                raise ValueError(f"windows[{index}][{step}]: expected {info.features} numbers")
            for value in row:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(
                        f"windows[{index}][{step}]: expected finite numbers, got {json.dumps(value)[:30]}"
                    )
    return np.asarray(windows, dtype=np.float32)


def serve_locally(app: FastAPI, *, start_timeout: float = 30.0) -> tuple[Any, int]:
    """Run `app` under uvicorn on 127.0.0.1 (a free port) in a background thread.

    Returns the server (set `should_exit = True` to stop it) and the port.
    """
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the serving app did not start in {start_timeout:.0f} s")
        time.sleep(0.05)
    return server, port


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
