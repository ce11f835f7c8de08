"""The retraining-trigger receiver, for real over HTTP with Alertmanager webhook payloads, in front
of a local launcher that runs the `qoe_train` workflow: one firing alert -> exactly one retraining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from workloads.common.serving import serve_locally
from workloads.common.storage import LocalStore
from workloads.triggers.launchers import LocalLauncher
from workloads.triggers.receiver import (
    MemoryState,
    ObjectState,
    Receiver,
    Rule,
    create_app,
    load_rules,
    parse_payload,
)

TOKEN = "test-token-0123456789"


def _payload(
    status: str, starts_at: str = "2026-11-28T10:00:00Z", trigger: str = "qoe-error"
) -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "naomi-retraining",
        "groupKey": '{}:{naomi_trigger="qoe-error"}',
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "NaomiRetrain_qoe_error",
                    "naomi_trigger": trigger,
                    "severity": "info",
                },
                "annotations": {"summary": "QoE forecast error above 500 for 15m"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "4f1c0e7d2a9b3c11",
            }
        ],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_firing_alert_starts_exactly_one_retraining(
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workloads.qoe.workflow import qoe_train

    monkeypatch.setenv("NAOMI_STORE", str(tmp_path / "objects"))
    monkeypatch.setenv("NAOMI_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    launcher = LocalLauncher({"qoe_train": qoe_train})
    clock = Clock()
    rules = {
        "qoe-error": Rule(
            "qoe-error",
            "qoe_train",
            {"dataset": "synthetic", "steps": 300, "epochs": 1, "workers": 2},
            6 * 3600,
        )
    }
    server, port = serve_locally(create_app(Receiver(rules, launcher, clock), TOKEN))
    url = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {TOKEN}"}

    def post(body: Any, headers: dict[str, str] = auth) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{url}/alerts", content=content, headers=headers, timeout=30)

    try:
        assert post(_payload("firing"), headers={}).status_code == 401
        first = post(_payload("firing"))
        assert first.status_code == 200
        assert first.json()["outcomes"][0]["decision"] == "launched"
        assert (
            post(_payload("firing")).json()["outcomes"][0]["decision"] == "duplicate"
        )  # repeat notification
        clock.now += 600
        later = post(_payload("firing", starts_at="2026-11-28T10:10:00Z")).json()["outcomes"][0]
        assert later["decision"] == "cooldown" and later["cooldown_left_seconds"] == pytest.approx(
            6 * 3600 - 600
        )
        assert post(_payload("resolved")).json()["outcomes"][0]["decision"] == "resolved"
        for bad, status in (
            (b"{", 400),
            ({"version": "3", "alerts": []}, 422),
            ({"version": "4", "alerts": [{"status": "firing", "labels": {}}]}, 422),
        ):
            assert post(bad).status_code == status
        assert (
            post(_payload("firing", trigger="nobody")).json()["outcomes"][0]["decision"] == "unknown-trigger"
        )

        launcher.wait(timeout=300)
        assert len(launcher.launched) == 1  # exactly one retraining ran
        version, _, alias = launcher.results[launcher.launched[0]].partition("@")
        assert version == "1" and alias in ("champion", "candidate")

        history = httpx.get(f"{url}/history", timeout=10).json()["history"]
        assert [h["decision"] for h in history] == [
            "launched",
            "duplicate",
            "cooldown",
            "resolved",
            "unknown-trigger",
        ]
        assert history[0]["why"] == "QoE forecast error above 500 for 15m"
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'naomi_trigger_fired_total{trigger="qoe-error"} 1.0' in metrics
        assert 'naomi_trigger_rejected_total{reason="invalid"} 3.0' in metrics
        assert 'naomi_trigger_rejected_total{reason="auth"} 1.0' in metrics
    finally:
        server.should_exit = True


def test_cooldown_elapses_and_a_failed_launch_is_retried() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def launch(self, workflow: str, inputs: Any, reason: str, name: str) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("flyte unreachable")
            return f"exec-{self.calls}"

    clock = Clock()
    launcher = Flaky()
    receiver = Receiver({"t": Rule("t", "qoe_train", {}, 3600)}, launcher, clock)
    alerts = parse_payload(json.dumps(_payload("firing", trigger="t")).encode())
    decisions = lambda: [o["decision"] for o in receiver.handle(alerts, lambda *_: None)]  # noqa: E731
    assert decisions() == ["launch-failed"]
    assert decisions() == ["launched"]  # Alertmanager's repeat retries the same alert
    clock.now += 3601
    alerts = parse_payload(json.dumps(_payload("firing", "2026-11-28T12:00:00Z", trigger="t")).encode())
    assert decisions() == ["launched"]


def test_rules_file_round_trip() -> None:
    rules = load_rules(
        json.dumps(
            {
                "triggers": [
                    {"name": "a", "workflow": "mnist_train", "inputs": {"epochs": 3}, "cooldownSeconds": 60}
                ]
            }
        )
    )
    assert rules == {"a": Rule("a", "mnist_train", {"epochs": 3}, 60.0)}


class Recording:
    """A launcher that records what it was asked to start (as Flyte: one execution per name)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def launch(self, workflow: str, inputs: Any, reason: str, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return name


def _firing(trigger: str, starts_at: str, count: int = 1) -> list[Any]:
    payload = _payload("firing", starts_at=starts_at, trigger=trigger)
    template = payload["alerts"][0]
    payload["alerts"] = [{**template, "fingerprint": f"{index:016x}"} for index in range(count)]
    return parse_payload(json.dumps(payload).encode())


def test_a_restarted_receiver_remembers_what_it_handled(tmp_path: Path) -> None:
    """De-duplication and cooldown survive a restart: the state is in the object store."""
    store = LocalStore(tmp_path / "objects")
    rules = {"t": Rule("t", "qoe_train", {}, 3600)}
    clock = Clock()
    first = Receiver(rules, Recording(), clock, state=ObjectState(store))
    assert [o["decision"] for o in first.handle(_firing("t", "2026-11-28T10:00:00Z"), lambda *_: None)] == [
        "launched"
    ]
    assert store.exists("state/triggers/receiver.json")

    launcher = Recording()  # the pod restarts: a new process, a new launcher
    again = Receiver(rules, launcher, clock, state=ObjectState(store))
    assert [o["decision"] for o in again.handle(_firing("t", "2026-11-28T10:00:00Z"), lambda *_: None)] == [
        "duplicate"
    ]
    clock.now += 600
    later = again.handle(_firing("t", "2026-11-28T10:10:00Z"), lambda *_: None)
    assert [o["decision"] for o in later] == ["cooldown"] and launcher.names == []


def test_a_large_notification_is_handled_with_one_launch(tmp_path: Path) -> None:
    """An Alertmanager payload of 5,000 alerts of one trigger (about 2.3 MB, over the serving
    body limit): accepted, one launch, the rest recorded as grouped, the state saved once."""
    launcher = Recording()
    state = MemoryState()
    saves = []
    original_save = state.save
    state.save = lambda document: (saves.append(1), original_save(document))  # type: ignore[method-assign]
    receiver = Receiver({"t": Rule("t", "qoe_train", {}, 0)}, launcher, Clock(), state=state)
    server, port = serve_locally(create_app(receiver, TOKEN))
    try:
        payload = _payload("firing", trigger="t")
        template = payload["alerts"][0]
        payload["alerts"] = [{**template, "fingerprint": f"{i:016x}"} for i in range(5000)]
        body = json.dumps(payload).encode()
        assert len(body) > 1_000_000
        response = httpx.post(
            f"http://127.0.0.1:{port}/alerts",
            content=body,
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text[:300]
        decisions = [o["decision"] for o in response.json()["outcomes"]]
        assert decisions.count("launched") == 1 and decisions.count("grouped") == 4999
        assert len(launcher.names) == 1 and len(saves) == 1
        # Alertmanager repeats the notification: nothing new.
        repeat = httpx.post(
            f"http://127.0.0.1:{port}/alerts",
            content=body,
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=60,
        ).json()["outcomes"]
        assert {o["decision"] for o in repeat} == {"duplicate"} and len(launcher.names) == 1
    finally:
        server.should_exit = True


def test_launches_are_named_after_the_alert() -> None:
    """The execution name is the alert's: a relaunch after a crash names the same execution."""
    (alert,) = _firing("t", "2026-11-28T10:00:00Z")
    assert (
        alert.execution_name == "retrain-" + __import__("hashlib").sha256(alert.key.encode()).hexdigest()[:20]
    )
    assert len(alert.execution_name) <= 63 and alert.execution_name.islower()
