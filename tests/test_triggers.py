"""The retraining-trigger receiver, for real over HTTP with Alertmanager webhook payloads, in front
of a local launcher that runs the `qoe_train` workflow: one firing alert -> exactly one retraining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from workloads.common.serving import serve_locally
from workloads.triggers.launchers import LocalLauncher
from workloads.triggers.receiver import Receiver, Rule, create_app, load_rules, parse_payload

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
    rules = {"qoe-error": Rule("qoe-error", "qoe_train", {"steps": 300, "epochs": 1, "workers": 2}, 6 * 3600)}
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
        assert list(launcher.results) == ["local-0"]  # exactly one retraining ran
        version, _, alias = launcher.results["local-0"].partition("@")
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

        def launch(self, workflow: str, inputs: Any, reason: str) -> str:
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
