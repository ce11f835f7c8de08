"""MLflow's security pieces, exactly (issue 17, mutation testing): the server's arguments (auth app,
proxied artifacts, allowed hosts), the auth config (NO_PERMISSIONS by default), the pod-network
Host patterns at their prefix boundaries, the scoped users and their grants, the users Job's plan,
the argument checks, and the client Secret holding a scoped login (never the admin's). Pure
functions; the Secret is captured instead of registered with Pulumi."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pulumi
import pytest

from infra import mlflow
from infra.contract import Flow, Pods, Port
from infra.mlflow import (
    Mlflow,
    MlflowArgs,
    UserSpec,
    auth_ini,
    client_secret,
    pod_host_patterns,
    scoped_users,
    server_args,
    server_environment,
    users_plan,
)
from infra.profiles import Resources


def test_server_args() -> None:
    assert server_args(artifacts_destination="s3://mlflow", allowed_hosts=("a", "b:*")) == [
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
        "--workers",
        "2",
        "--app-name",
        "basic-auth",
        "--serve-artifacts",
        "--artifacts-destination",
        "s3://mlflow",
        "--allowed-hosts",
        "a,b:*",
    ]
    full = server_args(
        artifacts_destination="s3://m",
        allowed_hosts=("h",),
        static_prefix="/mlflow",
        host="127.0.0.1",
        port=5555,
        workers=4,
        prometheus_dir="/tmp/prom",
    )
    assert full[2:8] == ["--host", "127.0.0.1", "--port", "5555", "--workers", "4"]
    assert full[-4:] == ["--static-prefix", "/mlflow", "--expose-prometheus", "/tmp/prom"]
    assert "--static-prefix" not in server_args(artifacts_destination="s", allowed_hosts=(), static_prefix="")
    assert "--expose-prometheus" not in server_args(
        artifacts_destination="s", allowed_hosts=(), prometheus_dir=""
    )


def test_server_environment() -> None:
    assert server_environment(s3_endpoint="http://minio:9000", auth_config_path="/etc/auth.ini") == {
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        "MLFLOW_AUTH_CONFIG_PATH": "/etc/auth.ini",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "HOME": "/tmp",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


@pytest.mark.parametrize(
    ("cidr", "patterns"),
    [
        ("10.1.0.0/16", ("10.1.*:5000",)),
        ("10.0.0.0/8", ("10.*:5000",)),
        ("10.1.2.0/24", ("10.1.2.*:5000",)),
        ("10.1.128.0/17", ("10.1.*:5000",)),  # widened to the octet boundary
        ("10.1.2.3/32", ("10.1.2.3.*:5000",)),
        ("10.1.5.7/16", ("10.1.*:5000",)),  # host bits ignored
    ],
)
def test_pod_host_patterns(cidr: str, patterns: tuple[str, ...]) -> None:
    assert pod_host_patterns(cidr) == patterns


def test_pod_host_patterns_port_and_refusals() -> None:
    assert pod_host_patterns("10.1.0.0/16", 8080) == ("10.1.*:8080",)
    for cidr in ("fd00::/8", "10.0.0.0/7", "0.0.0.0/0"):
        with pytest.raises(ValueError) as raised:
            pod_host_patterns(cidr)
        assert str(raised.value) == f"pod CIDR must be IPv4 with a prefix of at least /8 (got {cidr!r})"


def test_auth_ini_grants_nothing_by_default() -> None:
    assert auth_ini(database_uri="postgresql://u:p@db/auth", admin_password="secret") == (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        "database_uri = postgresql://u:p@db/auth\n"
        "admin_username = admin\n"
        "admin_password = secret\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    assert "admin_username = root\n" in auth_ini(database_uri="d", admin_password="p", admin_username="root")


def test_scoped_users_read_only_serving_and_editing_training() -> None:
    users = scoped_users(("qoe", "mnist"))
    assert users == {
        "serving": UserSpec(
            username="serving",
            grants=(
                ("registered_model", "mnist", "READ"),
                ("registered_model", "qoe", "READ"),
                ("experiment", "mnist", "READ"),
                ("experiment", "qoe", "READ"),
            ),
            model_experiments=("mnist", "qoe"),
        ),
        "training": UserSpec(
            username="training",
            grants=(("experiment", "*", "EDIT"), ("registered_model", "*", "EDIT")),
        ),
    }
    assert users["serving"].password_env == "MLFLOW_PASSWORD_SERVING"
    assert users["training"].model_experiments == ()
    assert scoped_users(())["serving"].grants == ()


def test_users_plan() -> None:
    users = scoped_users(("qoe",))
    assert users_plan(users, ("qoe", "mnist"), ("qoe", "mnist")) == {
        "experiments": ["mnist", "qoe"],
        "registeredModels": ["mnist", "qoe"],
        "users": [
            {
                "username": "serving",
                "passwordEnv": "MLFLOW_PASSWORD_SERVING",
                "grants": [
                    {"resourceType": "registered_model", "resource": "qoe", "permission": "READ"},
                    {"resourceType": "experiment", "resource": "qoe", "permission": "READ"},
                ],
                "modelExperiments": ["qoe"],
            },
            {
                "username": "training",
                "passwordEnv": "MLFLOW_PASSWORD_TRAINING",
                "grants": [
                    {"resourceType": "experiment", "resource": "*", "permission": "EDIT"},
                    {"resourceType": "registered_model", "resource": "*", "permission": "EDIT"},
                ],
                "modelExperiments": [],
            },
        ],
    }
    assert users_plan({}, ())["registeredModels"] == []
    # sorted by identity, whatever the mapping's order
    reversed_users = dict(reversed(list(users.items())))
    assert [u["username"] for u in users_plan(reversed_users, ())["users"]] == ["serving", "training"]


# --- arguments --------------------------------------------------------------------------------

RESOURCES = Resources(cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi")


def _args(**overrides: Any) -> MlflowArgs:
    arguments: dict[str, Any] = {
        "namespace": "naomi-mlflow",
        "resources": RESOURCES,
        "backend_uri_secret": "mlflow-backend",
        "auth_database_uri": "postgresql://auth",
        "object_store_endpoint": "http://minio:9000",
        "object_store_secret": "mlflow-s3",
        "database": None,
        "object_store": None,
        "external_host": "192.168.50.10",
        "image": "naomi-mlflow:1",
    }
    arguments.update(overrides)
    return MlflowArgs(**arguments)


def _refused(**overrides: Any) -> str:
    with pytest.raises(ValueError) as raised:
        _args(**overrides)
    return str(raised.value)


def test_mlflow_args_checks() -> None:
    args = _args()
    assert (args.replicas, args.generation, args.static_prefix, args.bucket) == (1, 1, "/mlflow", "mlflow")
    assert args.job_resources == mlflow.USERS_JOB_RESOURCES
    assert _refused(replicas=0) == "MlflowArgs.replicas must be >= 1"
    assert _args(replicas=1).replicas == 1
    assert _refused(static_prefix="mlflow") == "MlflowArgs.static_prefix must start with '/'"
    assert _args(static_prefix="").static_prefix == ""
    assert _refused(pod_cidr="fd00::/8") == (
        "MlflowArgs.pod_cidr: pod CIDR must be IPv4 with a prefix of at least /8 (got 'fd00::/8')"
    )
    assert _refused(generation=0) == "MlflowArgs.generation must be >= 1"
    assert _args(generation=1).generation == 1


def test_users_job_resources_fit_the_measured_peak() -> None:
    assert mlflow.USERS_JOB_RESOURCES.spec() == {
        "requests": {"cpu": "50m", "memory": "320Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


# --- the component's logins -------------------------------------------------------------------

USERS_JOB = object.__new__(pulumi.Resource)  # a Resource for depends_on, never registered
MLFLOW_PODS = Pods("naomi-mlflow", {"app.kubernetes.io/name": "mlflow"}, "mlflow")


def _component(**fields: Any) -> Any:
    users = scoped_users(("qoe",))
    defaults = {
        "_users": users,
        "_passwords": {"serving": "pw-serving", "training": "pw-training"},
        "generation": 3,
        "pods": MLFLOW_PODS,
        "url": "http://mlflow.naomi-mlflow:5000/mlflow",
        "users_job": USERS_JOB,
    }
    defaults.update(fields)
    return SimpleNamespace(**defaults)


def test_login_is_a_scoped_user_or_refused() -> None:
    component = _component()
    assert Mlflow.login(component, "serving") == ("serving", "pw-serving")
    assert Mlflow.login(component, "training") == ("training", "pw-training")
    with pytest.raises(KeyError) as raised:
        Mlflow.login(component, "admin")  # type: ignore[arg-type]
    assert raised.value.args == ("no MLflow identity 'admin'; identities: serving, training",)


def test_pod_annotation_and_client_flow() -> None:
    component = _component()
    assert Mlflow.pod_annotation(component) == {"naomi.dev/credentials": "mlflow-3"}
    client = Pods("naomi-serving", {"app": "qoe"}, "qoe")
    assert Mlflow.client(component, client, "serving loads models") == Flow(
        client, MLFLOW_PODS, (Port("http"),), "serving loads models: MLflow API"
    )


class Captured:
    def __init__(self, resource_name: str, **kwargs: Any) -> None:
        self.resource_name = resource_name
        self.kwargs = kwargs


def test_client_secret_holds_a_scoped_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow.k8s.core.v1, "Secret", Captured)
    component = _component()
    component.login = lambda identity: Mlflow.login(component, identity)
    secret = client_secret("serving-mlflow", "naomi-serving", component, identity="serving")
    assert isinstance(secret, Captured) and secret.resource_name == "serving-mlflow"
    assert secret.kwargs["metadata"] == {
        "name": "mlflow-client",
        "namespace": "naomi-serving",
        "labels": {
            "app.kubernetes.io/name": "mlflow-client",
            "app.kubernetes.io/instance": "serving-mlflow",
            "app.kubernetes.io/part-of": "naomi",
            "app.kubernetes.io/managed-by": "pulumi",
        },
    }
    assert secret.kwargs["type"] == "Opaque"
    assert secret.kwargs["string_data"] == {
        "uri": "http://mlflow.naomi-mlflow:5000/mlflow",
        "username": "serving",
        "password": "pw-serving",
    }
    opts = secret.kwargs["opts"]
    assert isinstance(opts, pulumi.ResourceOptions) and opts.depends_on == [USERS_JOB]
    default = client_secret("w", "naomi-workloads", component)
    assert default.kwargs["string_data"]["username"] == "training"  # type: ignore[attr-defined]


def test_client_secret_keeps_the_callers_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow.k8s.core.v1, "Secret", Captured)
    component = _component()
    component.login = lambda identity: Mlflow.login(component, identity)
    secret = client_secret("w", "naomi-workloads", component, pulumi.ResourceOptions(protect=True))
    opts = secret.kwargs["opts"]  # type: ignore[attr-defined]
    assert opts.protect is True and opts.depends_on == [USERS_JOB]
