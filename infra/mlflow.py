"""MLflow tracking server and model registry: Postgres backend, artifacts proxied to S3, auth on.

The server runs the basic-auth app with a generated admin password (never MLflow's old
`password1234`), proxies artifacts (`--serve-artifacts --artifacts-destination s3://<bucket>`)
so clients need no object-store credentials, and accepts only the Host headers it is reached
by. `server_args`, `server_environment` and `auth_ini` are pure functions: the component and
the local test server (tests/test_mlflow_server.py) use the same ones.

Host validation (`--allowed-hosts`, mlflow 3.17.2 `server/security_utils.py`
is_allowed_host_header, fnmatch patterns) sees three kinds of Host header: the gateway address users
type, the Service names in-cluster clients use, and `<pod IP>:5000` — what the kubelet's probes
(kubernetes `pkg/probe/http/request.go`: the URL host is the pod IP) and Prometheus' scrapes of the
pod send. The last is allowed for the cluster's pod network only (`pod_host_patterns`); only the
health routes are exempt from the check, `/metrics` is not.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import pods
from infra.contract import Contract, Flow, Pods, Reachable, Route, ScrapeTarget, tcp
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.versions import MLFLOW_VERSION

PORT = 5000
MLFLOW_UID = 10001
# Secret environment of the server (set by reference in the pod, from a generated value):
BACKEND_URI_ENV = "MLFLOW_BACKEND_STORE_URI"
FLASK_SECRET_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # CSRF key of the auth app; same on every replica


def server_args(
    *,
    artifacts_destination: str,
    allowed_hosts: tuple[str, ...],
    static_prefix: str = "",
    host: str = "0.0.0.0",
    port: int = PORT,
    workers: int = 2,
    prometheus_dir: str | None = None,
) -> list[str]:
    """`mlflow server` arguments; the backend store URI comes from MLFLOW_BACKEND_STORE_URI."""
    args = [
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--app-name",
        "basic-auth",
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination,
        "--allowed-hosts",
        ",".join(allowed_hosts),
    ]
    if static_prefix:
        args += ["--static-prefix", static_prefix]
    if prometheus_dir:
        # Served at /metrics (not under the static prefix), behind the same basic auth.
        args += ["--expose-prometheus", prometheus_dir]
    return args


def server_environment(*, s3_endpoint: str, auth_config_path: str) -> dict[str, str]:
    """Non-secret environment of the server (secrets are added by reference)."""
    return {
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_AUTH_CONFIG_PATH": auth_config_path,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "HOME": "/tmp",
    }


def pod_host_patterns(pod_cidr: str, port: int = PORT) -> tuple[str, ...]:
    """Host-header patterns matching `<pod IP>:<port>` for pods of `pod_cidr` (IPv4).

    fnmatch has no CIDR notion: the pattern keeps the whole octets of the prefix (10.1.0.0/16 ->
    `10.1.*:5000`), so a prefix that is not a multiple of 8 is widened to the octet boundary.
    """
    network = ipaddress.ip_network(pod_cidr, strict=False)
    if network.version != 4 or network.prefixlen < 8:
        raise ValueError(f"pod CIDR must be IPv4 with a prefix of at least /8 (got {pod_cidr!r})")
    octets = str(network.network_address).split(".")[: network.prefixlen // 8]
    return (".".join([*octets, "*"]) + f":{port}",)


def auth_ini(*, database_uri: str, admin_password: str, admin_username: str = "admin") -> str:
    """The basic-auth app config: users in `database_uri`, everyone else read-only."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {admin_username}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


