"""The HTTP surface every naomi model server shares: strict JSON tensors in, predictions out.

`create_app` wraps any predictor (plain, or async as Ray Serve's batching queue) in a FastAPI
app with `POST /predict`, `GET /healthz` and `GET /metrics`. Malformed JSON, wrong shapes,
non-finite numbers, oversized bodies -> a 4xx with a message (never a stack trace); a failing
model -> 500 with a fixed message. Metrics: request latency, errors by reason, prediction values.
The QoE app (`workloads.qoe.serving`), the MNIST app and the generic MLflow model server
(`workloads.common.model_server`) differ only in how they parse a body and what they predict.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the annotation by name

MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 256
MAX_REMEMBERED = 10_000  # predictions kept for /feedback


def strict_json(body: bytes) -> Any:
    """json.loads without NaN/Infinity; ValueError('malformed JSON: ...') on anything unparsable."""

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not allowed in JSON input")

    try:
        return json.loads(body, parse_constant=no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"malformed JSON: {error.args[0] if error.args else error}") from None


def check_tensor(value: Any, shape: Sequence[int | None], path: str, units: Sequence[str]) -> None:
    """`value` must be nested lists of finite numbers of `shape` (None: 1..MAX_ROWS); ValueError names where."""
    size, rest = shape[0], shape[1:]
    if size is None:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ROWS:
            raise ValueError(f"{path}: expected a list of 1 to {MAX_ROWS} {units[0]}")
    elif not isinstance(value, list) or len(value) != size:
        raise ValueError(f"{path}: expected {size} {units[0]}")
    if not rest:
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise ValueError(f"{path}: expected finite numbers, got {json.dumps(item)[:30]}")
        return
    for index, item in enumerate(value):
        check_tensor(item, rest, f"{path}[{index}]", units[1:])


def parse_tensor(body: bytes, key: str, shape: Sequence[int | None], units: Sequence[str]) -> np.ndarray:
    """Strict parse of `{key: nested lists}` into a float32 array of `shape`."""
    document = strict_json(body)
    if not isinstance(document, dict) or set(document) != {key}:
        raise ValueError(f'expected {{"{key}": [...]}} and nothing else')
    check_tensor(document[key], shape, key, units)
    return np.asarray(document[key], dtype=np.float32)


def create_app(
    *,
    name: str,
    version: str,
    parse: Callable[[bytes], np.ndarray],
    predictor: Callable[[np.ndarray], Any],
    describe: dict[str, Any],
    registry: Any = None,
    value_buckets: Sequence[float] = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
    error: Callable[[float, float], float] = lambda predicted, actual: abs(predicted - actual),
) -> Any:
    """A FastAPI app around `predictor`; `describe` is merged into /healthz.

    Model quality for retraining triggers: every prediction gets an id; `POST /feedback` with
    `{"ids": [...], "actuals": [...]}` (ground truth, posted later) records `error(predicted,
    actual)` in `naomi_serving_error`; inputs feed `naomi_serving_input_mean`/`_std` (drift).
    """
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        "naomi_serving_prediction", "Predicted values", ["model"], registry=metrics, buckets=value_buckets
    )
    quality = Histogram(
        "naomi_serving_error",
        "Prediction error against ground truth posted to /feedback",
        ["model"],
        registry=metrics,
        buckets=(0, 0.5, 1, 2, 5, 10, 50, 100, 500, 1_000, 5_000),
    )
    input_mean = Gauge(
        "naomi_serving_input_mean", "Mean of the last request's inputs", ["model"], registry=metrics
    )
    input_std = Gauge(
        "naomi_serving_input_std", "Std of the last request's inputs", ["model"], registry=metrics
    )
    recent: OrderedDict[str, float] = OrderedDict()  # prediction id -> value, for /feedback
    counter = itertools.count()
    app = FastAPI(title=f"naomi {name}", docs_url=None, redoc_url=None, openapi_url=None)

    def reject(status: int, reason: str, message: str) -> JSONResponse:
        errors.labels(name, reason).inc()
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": version, **describe}

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
            rows = parse(body)
        except ValueError as error:
            return reject(400 if "JSON" in str(error) else 422, "invalid", str(error))
        try:
            output = predictor(rows)
            if inspect.isawaitable(output):
                output = await output
            values = np.asarray(output)
        except Exception:
            return reject(500, "model", "the model failed on this input")
        latency.labels(name).observe(time.perf_counter() - started)
        input_mean.labels(name).set(float(rows.mean()))
        input_std.labels(name).set(float(rows.std()))
        firsts = values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values
        ids = [f"{version}-{next(counter)}" for _ in firsts]
        for key, value in zip(ids, firsts, strict=True):
            predicted.labels(name).observe(float(value))
            recent[key] = float(value)
        while len(recent) > MAX_REMEMBERED:
            recent.popitem(last=False)
        return JSONResponse({"model": name, "version": version, "predictions": values.tolist(), "ids": ids})

    @app.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return reject(413, "too-large", f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            document = strict_json(body)
            if not isinstance(document, dict) or set(document) != {"ids", "actuals"}:
                raise ValueError('expected {"ids": [...], "actuals": [...]}')
            ids, actuals = document["ids"], document["actuals"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError("ids: expected a list of prediction ids")
            check_tensor(actuals, (len(ids),), "actuals", ("numbers",))
        except ValueError as problem:
            return reject(400 if "JSON" in str(problem) else 422, "invalid", str(problem))
        known = 0
        for key, actual in zip(ids, actuals, strict=True):
            if key in recent:
                quality.labels(name).observe(error(recent.pop(key), float(actual)))
                known += 1
        return JSONResponse({"recorded": known, "unknown": len(ids) - known})

    return app


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_locally(app: Any, *, start_timeout: float = 30.0) -> tuple[Any, int]:
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
