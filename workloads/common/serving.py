"""The HTTP surface every naomi model server shares: strict JSON tensors in, predictions out.

`create_app` answers with whatever model a `ModelSlot` holds right now (see
`workloads.common.follow`, which swaps in the version behind an alias): `POST /predict`,
`POST /feedback`, `GET /healthz` (liveness: the process answers), `GET /ready` (readiness: a model
is loaded, or the registry says there is none to load yet) and `GET /metrics`. Until a model
exists, `/predict` answers 503 with a message saying what it waits for, so serving objects come up
on a bare cluster without blocking anything.

Hostile input never reaches the model: malformed JSON, nesting deeper than the parser allows,
wrong shapes, non-finite numbers, numbers outside float32 (1e39) or beyond float range (a
400-digit integer) get a 4xx naming the field; bodies are limited while the stream is read. A
failing model gets 500 with a fixed message, never a stack trace.

Model quality for retraining triggers: every prediction gets a feedback id that carries the
prediction and the version that made it, signed with the server's feedback key, so whichever
replica receives `POST /feedback {"ids", "actuals"}` can score it. Metrics go to Prometheus'
client (the generic server's own `/metrics`) or, inside Ray Serve, to `ray.util.metrics`, which is
what Ray's metrics port exports (names gain Ray's `ray_` prefix).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import math
import os
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the annotation by name

MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 256
MAX_FEEDBACK = 1_000  # ids per /feedback request
MAX_REMEMBERED = 10_000  # feedback ids a replica remembers having scored (duplicates)
FLOAT32_MAX = float(np.finfo(np.float32).max)
FEEDBACK_TTL_SECONDS = 7 * 86_400
FEEDBACK_KEY_ENV = "NAOMI_FEEDBACK_KEY"
RETRY_AFTER_SECONDS = 30
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
ERROR_BUCKETS = (0, 0.5, 1, 2, 5, 10, 50, 100, 500, 1_000, 5_000)
VALUE_BUCKETS = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class BodyTooLarge(ValueError):
    """A request body over the limit (HTTP 413)."""


# --- strict parsing ---------------------------------------------------------------------------


def strict_json(body: bytes) -> Any:
    """json.loads without NaN/Infinity; ValueError('malformed JSON: ...') on anything unparsable,
    including nesting deeper than the parser's recursion limit and integers over Python's digit limit."""

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not allowed in JSON input")

    try:
        return json.loads(body, parse_constant=no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"malformed JSON: {error.args[0] if error.args else error}") from None
    except RecursionError:
        raise ValueError("malformed JSON: nested too deeply") from None
    except ValueError as error:  # NaN/Infinity above, or "Exceeds the limit (4300 digits) ..."
        raise ValueError(f"malformed JSON: {error}") from None


def shown(value: Any) -> str:
    """A short, safe rendering of an offending value for an error message."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        digits = len(str(abs(value))) if abs(value) < 10**60 else None
        return str(value) if digits is not None and digits <= 30 else "an integer of more than 30 digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value[:30])
    return (
        "a list"
        if isinstance(value, list)
        else "an object"
        if isinstance(value, dict)
        else type(value).__name__
    )


def check_numbers(values: list[Any], path: str) -> None:
    """Every item a JSON number that float32 holds: no bools, strings, NaN, 1e39 or 400-digit integers."""
    for index, item in enumerate(values):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{path}: expected finite numbers, got {shown(item)}")
        # Exact comparison (an int is never converted, so 10**400 cannot overflow); NaN fails it.
        if not -FLOAT32_MAX <= item <= FLOAT32_MAX:
            raise ValueError(
                f"{path}[{index}]: {shown(item)} is outside the float32 range (|x| <= {FLOAT32_MAX:.4g})"
            )


def check_tensor(value: Any, shape: Sequence[int | None], path: str, units: Sequence[str]) -> None:
    """`value` must be nested lists of float32-range numbers of `shape` (None: 1..MAX_ROWS)."""
    size, rest = shape[0], shape[1:]
    if size is None:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ROWS:
            raise ValueError(f"{path}: expected a list of 1 to {MAX_ROWS} {units[0]}")
    elif not isinstance(value, list) or len(value) != size:
        raise ValueError(f"{path}: expected {size} {units[0]}")
    if not rest:
        check_numbers(value, path)
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


