"""QoE serving app: hostile requests get a 4xx with a message, the service keeps serving."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from workloads.common.serving import MAX_BODY_BYTES
from workloads.qoe.model import ModelConfig, QoeForecaster
from workloads.qoe.serving import ModelInfo, Predictor, create_app

INFO = ModelInfo(name="qoe", version="3", window=10, features=4)


@pytest.fixture(scope="module")
def client() -> TestClient:
    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0)
    model.eval()
    return TestClient(create_app(Predictor(model, INFO), INFO), raise_server_exceptions=False)


def _windows(n: int = 2) -> list:  # type: ignore[type-arg]
    return np.arange(n * 10 * 4, dtype=float).reshape(n, 10, 4).tolist()


def test_health_and_prediction(client: TestClient) -> None:
    assert client.get("/healthz").json() == {
        "status": "ok",
        "model": "qoe",
        "version": "3",
        "input": {"window": 10, "features": 4},
    }
    response = client.post("/predict", json={"windows": _windows(3)})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (
            json.dumps({"windows": _windows(1), "extra": 1}).encode(),
            422,
            'expected {"windows": [...]} and nothing else',
        ),
        (json.dumps({"windows": []}).encode(), 422, "windows: expected a list of 1 to 256 windows"),
        (json.dumps({"windows": [[[1, 2, 3, 4]] * 9]}).encode(), 422, "windows[0]: expected 10 time steps"),
        (json.dumps({"windows": [[[1, 2, 3]] * 10]}).encode(), 422, "windows[0][0]: expected 4 numbers"),
        (
            b'{"windows": [[[NaN, 1, 2, 3]' + b", [1, 2, 3, 4]" * 9 + b"]]}",
            400,
            "NaN is not allowed in JSON input",
        ),
        (json.dumps({"windows": [[["1", 2, 3, 4]] * 10]}).encode(), 422, 'expected finite numbers, got "1"'),
        (
            json.dumps({"windows": _windows(300)}).encode(),
            422,
            "windows: expected a list of 1 to 256 windows",
        ),
        (b'{"windows": ' + b" " * MAX_BODY_BYTES + b"[]}", 413, "body larger than 1000000 bytes"),
    ],
    ids=["garbage", "extra-key", "empty", "short-window", "narrow", "nan", "string", "too-many", "oversized"],
)
def test_hostile_requests_get_4xx_and_the_service_stays_up(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "Traceback" not in response.text
    assert client.post("/predict", json={"windows": _windows(1)}).status_code == 200


def test_metrics_count_latency_errors_and_predictions(client: TestClient) -> None:
    client.post("/predict", content=b"[", headers={"content-type": "application/json"})
    client.post("/predict", json={"windows": _windows(2)})
    text = client.get("/metrics").text
    assert 'naomi_serving_errors_total{model="qoe",reason="invalid"}' in text
    assert 'naomi_serving_request_seconds_count{model="qoe"}' in text
    assert 'naomi_serving_prediction_count{model="qoe"}' in text


def test_body_limit_is_the_documented_one() -> None:
    assert MAX_BODY_BYTES == 1_000_000


def test_bounded_load_on_loopback_has_no_errors() -> None:
    import httpx

    from workloads.common.serving import serve_locally

    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0)
    model.eval()
    server, port = serve_locally(create_app(Predictor(model, INFO), INFO))
    statuses = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        for index in range(300):  # bounded: 300 requests, every 10th one hostile
            if index % 10 == 9:
                statuses.append(
                    http.post(
                        "/predict", content=b"{bad", headers={"content-type": "application/json"}
                    ).status_code
                )
            else:
                statuses.append(http.post("/predict", json={"windows": _windows(1)}).status_code)
    server.should_exit = True
    assert statuses.count(200) == 270 and statuses.count(400) == 30


def test_feedback_records_error_against_ground_truth_and_input_drift(client: TestClient) -> None:
    answer = client.post("/predict", json={"windows": _windows(2)}).json()
    ids, predictions = answer["ids"], answer["predictions"]
    assert len(ids) == 2 == len(set(ids))
    recorded = client.post(
        "/feedback", json={"ids": [*ids, "unknown-1"], "actuals": [predictions[0] + 3, predictions[1], 1]}
    )
    assert recorded.json() == {"recorded": 2, "unknown": 1, "duplicate": 0}
    again = client.post("/feedback", json={"ids": ids, "actuals": [0, 0]})
    assert again.json() == {"recorded": 0, "unknown": 0, "duplicate": 2}  # each prediction is scored once
    text = client.get("/metrics").text
    assert 'naomi_serving_error_count{model="qoe"} 2.0' in text
    assert 'naomi_serving_error_sum{model="qoe"} 3.0' in text
    assert 'naomi_serving_input_mean{model="qoe"}' in text
    # The exact pair the retraining rules divide (Ray exports histogram sums approximately).
    assert 'naomi_serving_feedback_total{model="qoe"} 2.0' in text
    assert 'naomi_serving_feedback_error_total{model="qoe"} 3.0' in text
    bad = client.post("/feedback", json={"ids": ids, "actuals": [1]})
    assert bad.status_code == 422 and "actuals: expected 2 numbers" in bad.json()["error"]


# --- hostile numbers and bodies (issue 15, defect 9) -------------------------------------------


def _window_with(value: str) -> bytes:
    """One window whose first number is `value` verbatim (JSON text), the rest plain."""
    rows = ", ".join(["[1, 2, 3, 4]"] * 9)
    return f'{{"windows": [[[{value}, 2, 3, 4], {rows}]]}}'.encode()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_window_with("1e39"), 422, "windows[0][0][0]: 1e+39 is outside the float32 range"),
        (_window_with("-3.5e38"), 422, "windows[0][0][0]: -3.5e+38 is outside the float32 range"),
        (_window_with("9" * 400), 422, "windows[0][0][0]: an integer of more than 30 digits is outside"),
        (_window_with("1" * 5000), 400, "malformed JSON: Exceeds the limit (4300 digits)"),
        (b'{"windows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "malformed JSON: nested too deeply"),
    ],
    ids=["float32-overflow", "float32-underflow", "400-digits", "5000-digits", "nested-100000"],
)
def test_hostile_numbers_get_4xx_naming_the_field(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, message in response.json()["error"]) == (status, True), response.text
    assert client.post("/predict", json={"windows": _windows(1)}).status_code == 200


def test_feedback_with_hostile_numbers_gets_4xx(client: TestClient) -> None:
    ids = client.post("/predict", json={"windows": _windows(1)}).json()["ids"]
    for actual, status, message in (
        ("9" * 400, 422, "actuals[0]: an integer of more than 30 digits is outside the float32 range"),
        ("1e39", 422, "actuals[0]: 1e+39 is outside the float32 range"),
        ("[" * 100_000, 400, "malformed JSON"),
    ):
        body = f'{{"ids": ["{ids[0]}"], "actuals": [{actual}]}}'.encode()
        response = client.post("/feedback", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status and message in response.json()["error"], response.text


def test_body_limit_is_enforced_while_reading_the_stream() -> None:
    """A chunked body (no Content-Length) of unbounded size: the server answers 413 once the limit
    is passed, while the client is still sending (it never finishes: 100 MB are announced)."""
    import socket

    from workloads.common.serving import serve_locally

    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0).eval()
    server, port = serve_locally(create_app(Predictor(model, INFO), INFO))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            piece = b" " * 65_536
            for _ in range(24):  # 1.5 MB of the announced 100 MB
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            answer = connection.recv(4096)  # the body is unfinished: only a streaming check answers
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"body larger than 1000000 bytes" in answer
    finally:
        server.should_exit = True


def test_feedback_ids_are_scored_by_any_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas of one served model (the platform gives both the same NAOMI_FEEDBACK_KEY):
    a prediction made by one is scored by the other; a forged or foreign id is not."""
    monkeypatch.setenv("NAOMI_FEEDBACK_KEY", "shared-key-of-this-served-model")
    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0).eval()
    first, second = (TestClient(create_app(Predictor(model, INFO), INFO)) for _ in range(2))
    answer = first.post("/predict", json={"windows": _windows(2)}).json()
    scored = second.post(
        "/feedback", json={"ids": answer["ids"], "actuals": [p + 2 for p in answer["predictions"]]}
    ).json()
    assert (scored["recorded"], scored["unknown"]) == (2, 0)
    assert 'naomi_serving_error_sum{model="qoe"} 4.0' in second.get("/metrics").text
    monkeypatch.setenv("NAOMI_FEEDBACK_KEY", "another-served-model")
    foreign = TestClient(create_app(Predictor(model, INFO), INFO))
    forged = answer["ids"][0][:-4] + ("AAAA" if not answer["ids"][0].endswith("AAAA") else "BBBB")
    refused = foreign.post("/feedback", json={"ids": [answer["ids"][1], forged], "actuals": [1, 1]}).json()
    assert (refused["recorded"], refused["unknown"]) == (0, 2)