@dataclass(frozen=True, kw_only=True)
class MlflowArgs:
    namespace: str
    resources: Resources
    backend_uri_secret: pulumi.Input[str]  # Secret with key `uri` (tracking database)
    auth_database_uri: pulumi.Input[str]  # secret Output: users database
    object_store_endpoint: pulumi.Input[str]
    object_store_secret: pulumi.Input[str]
    database: Reachable  # Postgres (tracking and auth databases)
    object_store: Reachable  # artifacts (--serve-artifacts)
    bucket: str = "mlflow"
    external_host: str
    static_prefix: str = "/mlflow"
    image: pulumi.Input[str]  # naomi-mlflow (images/mlflow), MLflow MLFLOW_VERSION
    pod_cidr: str = "10.1.0.0/16"  # the cluster's pod network (microk8s' Calico default)
    replicas: int = 1
    # The kube-prometheus-stack release: the ServiceMonitor needs its CRD first (None: no monitor).
    monitoring_release: pulumi.Resource | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("MlflowArgs.replicas must be >= 1")
        if self.static_prefix and not self.static_prefix.startswith("/"):
            raise ValueError("MlflowArgs.static_prefix must start with '/'")
        try:
            pod_host_patterns(self.pod_cidr)
        except ValueError as error:
            raise ValueError(f"MlflowArgs.pod_cidr: {error}") from None


