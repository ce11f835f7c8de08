"""The retraining-trigger receiver: Alertmanager webhooks in, at most one Flyte execution out.

A metric trigger (`retraining.triggers[]` with kind `metric`) renders as a PrometheusRule alert
labelled `naomi_trigger=<name>` and an Alertmanager route to this service. For each *firing*
alert the receiver launches the trigger's workflow with its inputs, unless the same alert
(fingerprint + start time) was already handled (Alertmanager repeats notifications), the trigger
is inside its cooldown, or another alert of the same trigger in the same notification already
launched it (at most one launch per trigger per notification, however many alerts it carries).

What it decided survives a restart: the handled alerts and the last launch per trigger are kept
in the object store (`state/triggers/receiver.json` in the pipelines' bucket), written once per
notification. A launch is named after the alert (`retrain-<hash>`), and Flyte refuses a second
execution of the same name (flytekit 1.16.31 `FlyteRemote._execute` returns the existing one),
so even a crash between launching and saving cannot launch twice. Every decision is recorded
(`GET /history`, JSON log lines) and counted in Prometheus metrics. Requests need the bearer token
Alertmanager is configured with; bodies up to `MAX_PAYLOAD_BYTES` are read (Alertmanager's
`max_alerts` keeps them far smaller); malformed payloads get a 4xx and change nothing.

    python -m workloads.triggers.receiver --rules /etc/naomi/triggers.json --port 8080
"""

from __future__ import annotations

import argparse
import hashlib
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

from workloads.common.serving import BodyTooLarge, read_body, strict_json
from workloads.common.storage import Store

LOG = logging.getLogger("naomi.triggers")
MAX_HISTORY = 500
MAX_PAYLOAD_BYTES = 32_000_000  # ~100,000 alerts; Alertmanager sends max_alerts per notification
STATE_KEY = "state/triggers/receiver.json"
MAX_REMEMBERED = 20_000  # handled alerts kept in the state (the oldest are forgotten first)
REMEMBER_SECONDS = 14 * 86_400  # and none older than this (Alertmanager stops repeating resolved ones)


@dataclass(frozen=True)
class Rule:
    name: str
    workflow: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    cooldown_seconds: float = 0.0


class Launcher(Protocol):
    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str, name: str) -> str:
        """Start `workflow` with `inputs` as execution `name` (a second launch of the same name
        starts nothing); returns the execution id (raises on failure)."""
        ...


class StateStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, document: dict[str, Any]) -> None: ...


@dataclass
class ObjectState:
    """The receiver's memory as one JSON object in the object store (an S3 PUT is atomic)."""

    store: Store
    key: str = STATE_KEY

    def load(self) -> dict[str, Any] | None:
        if not self.store.exists(self.key):
            return None
        document = json.loads(self.store.get(self.key))
        return document if isinstance(document, dict) else None

    def save(self, document: dict[str, Any]) -> None:
        self.store.put(self.key, json.dumps(document, sort_keys=True).encode())


@dataclass
class MemoryState:
    """State that lives as long as the process (tests; a laptop)."""

    document: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.document

    def save(self, document: dict[str, Any]) -> None:
        self.document = json.loads(json.dumps(document))


@dataclass(frozen=True)
class Alert:
    status: str
    trigger: str
    fingerprint: str
    starts_at: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def key(self) -> str:
        return f"{self.trigger}|{self.fingerprint}|{self.starts_at}"

    @property
    def execution_name(self) -> str:
        """A Flyte execution name (`^[a-z][a-z0-9-]*$`, <= 63) unique to this alert."""
        return "retrain-" + hashlib.sha256(self.key.encode()).hexdigest()[:20]


def parse_payload(body: bytes) -> list[Alert]:
    """Alertmanager webhook payload (version 4) -> alerts; ValueError naming what is wrong."""
    if len(body) > MAX_PAYLOAD_BYTES:
        raise BodyTooLarge(f"body larger than {MAX_PAYLOAD_BYTES} bytes")
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
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            raise ValueError(f"{where}.annotations: expected string annotations")
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
                annotations=dict(annotations),
            )
        )
    return parsed