def parse_feedback(body: bytes) -> tuple[list[str], list[float]]:
    """`{"ids": [...], "actuals": [...]}` with as many float32-range actuals as ids."""
    document = strict_json(body)
    if not isinstance(document, dict) or set(document) != {"ids", "actuals"}:
        raise ValueError('expected {"ids": [...], "actuals": [...]}')
    ids, actuals = document["ids"], document["actuals"]
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_FEEDBACK
        or not all(isinstance(i, str) and len(i) <= 200 for i in ids)
    ):
        raise ValueError(f"ids: expected a list of 1 to {MAX_FEEDBACK} prediction ids")
    check_tensor(actuals, (len(ids),), "actuals", ("numbers",))
    return ids, [float(a) for a in actuals]


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused as soon as it exceeds `limit` (declared or while streaming)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 15 or int(declared) > limit):
        raise BodyTooLarge(f"body larger than {limit} bytes")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
    return bytes(received)


# --- the model being served --------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One loaded model version as the app answers with it: its own parser and predictor."""

    version: str
    parse: Callable[[bytes], np.ndarray]
    predict: Callable[[np.ndarray], Any]  # may return an awaitable (Ray Serve's batching queue)
    describe: Mapping[str, Any] = field(default_factory=dict)


class ModelSlot:
    """The model a server answers with right now. A swap is one reference assignment, so every
    request sees either the old or the new model, whole (the parser and predictor of one version)."""

    def __init__(self, served: Served | None = None, *, waiting: str = "no model loaded yet") -> None:
        self._served = served
        self.waiting = waiting
        # Ready for traffic: a model is loaded, or the registry says there is none to load yet.
        self.settled = served is not None

    @property
    def served(self) -> Served | None:
        return self._served

    def swap(self, served: Served) -> None:
        self._served = served
        self.settled = True

    def wait(self, reason: str, *, settled: bool) -> None:
        """No model to answer with (yet): `reason` is what /predict tells callers."""
        self.waiting = reason
        self.settled = settled


# --- feedback ids ------------------------------------------------------------------------------


def feedback_key() -> bytes:
    """The key feedback ids are signed with: `NAOMI_FEEDBACK_KEY` (a Secret shared by every replica
    of a served model), else a random key (one process, or handed to every replica by the caller)."""
    configured = os.environ.get(FEEDBACK_KEY_ENV, "")
    return configured.encode() if configured else secrets.token_bytes(32)