class Mlflow(pulumi.ComponentResource):
    """Tracking server + registry; the admin password is a secret output."""

    url: pulumi.Output[str]
    admin_secret: pulumi.Output[str]
    admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Mlflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        admin_password = random.RandomPassword(f"{name}-admin", length=32, special=False, opts=child)
        flask_key = random.RandomPassword(f"{name}-flask-secret-key", length=48, special=False, opts=child)
        config = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": f"{name}-auth", "namespace": args.namespace, "labels": labels("mlflow", name)},
            type="Opaque",
            string_data={
                "basic_auth.ini": pulumi.Output.all(args.auth_database_uri, admin_password.result).apply(
                    lambda values: auth_ini(database_uri=values[0], admin_password=values[1])
                ),
                "username": "admin",
                "password": admin_password.result,
                "flaskSecretKey": flask_key.result,
            },
            opts=child,
        )
        self.admin_secret = config.metadata.name
        self.admin_password = pulumi.Output.secret(admin_password.result)
        service = k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
            spec={
                "type": "ClusterIP",
                "selector": selector_labels("mlflow", name),
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
            opts=child,
        )
        in_cluster = pulumi.Output.concat(service.metadata.name, ".", args.namespace, ".svc.cluster.local")
        allowed_hosts = pulumi.Output.all(in_cluster, service.metadata.name).apply(
            lambda names: ",".join(
                [
                    args.external_host,
                    f"{args.external_host}:*",
                    names[0],
                    f"{names[0]}:*",
                    names[1],
                    f"{names[1]}:*",
                    "localhost:*",
                    *pod_host_patterns(args.pod_cidr),
                ]
            )
        )
        environment = server_environment(
            s3_endpoint="$(S3_ENDPOINT)", auth_config_path="/etc/mlflow/basic_auth.ini"
        )
        env: list[dict[str, Any]] = [
            {"name": "S3_ENDPOINT", "value": args.object_store_endpoint},
            *({"name": key, "value": value} for key, value in sorted(environment.items())),
            pods.secret_env(BACKEND_URI_ENV, args.backend_uri_secret, "uri"),
            pods.secret_env(FLASK_SECRET_ENV, config.metadata.name, "flaskSecretKey"),
            pods.secret_env("AWS_ACCESS_KEY_ID", args.object_store_secret, "accessKey"),
            pods.secret_env("AWS_SECRET_ACCESS_KEY", args.object_store_secret, "secretKey"),
            {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": allowed_hosts},
        ]
        command = server_args(
            artifacts_destination=f"s3://{args.bucket}",
            allowed_hosts=("$(MLFLOW_SERVER_ALLOWED_HOSTS)",),
            static_prefix=args.static_prefix,
            prometheus_dir="/tmp/prometheus",
        )
        probe_path = f"{args.static_prefix}/health" if args.static_prefix else "/health"
        strategy: dict[str, Any] = (
            {"type": "Recreate"}
            if args.replicas == 1
            else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
        )
        k8s.apps.v1.Deployment(
            name,
            metadata={
                "name": name,
                "namespace": args.namespace,
                "labels": labels("mlflow", name, version=MLFLOW_VERSION),
            },
            spec={
                "replicas": args.replicas,
                "strategy": strategy,
                "selector": {"matchLabels": selector_labels("mlflow", name)},
                "template": {
                    "metadata": {"labels": labels("mlflow", name, version=MLFLOW_VERSION)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security_context(MLFLOW_UID),
                        "containers": [
                            pods.container(
                                "mlflow",
                                args.image,
                                args.resources,
                                command=command,
                                env=env,
                                ports=[{"name": "http", "containerPort": PORT}],
                                readinessProbe=pods.http_probe(probe_path, "http"),
                                livenessProbe=pods.http_probe(
                                    probe_path, "http", initial_delay=30, period=20
                                ),
                                volumeMounts=[
                                    {"name": "auth", "mountPath": "/etc/mlflow", "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            )
                        ],
                        "volumes": [
                            {
                                "name": "auth",
                                "secret": {"secretName": config.metadata.name, "defaultMode": 0o440},
                            },
                            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        ],
                    },
                },
            },
            opts=child,
        )
        if args.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                name,
                metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
                spec={"minAvailable": 1, "selector": {"matchLabels": selector_labels("mlflow", name)}},
                opts=child,
            )
        self.pods = Pods(args.namespace, selector_labels("mlflow", name), "mlflow")
        self.contract = Contract(
            routes=(
                Route(
                    name="mlflow",
                    prefix=args.static_prefix or "/mlflow",
                    service=name,
                    port=PORT,
                    backend=self.pods,
                    target_port="http",
                    auth=False,  # MLflow's own basic auth
                ),
            ),
            flows=(
                args.database.client(self.pods, "MLflow tracking and auth stores"),
                args.object_store.client(self.pods, "MLflow artifacts (proxied)"),
            ),
            scrape_targets=(ScrapeTarget(self.pods, "http"),) if args.monitoring_release is not None else (),
        )
        if args.monitoring_release is not None:
            credential = {"name": config.metadata.name}
            k8s.apiextensions.CustomResource(
                f"{name}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
                spec={
                    "selector": {"matchLabels": selector_labels("mlflow", name)},
                    "endpoints": [
                        {
                            "port": "http",
                            "path": "/metrics",
                            "interval": "30s",
                            # MLflow's auth covers /metrics too; Prometheus signs in as admin.
                            "basicAuth": {
                                "username": {**credential, "key": "username"},
                                "password": {**credential, "key": "password"},
                            },
                        }
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.monitoring_release]),
            )
        self.url = pulumi.Output.concat("http://", in_cluster, f":{PORT}", args.static_prefix)
        self.register_outputs({"url": self.url, "adminSecret": self.admin_secret})

    def client(self, pods: Pods, why: str) -> Flow:
        """The flow a client needs to reach MLflow's API."""
        return Flow(pods, self.pods, tcp("http"), f"{why}: MLflow API")


def client_secret(
    name: str, namespace: str, mlflow: Mlflow, opts: pulumi.ResourceOptions | None = None
) -> k8s.core.v1.Secret:
    """MLflow's in-cluster URI and login for clients in `namespace` (serving, workloads).

    The generated admin login: MLflow's basic-auth has no per-namespace users before its API is
    up (a read-only user for serving is a post-install step, see docs/platform.md).
    """
    return k8s.core.v1.Secret(
        name,
        metadata={"name": "mlflow-client", "namespace": namespace, "labels": labels("mlflow-client", name)},
        type="Opaque",
        string_data={"uri": mlflow.url, "username": "admin", "password": mlflow.admin_password},
        opts=opts,
    )
