"""The real MLflow server as the platform runs it: Postgres backend, auth on, artifacts proxied to S3.

The server is the render's own MLflow pod (`tests.platform_model`: the Deployment's containers
started as rendered, on the session's PostgreSQL 15 with both databases, tracking and auth, made by
the rendered databases Job, users made by the rendered users Job), with a moto S3 server on
loopback for the object store. The client holds no S3 credentials: artifacts must travel through
the server's proxy and land in the bucket (NAOMI's artifacts stayed on the pod's disk).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("moto")

import httpx
from minio import Minio

from naomi.render.engine import Evaluation
from tests.platform_model import admin_login, shared_platform, user_login

PREFIX = "/mlflow"


@dataclass
class Server:
    url: str
    password: str
    s3: Minio
    metrics_url: str
    logins: dict[str, str]  # scoped MLflow user -> password, as the rendered users Job made them


@pytest.fixture(scope="module")
def server(evaluations: dict[str, Evaluation], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    platform = shared_platform(evaluations["edge-lab"], tmp_path_factory.mktemp("platform"))
    _, password = admin_login(platform.cluster)
    yield Server(
        url=platform.mlflow.url,
        password=password,
        s3=platform.s3.client,
        metrics_url=f"http://localhost:{platform.mlflow.port}/metrics",
        logins=dict(user_login(platform.cluster, identity) for identity in ("serving", "training")),
    )


def test_unauthenticated_and_wrong_password_requests_are_refused(server: Server) -> None:
    search = f"{server.url}/api/2.0/mlflow/experiments/search"
    assert httpx.post(search, json={"max_results": 1}).status_code == 401
    assert httpx.post(search, json={"max_results": 1}, auth=("admin", "password1234")).status_code == 401
    assert httpx.post(search, json={"max_results": 1}, auth=("admin", server.password)).status_code == 200


def test_foreign_host_header_is_refused(server: Server) -> None:
    response = httpx.get(
        f"{server.url}/api/2.0/mlflow/experiments/search",
        headers={"Host": "evil.example"},
        auth=("admin", server.password),
    )
    assert response.status_code in (400, 403)


def test_log_register_and_load_a_model_through_the_proxy(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    for key in [k for k in os.environ if k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL"]:
        monkeypatch.delenv(key)  # the client has no object-store credentials at all
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    mlflow.set_tracking_uri(server.url)
    features = np.arange(20, dtype=float).reshape(10, 2)
    target = features @ np.array([2.0, -1.0]) + 0.5
    model = LinearRegression().fit(features, target)
    mlflow.set_experiment("proxy-check")
    with mlflow.start_run():
        mlflow.log_param("kind", "linear")
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="proxy-check",
            # the signature the generic model server validates against; no input example (its
            # validation costs ~25 s and proves nothing here)
            signature=mlflow.models.infer_signature(features, target),
            pip_requirements=["scikit-learn"],  # skip requirement inference (slow, irrelevant here)
        )
    client = mlflow.MlflowClient()
    version = client.search_model_versions("name='proxy-check'")[0].version
    client.set_registered_model_alias("proxy-check", "champion", version)
    loaded = mlflow.pyfunc.load_model("models:/proxy-check@champion")
    assert np.allclose(loaded.predict(features[:3]), target[:3])

    stored = [obj.object_name for obj in server.s3.list_objects("mlflow", recursive=True)]
    assert any(name.endswith("MLmodel") for name in stored), stored


def test_the_servers_own_metrics_need_the_admin_login(server: Server) -> None:
    """/metrics of MLflow itself: admins only (3.17.2 fails closed for other users); Prometheus reads
    the same metrics from the sidecar with its own login (tests/test_scoped_identities.py)."""
    assert httpx.get(server.metrics_url).status_code == 401
    response = httpx.get(server.metrics_url, auth=("admin", server.password))
    assert response.status_code == 200
    assert "mlflow_exporter_info" in response.text


def test_qoe_registry_aliases_promote_and_refuse(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import numpy as np

    from workloads.qoe.data import load_reports, synthetic_reports
    from workloads.qoe.features import FeatureSpec, build
    from workloads.qoe.model import ModelConfig, QoeForecaster
    from workloads.qoe.registry import register
    from workloads.qoe.train import Evaluation, TrainConfig

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    mlflow.set_tracking_uri(server.url)
    # its own name: the session's platform holds other tests' `qoe` versions
    name = "qoe-registry-check"
    spec = FeatureSpec()
    splits = build(load_reports(synthetic_reports(steps=200)), spec)
    model = QoeForecaster(ModelConfig(hidden=8, layers=1), spec.features.index(spec.target))
    model.fit_scaling(splits.train.x, splits.train.y)
    model.eval()
    history = [
        {"epoch": 0.0, "train_loss": 1.0, "valid_loss": 0.9},
        {"epoch": 1.0, "train_loss": 0.5, "valid_loss": 0.6},
    ]

    def attempt(mae: float) -> tuple[str, bool, str]:
        scores = Evaluation(model_mae=mae, last_value_mae=2.0, linear_mae=3.0, model_rmse=mae, windows=10)
        done = register(
            model, scores, spec, TrainConfig(), history, splits.test.x[:2], experiment=name, name=name
        )
        return done.version, done.decision.promote, done.decision.reason

    assert attempt(1.0)[1] is True
    second = attempt(1.5)
    assert second[1] is False and "does not beat the champion (1)" in second[2]
    assert attempt(0.5)[1] is True
    fourth = attempt(2.5)
    assert fourth[1] is False and "does not beat last value" in fourth[2]

    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(name, "champion").version == "3"
    assert client.get_model_version_by_alias(name, "candidate").version == "4"
    assert client.get_model_version(name, "2").tags["naomi.decision"] == "keep"
    run = client.get_run(client.get_model_version(name, "3").run_id)
    assert run.data.metrics["test_mae"] == 0.5 and run.data.tags["naomi.decision"] == "promote"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_loss")] == [0, 1]
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    expected = model(__import__("torch").from_numpy(splits.test.x[:5])).detach().numpy()
    assert np.allclose(np.asarray(loaded.predict(splits.test.x[:5])).reshape(-1), expected, atol=1e-5)


def test_generic_model_server_serves_a_registered_model(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runtime `deployment`: the generic server loads models:/proxy-check@champion from the real
    server (auth, S3 proxy), validates input against the signature, exports metrics; a bounded load
    run on loopback ends with 0 errors."""
    import numpy as np

    from workloads.common.model_server import build_app, load
    from workloads.common.serving import serve_locally

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    import mlflow

    mlflow.set_tracking_uri(server.url)
    if not mlflow.MlflowClient().search_model_versions("name='proxy-check'"):
        test_log_register_and_load_a_model_through_the_proxy(server, monkeypatch)
    model = load("models:/proxy-check@champion")
    assert model.shape == (None, 2) and model.version == "1"
    http_server, port = serve_locally(build_app(model))
    url = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{url}/healthz").json()
        assert health["model"] == "proxy-check" and health["input"]["shape"] == [-1, 2]
        answer = httpx.post(f"{url}/predict", json={"inputs": [[2.0, 3.0], [4.0, 5.0]]})
        assert answer.status_code == 200
        assert np.allclose(answer.json()["predictions"], [1.5, 3.5])  # on the training manifold (x2 = x1 + 1)
        for body in (b"{", b'{"inputs": [[1.0]]}', b'{"inputs": [[1.0, NaN]]}', b'{"rows": []}'):
            rejected = httpx.post(
                f"{url}/predict", content=body, headers={"content-type": "application/json"}
            )
            assert 400 <= rejected.status_code < 500 and rejected.json()["error"], body
        statuses = [
            httpx.post(f"{url}/predict", json={"inputs": [[float(i), 1.0]]}).status_code for i in range(200)
        ]
        assert statuses.count(200) == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'naomi_serving_request_seconds_count{model="proxy-check"} 201.0' in metrics
        assert 'naomi_serving_errors_total{model="proxy-check",reason="invalid"} 4.0' in metrics
    finally:
        http_server.should_exit = True


def test_model_server_refuses_a_bad_uri() -> None:
    from workloads.common.model_server import resolve_version

    with pytest.raises(ValueError, match="expected models:/<name>@<alias>"):
        resolve_version("s3://bucket/model")
    with pytest.raises(ValueError, match="the version must be a number"):
        resolve_version("models:/qoe/latest")
