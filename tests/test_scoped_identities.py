"""Least privilege for MLflow (issue 17, defect 1): no admin login outside the MLflow namespace, one
scoped user per consumer, a metrics-only login for Prometheus.

On the render: what each namespace's Secrets hold and what the users Job's plan grants. On the real
server (the session's platform, `tests.platform_model`: MLflow as rendered on PostgreSQL, its users
made by the rendered users Job through MLflow's auth REST API): what each login can and cannot do,
with the login the render gives that consumer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS
from tests.platform_model import (
    PLATFORM,
    Platform,
    admin_login,
    client_login,
    log_model,
    predicts,
    shared_platform,
    signed_in,
    user_login,
)

ADMIN_PASSWORD = "<secret:mlflow-admin:result>"
PENDING: set[str] = set()  # Secrets known to hold the admin login outside naomi-platform: none


def _secrets(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.kubernetes if o["kind"] == "Secret"]


def _admin_holders(rendered: Rendered) -> set[str]:
    holders = set()
    for secret in _secrets(rendered):
        namespace = secret["metadata"]["namespace"]
        data = json.dumps(secret.get("stringData") or {})
        if namespace != PLATFORM and ADMIN_PASSWORD in data:
            holders.add(f"{namespace}/{secret['metadata']['name']}")
    return holders


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_secret_outside_the_mlflow_namespace_holds_the_admin_login(
    renders: dict[str, Rendered], stack: str
) -> None:
    assert _admin_holders(renders[stack]) - PENDING == set()


def test_flyte_task_pods_hold_the_training_login(renders: dict[str, Rendered]) -> None:
    assert _admin_holders(renders["edge-lab"]) == set()
    (task,) = [s for s in _secrets(renders["edge-lab"]) if s["metadata"]["name"] == "flyte-task-mlflow"]
    assert task["stringData"]["MLFLOW_TRACKING_USERNAME"] == "training"
    assert task["stringData"]["MLFLOW_TRACKING_PASSWORD"] == "<secret:mlflow-user-training:result>"


def test_consumers_get_scoped_logins(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    clients = {
        s["metadata"]["namespace"]: s["stringData"]
        for s in _secrets(rendered)
        if s["metadata"]["name"] == "mlflow-client"
    }
    assert clients["naomi-serving"]["username"] == "serving"
    assert clients["naomi-serving"]["password"] == "<secret:mlflow-user-serving:result>"
    # the registration Job reads every pipeline's champion (not only the served ones)
    assert clients["naomi-workloads"]["username"] == "training"


def test_prometheus_signs_in_with_a_credentials_only_secret(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    (monitor,) = [
        o for o in rendered.kubernetes if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "mlflow"
    ]
    auth = monitor["spec"]["endpoints"][0]["basicAuth"]
    (secret,) = [s for s in _secrets(rendered) if s["metadata"]["name"] == auth["username"]["name"]]
    assert auth["password"]["name"] == secret["metadata"]["name"]
    assert sorted(secret["stringData"]) == ["password", "username"]  # no basic_auth.ini, no Flask key
    assert secret["stringData"]["password"] != ADMIN_PASSWORD
    assert (
        monitor["spec"]["endpoints"][0]["port"] == "metrics"
    )  # the sidecar, not MLflow's admin-only /metrics


def test_the_users_plan_grants_read_on_served_models_and_write_for_training(
    renders: dict[str, Rendered],
) -> None:
    rendered = renders["edge-lab"]
    (config_map,) = [
        o
        for o in rendered.kubernetes
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("mlflow-users-")
    ]
    plan = json.loads(config_map["data"]["users.json"])
    users = {u["username"]: u for u in plan["users"]}
    assert {(g["resourceType"], g["resource"], g["permission"]) for g in users["serving"]["grants"]} == {
        ("registered_model", "qoe", "READ"),  # edge-lab serves qoe (twice)
        ("experiment", "qoe", "READ"),
    }
    assert users["serving"]["modelExperiments"] == ["qoe"]
    assert {(g["resourceType"], g["resource"], g["permission"]) for g in users["training"]["grants"]} == {
        ("experiment", "*", "EDIT"),
        ("registered_model", "*", "EDIT"),
    }
    assert plan["experiments"] == ["mnist", "qoe"]
    assert plan["registeredModels"] == ["mnist", "qoe"]  # no 403-for-absent on a first install
    ini = next(s for s in _secrets(rendered) if s["metadata"]["name"] == "mlflow-auth")["stringData"][
        "basic_auth.ini"
    ]
    assert "default_permission = NO_PERMISSIONS" in ini


# --- on the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(evaluations: dict[str, Evaluation], tmp_path_factory: pytest.TempPathFactory) -> Platform:
    pytest.importorskip("mlflow")
    return shared_platform(evaluations["edge-lab"], tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def models(platform: Platform) -> dict[str, str]:
    """The training login registers qoe (served) and mnist (not served), as the pipelines do."""
    with signed_in(platform.mlflow.url, *user_login(platform.cluster, "training")) as mlflow:
        return {
            "qoe": log_model(mlflow, experiment="qoe", model="qoe"),
            "mnist": log_model(mlflow, experiment="mnist", model="mnist"),
        }


def _status(url: str, path: str, login: tuple[str, str], **body: Any) -> int:
    if body:
        return httpx.post(f"{url}{path}", json=body, auth=login, timeout=60).status_code
    return httpx.get(f"{url}{path}", auth=login, timeout=60).status_code


def test_the_serving_login_reads_the_served_model_and_nothing_else(
    platform: Platform, models: dict[str, str]
) -> None:
    uri, username, password = client_login(platform.cluster, "naomi-serving")
    with signed_in(uri, username, password) as mlflow:
        assert predicts(mlflow, "models:/qoe@champion")
        client = mlflow.MlflowClient()
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            mlflow.pyfunc.load_model("models:/mnist@champion")
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            client.set_registered_model_alias("qoe", "champion", models["qoe"])
        assert [e.name for e in client.search_experiments()] == ["qoe"]
    login = (username, password)
    assert _status(uri, "/api/2.0/mlflow/runs/create", login, experiment_id="0") == 403
    assert _status(uri, "/api/2.0/mlflow/users/create", login, username="x", password="y" * 16) == 403


def test_the_training_login_writes_but_neither_deletes_nor_administers(
    platform: Platform, models: dict[str, str]
) -> None:
    url = platform.mlflow.url
    admin = admin_login(platform.cluster)
    assert _status(url, "/api/2.0/mlflow/registered-models/create", admin, name="admin-owned") == 200
    login = user_login(platform.cluster, "training")
    with signed_in(url, *login) as mlflow:
        client = mlflow.MlflowClient()
        client.set_registered_model_tag("admin-owned", "naomi.note", "edited by training")  # EDIT
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            client.delete_registered_model("admin-owned")
    assert _status(url, "/api/2.0/mlflow/users/create", login, username="x", password="y" * 16) == 403
    grant = {
        "username": "serving",
        "resource_type": "registered_model",
        "resource_id": "*",
        "permission": "READ",
    }
    assert _status(url, "/api/3.0/mlflow/users/permissions/grant", login, **grant) == 403


def test_the_metrics_login_reads_metrics_and_nothing_else(platform: Platform, models: dict[str, str]) -> None:
    metrics = platform.cluster.secret_data(PLATFORM, "mlflow-metrics")
    login = (metrics["username"], metrics["password"])
    assert httpx.get(platform.mlflow.metrics_url, timeout=10).status_code == 401
    assert (
        httpx.get(platform.mlflow.metrics_url, auth=admin_login(platform.cluster), timeout=10).status_code
        == 401
    )
    scraped = httpx.get(platform.mlflow.metrics_url, auth=login, timeout=10)
    assert scraped.status_code == 200
    assert "mlflow_http_request_total" in scraped.text  # the server's own counters, from its files
    # not an MLflow user at all: the API refuses the login
    assert _status(platform.mlflow.url, "/api/2.0/mlflow/experiments/search", login, max_results=1) == 401


def test_a_user_without_grants_sees_nothing(platform: Platform, models: dict[str, str]) -> None:
    """default_permission NO_PERMISSIONS: MLflow's READ default let any login read every model."""
    url, admin = platform.mlflow.url, admin_login(platform.cluster)
    created = _status(
        url, "/api/2.0/mlflow/users/create", admin, username="nobody", password="nobody-password-1"
    )
    assert created in (200, 400)  # 400: an earlier test run of this session made it
    with signed_in(url, "nobody", "nobody-password-1") as mlflow:
        client = mlflow.MlflowClient()
        assert client.search_experiments() == []
        assert client.search_registered_models() == []
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            client.get_registered_model("qoe")


def test_the_registration_jobs_login_reads_every_pipelines_champion(
    platform: Platform, models: dict[str, str]
) -> None:
    """workloads.register asks MLflow whether each pipeline's model has a champion (else it starts
    the first training): with the workloads namespace's login, for served and unserved models."""
    from workloads.register import mlflow_has_champion

    admin = admin_login(platform.cluster)
    # what the users Job does for each pipeline's model on a first install: it exists, untrained
    assert _status(
        platform.mlflow.url, "/api/2.0/mlflow/registered-models/create", admin, name="untrained"
    ) in (200, 400)
    uri, username, password = client_login(platform.cluster, "naomi-workloads")
    with signed_in(uri, username, password) as mlflow:
        assert mlflow_has_champion("qoe") and mlflow_has_champion("mnist")
        assert not mlflow_has_champion("untrained")  # -> the first training starts
        # why the Job creates them: a model that does not exist is a 403 to a non-admin, not a 404
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            mlflow_has_champion("no-such-model")
