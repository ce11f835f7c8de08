"""The trigger receiver's decisions and refusals at their boundaries (issue 17, mutation testing):
every error message a sender sees, each decision's fields, the cooldown edge, what the state keeps
and forgets, and the HTTP statuses. In-process (FastAPI's TestClient), no server, no Ray."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from workloads.triggers import receiver as module
from workloads.triggers.receiver import (
    MAX_PAYLOAD_BYTES,
    REMEMBER_SECONDS,
    Alert,
    MemoryState,
    ObjectState,
    Receiver,
    Rule,
    create_app,
    load_rules,
    parse_payload,
)

TOKEN = "boundary-token-0123456789"


def _alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "NaomiRetrain_t", "naomi_trigger": "t"},
        "annotations": {"summary": "error above 500"},
        "startsAt": "2026-11-28T10:00:00Z",
        "fingerprint": "f1",
    }
    alert.update(overrides)
    return alert


def _body(*alerts: dict[str, Any], version: Any = "4") -> bytes:
    return json.dumps({"version": version, "alerts": list(alerts)}).encode()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recording:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any], str, str]] = []
        self.fail = fail

    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str, name: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.calls.append((workflow, dict(inputs), reason, name))
        return f"exec-{len(self.calls)}"


# --- parse_payload ----------------------------------------------------------------------------


def test_a_valid_payload_parses_every_field() -> None:
    (alert,) = parse_payload(_body(_alert()))
    assert alert == Alert(
        status="firing",
        trigger="t",
        fingerprint="f1",
        starts_at="2026-11-28T10:00:00Z",
        labels={"alertname": "NaomiRetrain_t", "naomi_trigger": "t"},
        annotations={"summary": "error above 500"},
    )
    assert alert.key == "t|f1|2026-11-28T10:00:00Z"
    assert alert.execution_name.startswith("retrain-") and len(alert.execution_name) == 28


def test_missing_annotations_are_empty_and_resolved_is_accepted() -> None:
    raw = _alert(status="resolved")
    del raw["annotations"]
    (alert,) = parse_payload(_body(raw))
    assert (alert.status, alert.annotations) == ("resolved", {})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", 'expected an Alertmanager webhook payload with "version": "4"'),
        (_body(version="3"), 'expected an Alertmanager webhook payload with "version": "4"'),
        (_body(version=4), 'expected an Alertmanager webhook payload with "version": "4"'),
        (b'{"version": "4"}', "alerts: expected a list"),
        (b'{"version": "4", "alerts": {}}', "alerts: expected a list"),
        (_body(_alert(), "x"), "alerts[1]: expected an object"),
        (_body(_alert(status="pending")), "alerts[0].status: expected firing or resolved"),
        (_body(_alert(labels=["t"])), "alerts[0].labels: expected string labels"),
        (_body(_alert(labels={"naomi_trigger": "t", "n": 1})), "alerts[0].labels: expected string labels"),
        (_body(_alert(annotations=["x"])), "alerts[0].annotations: expected string annotations"),
        (
            _body(_alert(annotations={"summary": "s", "n": 2})),
            "alerts[0].annotations: expected string annotations",
        ),
        (
            _body(_alert(labels={"alertname": "a"})),
            "alerts[0].labels.naomi_trigger: missing (not a naomi retraining alert)",
        ),
        (
            _body(_alert(labels={"naomi_trigger": ""})),
            "alerts[0].labels.naomi_trigger: missing (not a naomi retraining alert)",
        ),
        (_body(_alert(fingerprint=7)), "alerts[0]: fingerprint and startsAt must be strings"),
        (_body(_alert(startsAt=None)), "alerts[0]: fingerprint and startsAt must be strings"),
    ],
)
def test_malformed_payloads_name_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_payload(body)
    assert str(raised.value) == message


def test_the_size_limit_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _body(_alert())
    monkeypatch.setattr(module, "MAX_PAYLOAD_BYTES", len(body))
    assert len(parse_payload(body)) == 1
    monkeypatch.setattr(module, "MAX_PAYLOAD_BYTES", len(body) - 1)
    with pytest.raises(module.BodyTooLarge) as raised:
        parse_payload(body)
    assert str(raised.value) == f"body larger than {len(body) - 1} bytes"


# --- decisions --------------------------------------------------------------------------------


def _receiver(cooldown: float = 0.0, **kwargs: Any) -> tuple[Receiver, Recording, Clock]:
    launcher = kwargs.pop("launcher", Recording())
    clock = Clock()
    rules = {"t": Rule("t", "qoe_train", {"steps": 3}, cooldown)}
    return Receiver(rules, launcher, clock, **kwargs), launcher, clock


def _decide(receiver: Receiver, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    recorded: list[tuple[str, str]] = []
    outcomes = receiver.handle(parse_payload(_body(*alerts)), lambda t, d: recorded.append((t, d)))
    assert recorded == [(o["trigger"], o["decision"]) for o in outcomes]
    return outcomes


def test_a_launch_records_every_field_and_calls_the_launcher_once() -> None:
    receiver, launcher, clock = _receiver()
    (outcome,) = _decide(receiver, _alert())
    name = parse_payload(_body(_alert()))[0].execution_name
    assert outcome == {
        "time": clock.now,
        "trigger": "t",
        "status": "firing",
        "alert": {"alertname": "NaomiRetrain_t", "naomi_trigger": "t"},
        "why": "error above 500",
        "decision": "launched",
        "workflow": "qoe_train",
        "execution": "exec-1",
    }
    assert launcher.calls == [("qoe_train", {"steps": 3}, "NaomiRetrain_t: error above 500", name)]
    assert list(receiver.history) == [outcome]


def test_why_falls_back_to_the_alert_name_then_nothing() -> None:
    receiver, launcher, _ = _receiver()
    (first,) = _decide(receiver, _alert(annotations={}))
    assert first["why"] == "NaomiRetrain_t"
    (second,) = _decide(receiver, _alert(annotations={}, labels={"naomi_trigger": "t"}, fingerprint="f2"))
    assert second["why"] == ""
    assert launcher.calls[1][2] == "t: "  # the rule's name stands in for the alert name


def test_unknown_resolved_and_duplicate_are_not_launched_and_not_saved() -> None:
    receiver, launcher, _ = _receiver()
    state = receiver.state
    assert isinstance(state, MemoryState)
    outcomes = _decide(
        receiver, _alert(labels={"naomi_trigger": "other"}), _alert(status="resolved", fingerprint="r")
    )
    assert [o["decision"] for o in outcomes] == ["unknown-trigger", "resolved"]
    assert launcher.calls == [] and state.document is None
    _decide(receiver, _alert())
    saved = state.document
    assert [o["decision"] for o in _decide(receiver, _alert())] == ["duplicate"]
    assert state.document == saved and len(launcher.calls) == 1


def test_one_launch_per_trigger_per_notification() -> None:
    receiver, launcher, _ = _receiver()
    outcomes = _decide(receiver, _alert(fingerprint="a"), _alert(fingerprint="b"))
    assert [o["decision"] for o in outcomes] == ["launched", "grouped"]
    assert len(launcher.calls) == 1
    # the grouped alert counts as handled: its repeat is a duplicate, not a launch
    assert [o["decision"] for o in _decide(receiver, _alert(fingerprint="b"))] == ["duplicate"]


def test_the_cooldown_ends_exactly_at_its_length() -> None:
    receiver, launcher, clock = _receiver(cooldown=100.0)
    _decide(receiver, _alert(fingerprint="a"))
    clock.now += 99.5
    (inside,) = _decide(receiver, _alert(fingerprint="b"))
    assert inside["decision"] == "cooldown"
    assert inside["cooldown_left_seconds"] == pytest.approx(0.5)
    assert [o["decision"] for o in _decide(receiver, _alert(fingerprint="b"))] == ["duplicate"]
    clock.now += 0.5
    assert [o["decision"] for o in _decide(receiver, _alert(fingerprint="c"))] == ["launched"]
    assert len(launcher.calls) == 2


def test_a_failed_launch_is_reported_truncated_and_left_unhandled() -> None:
    receiver, _, _ = _receiver(launcher=Recording(fail=RuntimeError("x" * 400)))
    state = receiver.state
    assert isinstance(state, MemoryState)
    (outcome,) = _decide(receiver, _alert())
    assert outcome["decision"] == "launch-failed"
    assert outcome["error"] == ("RuntimeError: " + "x" * 400)[:300]
    assert state.document is None
    receiver.launcher = Recording()
    assert [o["decision"] for o in _decide(receiver, _alert())] == ["launched"]


def test_each_decision_is_logged_as_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    receiver, _, _ = _receiver()
    with caplog.at_level(logging.INFO, logger="naomi.triggers"):
        (outcome,) = _decide(receiver, _alert())
    assert [json.loads(r.getMessage()) for r in caplog.records] == [outcome]


def test_history_keeps_the_newest_500() -> None:
    receiver, _, _ = _receiver()
    _decide(receiver, *[_alert(status="resolved", fingerprint=str(i)) for i in range(501)])
    assert len(receiver.history) == 500
    assert receiver.history[0]["alert"] == {"alertname": "NaomiRetrain_t", "naomi_trigger": "t"}


# --- state ------------------------------------------------------------------------------------


def test_the_saved_state_forgets_old_and_excess_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_000_000.0
    handled = {
        "t|old|x": now - REMEMBER_SECONDS - 1,
        "t|edge|x": now - REMEMBER_SECONDS,
        "t|a|x": now - 10,
        "t|b|x": now - 5,
    }
    state = MemoryState({"handled": handled, "lastLaunch": {"t": now - 1000}})
    monkeypatch.setattr(module, "MAX_REMEMBERED", 3)
    receiver = Receiver({"t": Rule("t", "w")}, Recording(), Clock(now), state=state)
    _decide(receiver, _alert(fingerprint="new"))
    assert state.document is not None
    assert state.document["handled"] == {
        "t|a|x": now - 10,
        "t|b|x": now - 5,
        "t|new|2026-11-28T10:00:00Z": now,
    }
    assert state.document["lastLaunch"] == {"t": now}


def test_the_edge_of_the_horizon_is_kept() -> None:
    now = 1_000_000.0
    state = MemoryState({"handled": {"t|edge|x": now - REMEMBER_SECONDS}})
    receiver = Receiver({"t": Rule("t", "w")}, Recording(), Clock(now), state=state)
    _decide(receiver, _alert())
    assert state.document is not None and "t|edge|x" in state.document["handled"]


def test_a_state_with_no_lists_loads_empty() -> None:
    receiver = Receiver({}, Recording(), state=MemoryState({"handled": None, "lastLaunch": None}))
    assert (receiver._handled, receiver._last_launch) == ({}, {})


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def exists(self, key: str) -> bool:
        return key in self.objects

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data


def test_object_state_round_trips_sorted_json_and_ignores_a_non_object() -> None:
    store = Store()
    state = ObjectState(store)  # type: ignore[arg-type]
    assert state.load() is None
    state.save({"b": 1, "a": 2})
    assert store.objects == {"state/triggers/receiver.json": b'{"a": 2, "b": 1}'}
    assert state.load() == {"a": 2, "b": 1}
    store.objects["state/triggers/receiver.json"] = b"[1]"
    assert state.load() is None


def test_memory_state_keeps_a_copy() -> None:
    state = MemoryState()
    document: dict[str, Any] = {"handled": {"k": 1.0}}
    state.save(document)
    document["handled"]["k"] = 2.0
    assert state.load() == {"handled": {"k": 1.0}}


def test_load_rules_defaults() -> None:
    rules = load_rules(json.dumps({"triggers": [{"name": "t", "workflow": "w"}]}))
    assert rules == {"t": Rule("t", "w", {}, 0.0)}
    rules = load_rules(
        json.dumps({"triggers": [{"name": 1, "workflow": 2, "inputs": {"a": 1}, "cooldownSeconds": "5"}]})
    )
    assert rules == {"1": Rule("1", "2", {"a": 1}, 5.0)}


# --- HTTP -------------------------------------------------------------------------------------


def _client(token: str | None = TOKEN) -> tuple[TestClient, Recording]:
    receiver, launcher, _ = _receiver()
    return TestClient(create_app(receiver, token)), launcher


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_http_statuses_and_messages() -> None:
    client, launcher = _client()
    assert client.post("/alerts", content=_body(_alert())).status_code == 401
    wrong = client.post("/alerts", content=_body(_alert()), headers=_auth("nope"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "missing or wrong bearer token"})
    bare = client.post("/alerts", content=_body(_alert()), headers={"authorization": TOKEN})
    assert bare.status_code == 200  # the "Bearer " prefix is optional
    bad = client.post("/alerts", content=b"{", headers=_auth())
    assert bad.status_code == 400 and bad.json()["error"].startswith("malformed JSON: ")
    wrong_shape = client.post("/alerts", content=b"[]", headers=_auth())
    assert wrong_shape.status_code == 422
    assert wrong_shape.json() == {"error": 'expected an Alertmanager webhook payload with "version": "4"'}
    big = client.post(
        "/alerts", content=b"x", headers={**_auth(), "content-length": str(MAX_PAYLOAD_BYTES + 1)}
    )
    assert (big.status_code, big.json()) == (413, {"error": f"body larger than {MAX_PAYLOAD_BYTES} bytes"})
    ok = client.post("/alerts", content=_body(_alert(fingerprint="2")), headers=_auth())
    assert [o["decision"] for o in ok.json()["outcomes"]] == ["launched"]
    assert len(launcher.calls) == 2  # the bare-token request launched too
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = metrics.text
    assert 'naomi_trigger_rejected_total{reason="auth"} 2.0' in text
    assert 'naomi_trigger_rejected_total{reason="invalid"} 2.0' in text
    assert 'naomi_trigger_rejected_total{reason="too-large"} 1.0' in text
    assert 'naomi_trigger_decisions_total{decision="grouped",trigger="t"}' not in text
    assert 'naomi_trigger_fired_total{trigger="t"} 2.0' in text


def test_without_a_token_any_request_is_accepted_and_health_lists_triggers() -> None:
    client, _ = _client(token=None)
    response = client.post("/alerts", content=_body(_alert(status="resolved")))
    assert response.status_code == 200
    assert client.get("/healthz").json() == {"status": "ok", "triggers": ["t"]}
    assert [h["decision"] for h in client.get("/history").json()["history"]] == ["resolved"]
    assert 'naomi_trigger_decisions_total{decision="resolved",trigger="t"} 1.0' in client.get("/metrics").text
    assert "naomi_trigger_fired_total{" not in client.get("/metrics").text


def test_the_api_documentation_is_not_served() -> None:
    client, _ = _client()
    assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404, 404, 404]


def test_metrics_are_described() -> None:
    text = _client()[0].get("/metrics").text
    assert "# HELP naomi_trigger_decisions_total Alerts handled, by trigger and decision" in text
    assert "# HELP naomi_trigger_fired_total Retraining executions launched" in text
    assert "# HELP naomi_trigger_rejected_total Refused webhook requests" in text


def test_log_lines_have_sorted_keys(caplog: pytest.LogCaptureFixture) -> None:
    receiver, _, _ = _receiver()
    with caplog.at_level(logging.INFO, logger="naomi.triggers"):
        (outcome,) = _decide(receiver, _alert())
    assert [r.getMessage() for r in caplog.records] == [json.dumps(outcome, sort_keys=True)]


# --- the entry point --------------------------------------------------------------------------


def test_main_serves_the_rules_with_the_token_and_the_object_state(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from workloads.common import storage
    from workloads.triggers import launchers

    rules = tmp_path / "triggers.json"
    rules.write_text(json.dumps({"triggers": [{"name": "t", "workflow": "qoe_train"}]}), encoding="utf-8")
    store = Store()
    served: dict[str, Any] = {}
    roots: list[Any] = []
    logging_setup: list[dict[str, Any]] = []
    launcher = Recording()
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setattr(launchers.FlyteLauncher, "from_environment", staticmethod(lambda: launcher))
    monkeypatch.setattr(storage, "store_from_environment", lambda root: roots.append(root) or store)
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: logging_setup.append(kw))
    monkeypatch.setenv("TRIGGER_TOKEN", TOKEN)
    module.main(["--rules", str(rules), "--port", "9099"])
    assert (served["host"], served["port"]) == ("127.0.0.1", 9099)
    assert [str(r) for r in roots] == [".naomi/state/objects"]
    assert logging_setup == [{"level": logging.INFO, "format": "%(message)s"}]
    client = TestClient(served["app"])
    assert client.get("/healthz").json() == {"status": "ok", "triggers": ["t"]}
    assert client.post("/alerts", content=_body(_alert())).status_code == 401
    assert client.post("/alerts", content=_body(_alert()), headers=_auth()).status_code == 200
    assert launcher.calls[0][0] == "qoe_train"
    assert json.loads(store.objects["state/triggers/receiver.json"])["lastLaunch"].keys() == {"t"}


def test_main_without_a_token_accepts_any_request(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from workloads.common import storage
    from workloads.triggers import launchers

    rules = tmp_path / "triggers.json"
    rules.write_text(json.dumps({"triggers": []}), encoding="utf-8")
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setattr(launchers.FlyteLauncher, "from_environment", staticmethod(Recording))
    monkeypatch.setattr(storage, "store_from_environment", lambda root: Store())
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)
    monkeypatch.setenv("TRIGGER_TOKEN", "")
    module.main(["--rules", str(rules), "--host", "0.0.0.0"])
    assert (served["host"], served["port"]) == ("0.0.0.0", 8080)
    response = TestClient(served["app"]).post("/alerts", content=_body(_alert()))
    assert [o["decision"] for o in response.json()["outcomes"]] == ["unknown-trigger"]


def test_main_requires_the_rules_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        module.main([])
    assert raised.value.code == 2
    assert "the following arguments are required: --rules" in capsys.readouterr().err


def test_main_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        module.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Alertmanager webhooks in, at most one Flyte execution out. options:" in text
    assert "A metric trigger" not in text  # the description is the first paragraph only
    assert "RULES JSON rules file rendered by the stack --host" in text
    assert "HOST 0.0.0.0 inside a container --port" in text
