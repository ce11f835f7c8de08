"""Platform I in the render: object store, Postgres, MLflow and the gateway, secure by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation, evaluate, load_stack_file, stack_program
from naomi.render.tree import Rendered, render
from tests.conftest import EXAMPLE_STACKS


def _objects(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered.kubernetes if o["kind"] == kind]


def _one(rendered: Rendered, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in _objects(rendered, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def _container(obj: dict[str, Any], index: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][index]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_mlflow_artifacts_go_to_the_object_store(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    mlflow = _container(_one(rendered, "Deployment", "mlflow"))
    command = mlflow["command"]
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow"
    env = _env(mlflow)
    assert env["S3_ENDPOINT"] == "http://object-store.naomi-platform.svc.cluster.local:9000"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "$(S3_ENDPOINT)"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "object-store-mlflow", "key": "accessKey"}}
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the image does not ship
    assert env["MLFLOW_BACKEND_STORE_URI"] == {
        "secretKeyRef": {"name": "postgres-mlflow", "key": "sqlalchemyUri"}
    }
    buckets = _one(
        rendered,
        "Job",
        next(
            j["metadata"]["name"]
            for j in _objects(rendered, "Job")
            if j["metadata"]["name"].startswith("object-store-buckets")
        ),
    )
    assert "USER_MLFLOW" in _env(_container(buckets))
    # no volume for artifacts on the MLflow pod: nothing can silently land on its disk
    volumes = _one(rendered, "Deployment", "mlflow")["spec"]["template"]["spec"]["volumes"]
    assert {v["name"] for v in volumes} == {"auth", "tmp", "metrics-server"}


def test_mlflow_auth_is_on_with_a_generated_admin_password(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    mlflow = _container(_one(rendered, "Deployment", "mlflow"))
    assert mlflow["command"][mlflow["command"].index("--app-name") + 1] == "basic-auth"
    ini = _one(rendered, "Secret", "mlflow-auth")["stringData"]["basic_auth.ini"]
    assert "admin_password = <secret:mlflow-admin:result>" in ini
    assert (
        "database_uri = postgresql+psycopg2://mlflow_auth:<secret:postgres-mlflow_auth:result>@postgres."
        in ini
    )
    assert "default_permission = NO_PERMISSIONS" in ini  # scoped users see what they are granted
    assert _env(mlflow)["MLFLOW_SERVER_ALLOWED_HOSTS"].startswith(
        "192.168.50.10,192.168.50.10:*,mlflow.naomi-platform"
    )


def test_postgres_is_internal_generated_and_backed_up(renders: dict[str, Rendered]) -> None:
    rendered = renders["lab-ha"]
    service = _one(rendered, "Service", "postgres")
    assert service["spec"]["type"] == "ClusterIP"
    statefulset = _one(rendered, "StatefulSet", "postgres")
    assert (
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "40Gi"
    )
    assert (
        _one(rendered, "Secret", "postgres-superuser")["stringData"]["password"]
        == "<secret:postgres-superuser:result>"
    )
    for consumer in ("mlflow", "mlflow-auth", "flyte"):
        assert _one(rendered, "Secret", f"postgres-{consumer}")["stringData"]["password"].startswith(
            "<secret:postgres-"
        )
    backup = _one(rendered, "CronJob", "postgres-backup")
    assert backup["spec"]["schedule"] == "15 1 * * *"
    upload = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert upload[:3] == ["python", "/etc/naomi/ops/backup.py", "upload"]
    assert upload[upload.index("--retention-days") + 1] == "14"
    dump = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["command"][-1]
    assert "pg_dump -Fc" in dump and "flyte mlflow mlflow_auth" in dump


def test_postgres_databases_job_is_idempotent_sql(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    job = next(
        j for j in _objects(rendered, "Job") if j["metadata"]["name"].startswith("postgres-databases-")
    )
    script = _container(job)["command"][-1]
    assert "WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlflow')\\gexec" in script
    assert "ALTER ROLE mlflow WITH LOGIN PASSWORD :'pw';" in script
    assert "REVOKE ALL ON DATABASE mlflow FROM PUBLIC;" in script


def test_only_the_gateway_is_exposed(renders: dict[str, Rendered]) -> None:
    for stack, rendered in renders.items():
        services = _objects(rendered, "Service")
        assert all(s["spec"]["type"] == "ClusterIP" for s in services), stack
        (traefik,) = [r for r in rendered.helm if r["chart"] == "traefik"]
        for release in rendered.helm:
            if release is not traefik:
                service = release["values"].get("service") or {}
                assert service.get("type", "ClusterIP") == "ClusterIP", release["release"]
                assert "nodePorts" not in service and "ingress" not in release["values"].get("grafana", {})
        values = traefik["values"]
        assert values["service"]["spec"]["type"] == "NodePort"
        assert values["ports"]["web"]["expose"]["default"] is False
        assert values["ports"]["websecure"]["http"]["tls"]["enabled"] is True
        assert values["ingressRoute"]["dashboard"]["enabled"] is False
        routed = {r["spec"]["routes"][0]["services"][0]["port"] for r in _objects(rendered, "IngressRoute")}
        assert routed.isdisjoint({9000, 5432, 10001, 6379}), stack  # S3 API, Postgres, Ray client, Redis


def test_routes_without_their_own_login_need_the_gateway_login(renders: dict[str, Rendered]) -> None:
    own_login = {"mlflow", "grafana"}
    for route in _objects(renders["edge-lab"], "IngressRoute"):
        middlewares = {m["name"] for m in route["spec"]["routes"][0]["middlewares"]}
        if route["metadata"]["name"] not in own_login:
            assert "basic-auth" in middlewares, route["metadata"]["name"]
        assert "security-headers" in middlewares


def test_gateway_users_and_tls_are_generated(
    renders: dict[str, Rendered], evaluations: dict[str, Evaluation]
) -> None:
    rendered = renders["lab-ha"]
    users = _one(rendered, "Secret", "gateway-users")["stringData"]["users"]
    assert (
        users
        == "admin:<secret:gateway-user-admin:bcryptHash>\noperator:<secret:gateway-user-operator:bcryptHash>\n"
    )
    tls = _one(rendered, "Secret", "gateway-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert tls["stringData"]["tls.key"] == "<secret:gateway-server:privateKeyPem>"
    assert "gatewayUsers" in evaluations["lab-ha"].secret_outputs
    request = next(r for r in evaluations["lab-ha"].records if r.type == "tls:index/certRequest:CertRequest")
    assert request.inputs["dnsNames"] == ["naomi.lab.internal"]
    edge_request = next(
        r for r in evaluations["edge-lab"].records if r.type == "tls:index/certRequest:CertRequest"
    )
    assert edge_request.inputs["ipAddresses"] == ["192.168.50.10"]


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_platform_namespaces_deny_by_default(renders: dict[str, Rendered], stack: str) -> None:
    rendered = renders[stack]
    namespaces = {n["metadata"]["name"] for n in _objects(rendered, "Namespace")}
    denied = {
        p["metadata"]["namespace"]
        for p in _objects(rendered, "NetworkPolicy")
        if p["metadata"]["name"] == "default-deny" and p["spec"]["policyTypes"] == ["Ingress", "Egress"]
    }
    assert namespaces == denied


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_service_account_token_unless_needed(renders: dict[str, Rendered], stack: str) -> None:
    from naomi.policy import pod_spec

    for obj in renders[stack].kubernetes:
        spec = pod_spec(obj)
        if spec is not None:
            assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]


def _variant(stack: str, **changes: Any) -> tuple[dict[str, str], list[str]]:
    config, secrets = load_stack_file(PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml")
    config = dict(config)
    for key, value in changes.items():
        config[f"naomi:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return config, secrets


def test_external_object_store_deploys_no_server() -> None:
    config, secrets = _variant(
        "edge-lab", objectStore={"mode": "external", "external": {"endpoint": "https://s3.lab.example:9000"}}
    )
    config["naomi:objectStoreAccessKey"] = "<secret:naomi:objectStoreAccessKey>"
    config["naomi:objectStoreSecretKey"] = "<secret:naomi:objectStoreSecretKey>"
    secrets = [*secrets, "naomi:objectStoreAccessKey", "naomi:objectStoreSecretKey"]
    rendered = render(evaluate(stack_program(PROJECT_DIR), "external", config, secrets))
    assert not [
        o
        for o in rendered.kubernetes
        if o["metadata"]["name"] == "object-store" and o["kind"] == "StatefulSet"
    ]
    provided = {
        "accessKey": "<secret:naomi:objectStoreAccessKey>",
        "secretKey": "<secret:naomi:objectStoreSecretKey>",
    }
    for name in (
        "object-store-credentials",
        "object-store-mlflow",
        "object-store-flyte",
        "object-store-backup",
    ):
        assert _one(rendered, "Secret", name)["stringData"] == provided
    assert not [
        j for j in _objects(rendered, "Job") if j["metadata"]["name"].startswith("object-store-buckets")
    ]
    env = _env(_container(_one(rendered, "Deployment", "mlflow")))
    assert env["S3_ENDPOINT"] == "https://s3.lab.example:9000"
    assert "objectStoreConsole" not in yaml.safe_load(rendered.files["outputs.yaml"])["urls"]


def test_provided_tls_uses_the_users_certificate() -> None:
    config, secrets = _variant("edge-lab", gateway={"address": "192.168.50.10", "tls": {"mode": "provided"}})
    config["naomi:tlsCertificate"] = "<secret:naomi:tlsCertificate>"
    config["naomi:tlsPrivateKey"] = "<secret:naomi:tlsPrivateKey>"
    secrets = [*secrets, "naomi:tlsCertificate", "naomi:tlsPrivateKey"]
    evaluation = evaluate(stack_program(PROJECT_DIR), "provided", config, secrets)
    assert not [r for r in evaluation.records if r.type.startswith("tls:")]
    tls = _one(render(evaluation), "Secret", "gateway-tls")["stringData"]
    assert tls == {"tls.crt": "<secret:naomi:tlsCertificate>", "tls.key": "<secret:naomi:tlsPrivateKey>"}


def test_full_profile_renders_and_sizes_up(renders: dict[str, Rendered]) -> None:
    config, secrets = _variant("lab-ha", profile="full")
    rendered = render(evaluate(stack_program(PROJECT_DIR), "full", config, secrets))
    lab = _container(_one(renders["lab-ha"], "StatefulSet", "postgres"))["resources"]["requests"]["cpu"]
    full = _container(_one(rendered, "StatefulSet", "postgres"))["resources"]["requests"]["cpu"]
    assert (lab, full) == ("250m", "1")


def test_platform_layer_off_deploys_nothing_but_the_cluster(tmp_path: Path) -> None:
    config, secrets = _variant("edge-lab", layers={"platform": False})
    evaluation = evaluate(stack_program(PROJECT_DIR), "nodes-only", config, secrets)
    assert not [r for r in evaluation.records if r.type.startswith("kubernetes:") and r.custom]
    assert any(r.type == "command:remote:Command" for r in evaluation.records)


def test_each_consumer_gets_its_own_bucket_scoped_credentials(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    for consumer in ("mlflow", "flyte", "backup"):
        secret = _one(rendered, "Secret", f"object-store-{consumer}")["stringData"]
        assert secret == {
            "accessKey": f"naomi-{consumer}",
            "secretKey": f"<secret:object-store-{consumer}:result>",
        }
    job = next(
        j for j in _objects(rendered, "Job") if j["metadata"]["name"].startswith("object-store-buckets")
    )
    plan = json.loads(
        _one(rendered, "ConfigMap", job["metadata"]["name"].replace("-buckets-", "-setup-"))["data"][
            "buckets.json"
        ]
    )
    consumers = {c["name"]: c for c in plan["consumers"]}
    assert consumers["mlflow"]["buckets"] == ["mlflow"]
    assert consumers["flyte"]["buckets"] == ["datasets", "flyte", "ray"]
    assert consumers["backup"] == {
        "name": "backup",
        "buckets": ["backups"],
        "userEnv": "USER_BACKUP",
        "secretEnv": "SECRET_BACKUP",
    }
    env = _env(_container(job))
    assert env["SECRET_FLYTE"] == {"secretKeyRef": {"name": "object-store-flyte", "key": "secretKey"}}
    backup = _one(rendered, "CronJob", "postgres-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    upload_env = {e["name"]: e.get("valueFrom") for e in backup["containers"][0]["env"]}
    assert upload_env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "object-store-backup", "key": "secretKey"}
    }
