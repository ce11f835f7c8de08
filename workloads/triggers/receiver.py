"""The retraining-trigger receiver: Alertmanager webhooks in, at most one Flyte execution out.

A metric trigger (`retraining.triggers[]` with kind `metric`) renders as a PrometheusRule alert
labelled `naomi_trigger=<name>` and an Alertmanager route to this service. For each *firing*
alert the receiver launches the trigger's workflow with its inputs, unless the same alert
(fingerprint + start time) was already handled (Alertmanager repeats notifications) or the
trigger is inside its cooldown. Every decision is recorded (`GET /history`, JSON log lines) with
the alert's labels and annotations, and counted in Prometheus metrics. Requests need the bearer
token Alertmanager is configured with; malformed payloads get a 4xx and change nothing.

    python -m workloads.triggers.receiver --rules /etc/naomi/triggers.json --port 8080
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from workloads.common.serving import MAX_BODY_BYTES, strict_json

LOG = logging.getLogger("naomi.triggers")
MAX_HISTORY = 500


@dataclass(frozen=True)
class Rule:
    name: str
    workflow: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    cooldown_seconds: float = 0.0


class Launcher(Protocol):
    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str) -> str:
        """Start `workflow` with `inputs`; returns an execution id (raises on failure)."""
        ...


@dataclass(frozen=True)
class Alert:
    status: str
    trigger: str
    fingerprint: str
    starts_at: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def parse_payload(body: bytes) -> list[Alert]:
    """Alertmanager webhook payload (version 4) -> alerts; ValueError naming what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
    document = strict_json(body)
    if not isinstance(document, dict) or document.get("version") != "4":
        raise ValueError('expected an Alertmanager webhook payload with "version": "4"')
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("alerts: expected a list")
    parsed = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise ValueError(f"{where}: expected an object")
        status, labels = alert.get("status"), alert.get("labels")
        if status not in ("firing", "resolved"):
            raise ValueError(f"{where}.status: expected firing or resolved")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"{where}.labels: expected string labels")
        annotations = alert.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ValueError(f"{where}.annotations: expected an object")
        trigger = labels.get("naomi_trigger")
        if not trigger:
            raise ValueError(f"{where}.labels.naomi_trigger: missing (not a naomi retraining alert)")
        fingerprint, starts_at = alert.get("fingerprint"), alert.get("startsAt")
        if not isinstance(fingerprint, str) or not isinstance(starts_at, str):
            raise ValueError(f"{where}: fingerprint and startsAt must be strings")
        parsed.append(
            Alert(
                status=status,
                trigger=trigger,
                fingerprint=fingerprint,
                starts_at=starts_at,
                labels=dict(labels),
                annotations={str(k): str(v) for k, v in annotations.items()},
            )
        )
    return parsed


@dataclass
class Receiver:
    """Decides, for each alert, launch or not (and why); thread-safe."""

    rules: Mapping[str, Rule]
    launcher: Launcher
    clock: Callable[[], float] = time.time
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))
    _last_launch: dict[str, float] = field(default_factory=dict)
    _handled: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, alerts: Sequence[Alert], record: Callable[[str, str], None]) -> list[dict[str, Any]]:
        outcomes = []
        for alert in alerts:
            with self._lock:
                outcome = self._decide(alert)
            record(alert.trigger, outcome["decision"])
            outcomes.append(outcome)
            self.history.append(outcome)
            LOG.info(json.dumps(outcome, sort_keys=True))
        return outcomes

    def _decide(self, alert: Alert) -> dict[str, Any]:
        now = self.clock()
        outcome: dict[str, Any] = {
            "time": now,
            "trigger": alert.trigger,
            "status": alert.status,
            "alert": dict(alert.labels),
            "why": alert.annotations.get("summary", alert.labels.get("alertname", "")),
        }
        rule = self.rules.get(alert.trigger)
        key = (alert.trigger, alert.fingerprint, alert.starts_at)
        if rule is None:
            return {**outcome, "decision": "unknown-trigger"}
        if alert.status == "resolved":
            return {**outcome, "decision": "resolved"}
        if key in self._handled:
            return {**outcome, "decision": "duplicate"}
        last = self._last_launch.get(rule.name)
        if last is not None and now - last < rule.cooldown_seconds:
            self._handled.add(key)
            return {
                **outcome,
                "decision": "cooldown",
                "cooldown_left_seconds": rule.cooldown_seconds - (now - last),
            }
        reason = f"{alert.labels.get('alertname', rule.name)}: {outcome['why']}"
        try:
            execution = self.launcher.launch(rule.workflow, rule.inputs, reason)
        except Exception as error:  # the alert stays unhandled: Alertmanager's repeat retries it
            return {**outcome, "decision": "launch-failed", "error": f"{type(error).__name__}: {error}"[:300]}
        self._handled.add(key)
        self._last_launch[rule.name] = now
        return {**outcome, "decision": "launched", "workflow": rule.workflow, "execution": execution}


def create_app(receiver: Receiver, token: str | None) -> FastAPI:
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    metrics = CollectorRegistry()
    decisions = Counter(
        "naomi_trigger_decisions_total",
        "Alerts handled, by trigger and decision",
        ["trigger", "decision"],
        registry=metrics,
    )
    fired = Counter(
        "naomi_trigger_fired_total", "Retraining executions launched", ["trigger"], registry=metrics
    )
    rejected = Counter(
        "naomi_trigger_rejected_total", "Refused webhook requests", ["reason"], registry=metrics
    )
    app = FastAPI(title="naomi trigger receiver", docs_url=None, redoc_url=None, openapi_url=None)

    def record(trigger: str, decision: str) -> None:
        decisions.labels(trigger, decision).inc()
        if decision == "launched":
            fired.labels(trigger).inc()

    @app.post("/alerts")
    async def alerts(request: Request) -> JSONResponse:
        if token is not None:
            offered = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(offered.encode(), token.encode()):
                rejected.labels("auth").inc()
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        try:
            parsed = parse_payload(await request.body())
        except ValueError as error:
            rejected.labels("invalid").inc()
            return JSONResponse({"error": str(error)}, status_code=400 if "JSON" in str(error) else 422)
        return JSONResponse({"outcomes": receiver.handle(parsed, record)})

    @app.get("/history")
    def history() -> dict[str, Any]:
        return {"history": list(receiver.history)}

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"status": "ok", "triggers": sorted(receiver.rules)}

    @app.get("/metrics")
    def exposition() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics).decode(), media_type="text/plain; version=0.0.4")

    return app


def load_rules(text: str) -> dict[str, Rule]:
    """The rules file the stack renders: {"triggers": [{name, workflow, inputs, cooldownSeconds}]}."""
    document = json.loads(text)
    rules = {}
    for entry in document["triggers"]:
        rule = Rule(
            name=str(entry["name"]),
            workflow=str(entry["workflow"]),
            inputs=dict(entry.get("inputs", {})),
            cooldown_seconds=float(entry.get("cooldownSeconds", 0)),
        )
        rules[rule.name] = rule
    return rules


def main(argv: Sequence[str] | None = None) -> None:
    import os

    import uvicorn

    from workloads.triggers.launchers import FlyteLauncher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", required=True, help="JSON rules file rendered by the stack")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8080)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(options.rules, encoding="utf-8") as stream:
        rules = load_rules(stream.read())
    launcher = FlyteLauncher.from_environment()
    token = os.environ.get("TRIGGER_TOKEN") or None
    uvicorn.run(create_app(Receiver(rules, launcher), token), host=options.host, port=options.port)


if __name__ == "__main__":
    main()