class FeedbackIds:
    """Signed ids that carry (prediction, version, issue time): any holder of the key scores them."""

    _HEAD = struct.Struct(">dQ6s")  # prediction, issued (ms since the epoch), nonce

    def __init__(
        self, key: bytes, *, ttl_seconds: float = FEEDBACK_TTL_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, version: str, value: float) -> str:
        payload = self._HEAD.pack(value, int(self._clock() * 1000), secrets.token_bytes(6))
        payload += version.encode()[:64]
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode()

    def read(self, token: str) -> tuple[str, float] | None:
        """(version, prediction) of a valid, unexpired id; None for anything forged or malformed."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        if len(raw) < self._HEAD.size + 16:
            return None
        payload, signature = raw[:-16], raw[-16:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(signature, expected):
            return None
        value, issued_ms, _ = self._HEAD.unpack_from(payload)
        if self._clock() - issued_ms / 1000 > self._ttl or not math.isfinite(value):
            return None
        return payload[self._HEAD.size :].decode(errors="replace"), value


# --- metrics -----------------------------------------------------------------------------------


class ServingMetrics(Protocol):
    def request(self, seconds: float) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def predictions(self, values: Sequence[float]) -> None: ...
    def error(self, value: float) -> None: ...
    def inputs(self, mean: float, std: float) -> None: ...
    def version(self, version: str) -> None: ...
    def exposition(self) -> bytes | None: ...


def version_number(version: str) -> float:
    """The gauge value of `naomi_serving_model_version`: the registry version, 0 without a model,
    -1 for a model that has no registry version (a logged-model URI)."""
    if not version:
        return 0.0
    return float(version) if version.isdigit() else -1.0


class PrometheusMetrics:
    """`naomi_serving_*` in a prometheus_client registry, exported on the app's own /metrics."""

    def __init__(self, name: str, *, registry: Any = None, value_buckets: Sequence[float] = VALUE_BUCKETS):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._latency = Histogram(
            "naomi_serving_request_seconds",
            "Prediction request latency",
            ["model"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        ).labels(name)
        self._errors = Counter(
            "naomi_serving_errors_total", "Rejected or failed requests", ["model", "reason"], registry=r
        )
        self._predicted = Histogram(
            "naomi_serving_prediction", "Predicted values", ["model"], registry=r, buckets=value_buckets
        ).labels(name)
        self._quality = Histogram(
            "naomi_serving_error",
            "Prediction error against ground truth posted to /feedback",
            ["model"],
            registry=r,
            buckets=ERROR_BUCKETS,
        ).labels(name)
        self._feedback = Counter(
            "naomi_serving_feedback", "Predictions scored against ground truth", ["model"], registry=r
        ).labels(name)
        self._feedback_error = Counter(
            "naomi_serving_feedback_error", "Sum of the errors of scored predictions", ["model"], registry=r
        ).labels(name)
        self._mean = Gauge(
            "naomi_serving_input_mean", "Mean of the last request's inputs", ["model"], registry=r
        ).labels(name)
        self._std = Gauge(
            "naomi_serving_input_std", "Std of the last request's inputs", ["model"], registry=r
        ).labels(name)
        self._version = Gauge(
            "naomi_serving_model_version", "Registry version of the model answering", ["model"], registry=r
        ).labels(name)
        self._name = name

    def request(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def rejected(self, reason: str) -> None:
        self._errors.labels(self._name, reason).inc()

    def predictions(self, values: Sequence[float]) -> None:
        for value in values:
            self._predicted.observe(value)

    def error(self, value: float) -> None:
        self._quality.observe(value)
        self._feedback.inc()
        self._feedback_error.inc(value)

    def inputs(self, mean: float, std: float) -> None:
        self._mean.set(mean)
        self._std.set(std)

    def version(self, version: str) -> None:
        self._version.set(version_number(version))

    def exposition(self) -> bytes | None:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class RayMetrics:
    """The same series through `ray.util.metrics` (Ray Serve replicas): Ray's metrics port exports
    them as `ray_naomi_serving_*`, which is what the Ray pods' PodMonitor scrapes."""

    def __init__(self, name: str, *, value_buckets: Sequence[float] = VALUE_BUCKETS):
        from ray.util import metrics

        def positive(buckets: Sequence[float]) -> list[float]:
            return [float(b) for b in buckets if b > 0]  # Ray refuses a zero boundary

        tags = {"model": name}
        self._latency = metrics.Histogram(
            "naomi_serving_request_seconds",
            "Prediction request latency",
            positive(LATENCY_BUCKETS),
            ("model",),
        )
        self._errors = metrics.Counter(
            "naomi_serving_errors", "Rejected or failed requests", ("model", "reason")
        )
        self._predicted = metrics.Histogram(
            "naomi_serving_prediction", "Predicted values", positive(value_buckets), ("model",)
        )
        self._quality = metrics.Histogram(
            "naomi_serving_error",
            "Prediction error against ground truth posted to /feedback",
            positive(ERROR_BUCKETS),
            ("model",),
        )
        # Ray exports a histogram's _sum from bucket midpoints, not the observed values (ray 2.60
        # _private/telemetry/open_telemetry_metric_recorder.py), so the mean error the retraining
        # rules use comes from two exact counters instead.
        self._feedback = metrics.Counter(
            "naomi_serving_feedback", "Predictions scored against ground truth", ("model",)
        )
        self._feedback_error = metrics.Counter(
            "naomi_serving_feedback_error", "Sum of the errors of scored predictions", ("model",)
        )
        self._mean = metrics.Gauge(
            "naomi_serving_input_mean", "Mean of the last request's inputs", ("model",)
        )
        self._std = metrics.Gauge("naomi_serving_input_std", "Std of the last request's inputs", ("model",))
        self._version = metrics.Gauge(
            "naomi_serving_model_version", "Registry version of the model answering", ("model",)
        )
        for metric in (
            self._latency,
            self._errors,
            self._predicted,
            self._quality,
            self._feedback,
            self._feedback_error,
            self._mean,
            self._std,
            self._version,
        ):
            metric.set_default_tags(tags)

    def request(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def rejected(self, reason: str) -> None:
        self._errors.inc(1.0, {"reason": reason})

    def predictions(self, values: Sequence[float]) -> None:
        for value in values:
            self._predicted.observe(value)

    def error(self, value: float) -> None:
        self._quality.observe(value)
        self._feedback.inc()
        if value > 0:  # Ray's counters refuse a zero increment
            self._feedback_error.inc(value)

    def inputs(self, mean: float, std: float) -> None:
        self._mean.set(mean)
        self._std.set(std)

    def version(self, version: str) -> None:
        self._version.set(version_number(version))

    def exposition(self) -> bytes | None:
        return None  # exported on Ray's metrics port, not on the app


# --- the app -----------------------------------------------------------------------------------


def create_app(
    *,
    name: str,
    slot: ModelSlot,
    metrics: ServingMetrics | None = None,
    error: Callable[[float, float], float] = lambda predicted, actual: abs(predicted - actual),
    key: bytes | None = None,
) -> Any:
    """A FastAPI app serving whatever `slot` holds; `error(predicted, actual)` scores feedback."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    recorder: ServingMetrics = metrics if metrics is not None else PrometheusMetrics(name)
    ids = FeedbackIds(key if key is not None else feedback_key())
    scored: OrderedDict[str, None] = OrderedDict()  # feedback ids this replica already scored
    recorder.version(slot.served.version if slot.served else "")
    app = FastAPI(title=f"naomi {name}", docs_url=None, redoc_url=None, openapi_url=None)

    def reject(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        recorder.rejected(reason)
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def invalid(problem: ValueError) -> JSONResponse:
        if isinstance(problem, BodyTooLarge):
            return reject(413, "too-large", str(problem))
        return reject(400 if "JSON" in str(problem) else 422, "invalid", str(problem))

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        served = slot.served
        if served is None:
            return {"status": "waiting", "model": name, "version": None, "reason": slot.waiting}
        return {"status": "ok", "model": name, "version": served.version, **served.describe}

    @app.get("/ready")
    def ready() -> JSONResponse:
        served = slot.served
        body = {"ready": slot.settled, "version": served.version if served else None, "reason": slot.waiting}
        return JSONResponse(body, status_code=200 if slot.settled else 503)

    @app.get("/metrics")
    def exposition() -> Response:
        text = recorder.exposition()
        if text is None:
            return JSONResponse({"error": "metrics are exported on Ray's metrics port"}, status_code=404)
        return Response(text, media_type="text/plain; version=0.0.4")

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        served = slot.served  # one model for the whole request, whatever swaps meanwhile
        if served is None:
            return reject(
                503, "no-model", f"no model yet: {slot.waiting}", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        try:
            rows = served.parse(await read_body(request))
        except ValueError as problem:
            return invalid(problem)
        try:
            output = served.predict(rows)
            if inspect.isawaitable(output):
                output = await output
            values = np.asarray(output)
        except Exception:
            return reject(500, "model", "the model failed on this input")
        recorder.request(time.perf_counter() - started)
        recorder.inputs(float(rows.mean(dtype=np.float64)), float(rows.std(dtype=np.float64)))
        firsts = (values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values).astype(float).tolist()
        recorder.predictions(firsts)
        tokens = [ids.issue(served.version, value) for value in firsts]
        return JSONResponse(
            {"model": name, "version": served.version, "predictions": values.tolist(), "ids": tokens}
        )

    @app.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        try:
            tokens, actuals = parse_feedback(await read_body(request))
        except ValueError as problem:
            return invalid(problem)
        outcome = {"recorded": 0, "unknown": 0, "duplicate": 0}
        for token, actual in zip(tokens, actuals, strict=True):
            prediction = ids.read(token)
            if prediction is None:
                outcome["unknown"] += 1
            elif token in scored:
                outcome["duplicate"] += 1
            else:
                scored[token] = None
                recorder.error(error(prediction[1], actual))
                outcome["recorded"] += 1
        while len(scored) > MAX_REMEMBERED:
            scored.popitem(last=False)
        return JSONResponse(outcome)

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