@dataclass
class Receiver:
    """Decides, for each alert, launch or not (and why); thread-safe; remembers through `state`."""

    rules: Mapping[str, Rule]
    launcher: Launcher
    clock: Callable[[], float] = time.time
    state: StateStore = field(default_factory=MemoryState)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))
    _last_launch: dict[str, float] = field(default_factory=dict)
    _handled: dict[str, float] = field(default_factory=dict)  # alert key -> when it was handled
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        document = self.state.load() or {}
        self._handled = {str(k): float(v) for k, v in (document.get("handled") or {}).items()}
        self._last_launch = {str(k): float(v) for k, v in (document.get("lastLaunch") or {}).items()}

    def handle(self, alerts: Sequence[Alert], record: Callable[[str, str], None]) -> list[dict[str, Any]]:
        """Decide every alert of one notification, then save what changed (once)."""
        with self._lock:
            launched: set[str] = set()  # triggers launched by this notification
            before = (len(self._handled), dict(self._last_launch))
            outcomes = [self._decide(alert, launched) for alert in alerts]
            if (len(self._handled), self._last_launch) != before:
                self._save()
        for outcome in outcomes:
            record(outcome["trigger"], outcome["decision"])
            self.history.append(outcome)
            LOG.info(json.dumps(outcome, sort_keys=True))
        return outcomes

    def _save(self) -> None:
        horizon = self.clock() - REMEMBER_SECONDS
        recent = sorted((t, k) for k, t in self._handled.items() if t >= horizon)[-MAX_REMEMBERED:]
        self._handled = {k: t for t, k in recent}
        self.state.save({"handled": self._handled, "lastLaunch": self._last_launch})

    def _decide(self, alert: Alert, launched: set[str]) -> dict[str, Any]:
        now = self.clock()
        outcome: dict[str, Any] = {
            "time": now,
            "trigger": alert.trigger,
            "status": alert.status,
            "alert": dict(alert.labels),
            "why": alert.annotations.get("summary", alert.labels.get("alertname", "")),
        }
        rule = self.rules.get(alert.trigger)
        if rule is None:
            return {**outcome, "decision": "unknown-trigger"}
        if alert.status == "resolved":
            return {**outcome, "decision": "resolved"}
        if alert.key in self._handled:
            return {**outcome, "decision": "duplicate"}
        if rule.name in launched:
            self._handled[alert.key] = now
            return {**outcome, "decision": "grouped"}  # this notification already launched it
        last = self._last_launch.get(rule.name)
        if last is not None and now - last < rule.cooldown_seconds:
            self._handled[alert.key] = now
            return {
                **outcome,
                "decision": "cooldown",
                "cooldown_left_seconds": rule.cooldown_seconds - (now - last),
            }
        reason = f"{alert.labels.get('alertname', rule.name)}: {outcome['why']}"
        try:
            execution = self.launcher.launch(rule.workflow, rule.inputs, reason, alert.execution_name)
        except Exception as error:  # the alert stays unhandled: Alertmanager's repeat retries it
            return {**outcome, "decision": "launch-failed", "error": f"{type(error).__name__}: {error}"[:300]}
        self._handled[alert.key] = now
        self._last_launch[rule.name] = now
        launched.add(rule.name)
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
            parsed = parse_payload(await read_body(request, MAX_PAYLOAD_BYTES))
        except ValueError as error:
            rejected.labels("too-large" if isinstance(error, BodyTooLarge) else "invalid").inc()
            status = 413 if isinstance(error, BodyTooLarge) else 400 if "JSON" in str(error) else 422
            return JSONResponse({"error": str(error)}, status_code=status)
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
    from pathlib import Path

    import uvicorn

    from workloads.common.storage import store_from_environment
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
    state = ObjectState(store_from_environment(Path(".naomi/state/objects")))
    receiver = Receiver(rules, launcher, state=state)
    uvicorn.run(create_app(receiver, token), host=options.host, port=options.port)


if __name__ == "__main__":
    main()
