"""MLflow tracking server and model registry: Postgres backend, artifacts proxied to S3, auth on.

The server runs the basic-auth app with a generated admin password (never MLflow's old
`password1234`), proxies artifacts (`--serve-artifacts --artifacts-destination s3://<bucket>`)
so clients need no object-store credentials, and accepts only the Host headers it is reached
by. `server_args`, `server_environment`, `auth_ini` and `users_plan` are pure functions: the
component and the local test servers (tests/test_mlflow_server.py) use the same ones.

Logins (least privilege). The admin login stays in the MLflow namespace (the server's `mlflow-auth`
Secret, the users Job, `naomi credentials` for people). `default_permission` is NO_PERMISSIONS, and
the post-install users Job (`workloads/ops/mlflow_users.py`) keeps one scoped user per consumer
through MLflow's auth REST API: `serving` reads the served registered models and their experiments
(model artifacts live under the experiment), `training` edits experiments and registered models
(Flyte task pods, the registration Job). Consumers get `client_secret(..., identity=...)`. Prometheus
has a metrics-only login that is not an MLflow user at all: mlflow 3.17.2 refuses a non-admin on
`/metrics` (fail-closed auth, no validator for the route), so a sidecar serves the server's metrics
files to that login alone (`workloads/ops/metrics_server.py`), from a credentials-only Secret.

Rotation (`naomi:credentials.rotation.mlflow`): the passwords are replaced, the users Job (named by
its script, plan and generation) sets the admin's and every user's password, and the server pod
(template annotated with the MLflow, Postgres and object-store generations it reads) restarts.

Host validation (`--allowed-hosts`, mlflow 3.17.2 `server/security_utils.py`
is_allowed_host_header, fnmatch patterns) sees three kinds of Host header: the gateway address users
type, the Service names in-cluster clients use, and `<pod IP>:5000` — what the kubelet's probes
(kubernetes `pkg/probe/http/request.go`: the URL host is the pod IP) and Prometheus' scrapes of the
pod send. The last is allowed for the cluster's pod network only (`pod_host_patterns`); only the
health routes are exempt from the check, `/metrics` is not.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from infra import credentials, pods
from infra.contract import Contract, Flow, Pods, Reachable, Route, ScrapeTarget, tcp
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.versions import MLFLOW_VERSION

PORT = 5000
MLFLOW_UID = 10001
# Secret environment of the server (set by reference in the pod, from a generated value):
BACKEND_URI_ENV = "MLFLOW_BACKEND_STORE_URI"
FLASK_SECRET_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # CSRF key of the auth app; same on every replica
ADMIN = "admin"
METRICS_PORT = 9102
METRICS_USER = "metrics"
OPS_MOUNT = "/etc/naomi/ops"
OPS = Path(__file__).resolve().parent.parent / "workloads" / "ops"
Identity = Literal["serving", "training"]
# The metrics sidecar: a stdlib HTTP server reading a few files per scrape.
METRICS_RESOURCES = Resources(cpu_request="10m", memory_request="32Mi", cpu_limit="100m", memory_limit="96Mi")
# The users Job imports MLflow's auth app and store: 290 MB peak RSS measured (more than the
# profiles' 256Mi helper limit, which would OOM-kill it).
USERS_JOB_RESOURCES = Resources(
    cpu_request="50m", memory_request="320Mi", cpu_limit="1", memory_limit="512Mi"
)


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
        # MLflow's job runner (GenAI scorers, trace archival) is on by default with a database
        # backend and starts a runner and seven huey consumer processes per pod (mlflow 3.17.2
        # `server/__init__.py`, MLFLOW_SERVER_ENABLE_JOB_EXECUTION); the platform uses none of it.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
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


def auth_ini(*, database_uri: str, admin_password: str, admin_username: str = ADMIN) -> str:
    """The basic-auth app config: users in `database_uri`; a user sees only what it is granted."""
    return (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {admin_username}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


@dataclass(frozen=True, kw_only=True)
class UserSpec:
    """One scoped MLflow user: grants as (resource type, name or "*", permission)."""

    username: str
    grants: tuple[tuple[str, str, str], ...]
    # registered models whose versions' experiments the user may read (artifacts live there)
    model_experiments: tuple[str, ...] = ()

    @property
    def password_env(self) -> str:
        return f"MLFLOW_PASSWORD_{self.username.upper()}"


def scoped_users(served_models: tuple[str, ...]) -> dict[Identity, UserSpec]:
    """Who may do what (mlflow 3.17.2 `server/auth/permissions.py`: READ reads, EDIT also writes,
    neither deletes nor manages permissions)."""
    serving_grants = [("registered_model", model, "READ") for model in sorted(served_models)]
    serving_grants += [("experiment", model, "READ") for model in sorted(served_models)]
    return {
        "serving": UserSpec(
            username="serving", grants=tuple(serving_grants), model_experiments=tuple(sorted(served_models))
        ),
        "training": UserSpec(
            username="training",
            grants=(("experiment", "*", "EDIT"), ("registered_model", "*", "EDIT")),
        ),
    }


def users_plan(
    users: Mapping[Identity, UserSpec], experiments: tuple[str, ...], registered_models: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The users Job's plan (workloads/ops/mlflow_users.py reads it)."""
    return {
        "experiments": sorted(experiments),
        "registeredModels": sorted(registered_models),
        "users": [
            {
                "username": user.username,
                "passwordEnv": user.password_env,
                "grants": [
                    {"resourceType": kind, "resource": resource, "permission": permission}
                    for kind, resource, permission in user.grants
                ],
                "modelExperiments": list(user.model_experiments),
            }
            for _, user in sorted(users.items())
        ],
    }


@dataclass(frozen=True, kw_only=True)
class MlflowArgs:
    namespace: str
    resources: Resources
    job_resources: Resources = USERS_JOB_RESOURCES  # the users Job
    backend_uri_secret: pulumi.Input[str]  # Secret with key `sqlalchemyUri` (tracking database)
    auth_database_uri: pulumi.Input[str]  # secret Output: users database (SQLAlchemy URI)
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
    served_models: tuple[str, ...] = ()  # registered models the serving user reads
    experiments: tuple[str, ...] = ()  # created up front, so grants on them exist before training
    # created up front too: a non-admin asking for a model that does not exist gets 403, not 404
    registered_models: tuple[str, ...] = ()
    generation: int = 1  # naomi:credentials.rotation.mlflow
    # Generations of the other credentials the server reads at start (postgres, objectStore).
    upstream_generations: Mapping[str, int] = field(default_factory=dict)
    # What the server waits for: its databases and bucket exist with current credentials (the
    # Postgres and object-store `ready` Jobs). On the Deployment itself: a component's depends_on
    # does not hold back its children (pulumi/pulumi#8721).
    after: tuple[pulumi.Resource, ...] = ()

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("MlflowArgs.replicas must be >= 1")
        if self.static_prefix and not self.static_prefix.startswith("/"):
            raise ValueError("MlflowArgs.static_prefix must start with '/'")
        try:
            pod_host_patterns(self.pod_cidr)
        except ValueError as error:
            raise ValueError(f"MlflowArgs.pod_cidr: {error}") from None
        if self.generation < 1:
            raise ValueError("MlflowArgs.generation must be >= 1")


class Mlflow(pulumi.ComponentResource):
    """Tracking server + registry, its scoped users and their Secrets; secrets stay Outputs."""

    url: pulumi.Output[str]
    admin_secret: pulumi.Output[str]
    admin_password: pulumi.Output[str]
    users_job: k8s.batch.v1.Job
    generation: int

    def __init__(self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Mlflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.generation = args.generation
        generation = args.generation
        admin_password = credentials.password(f"{name}-admin", generation=generation, opts=child)
        flask_key = credentials.password(
            f"{name}-flask-secret-key", generation=generation, length=48, opts=child
        )
        # The server's own Secret: the auth config (auth database URI and password), the admin
        # login, the Flask key. Mounted by the server and the users Job only.
        config = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": f"{name}-auth", "namespace": args.namespace, "labels": labels("mlflow", name)},
            type="Opaque",
            string_data={
                "basic_auth.ini": pulumi.Output.all(args.auth_database_uri, admin_password.result).apply(
                    lambda values: auth_ini(database_uri=values[0], admin_password=values[1])
                ),
                "username": ADMIN,
                "password": admin_password.result,
                "flaskSecretKey": flask_key.result,
            },
            opts=child,
        )
        self.admin_secret = config.metadata.name
        self.admin_password = pulumi.Output.secret(admin_password.result)
        self._users = scoped_users(args.served_models)
        self._passwords: dict[Identity, pulumi.Output[str]] = {
            identity: pulumi.Output.secret(
                credentials.password(f"{name}-user-{identity}", generation=generation, opts=child).result
            )
            for identity in self._users
        }
        users_secret = k8s.core.v1.Secret(
            f"{name}-users",
            metadata={"name": f"{name}-users", "namespace": args.namespace, "labels": labels("mlflow", name)},
            type="Opaque",
            string_data={self._users[i].password_env: self._passwords[i] for i in sorted(self._users)},
            opts=child,
        )
        metrics_password = credentials.password(f"{name}-metrics", generation=generation, opts=child)
        metrics_secret = k8s.core.v1.Secret(
            f"{name}-metrics",
            metadata={
                "name": f"{name}-metrics",
                "namespace": args.namespace,
                "labels": labels("mlflow", name),
            },
            type="Opaque",
            string_data={"username": METRICS_USER, "password": metrics_password.result},
            opts=child,
        )
        service = k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
            spec={
                "type": "ClusterIP",
                "selector": selector_labels("mlflow", name),
                "ports": [
                    {"name": "http", "port": PORT, "targetPort": "http"},
                    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                ],
            },
            opts=child,
        )
        in_cluster = pulumi.Output.concat(service.metadata.name, ".", args.namespace, ".svc.cluster.local")
        self.url = pulumi.Output.concat("http://", in_cluster, f":{PORT}", args.static_prefix)
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
            pods.secret_env(BACKEND_URI_ENV, args.backend_uri_secret, "sqlalchemyUri"),
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
        metrics_script = (OPS / "metrics_server.py").read_text()
        metrics_config = k8s.core.v1.ConfigMap(
            f"{name}-metrics-server",
            metadata={
                # named by its content: a new script is a new name in the pod template (a rollout)
                "name": f"{name}-metrics-server-{credentials.job_suffix(metrics_script, {})}",
                "namespace": args.namespace,
                "labels": labels("mlflow", name),
            },
            data={"metrics_server.py": metrics_script},
            opts=child,
        )
        metrics_sidecar = pods.container(
            "metrics",
            args.image,
            METRICS_RESOURCES,
            command=["python", f"{OPS_MOUNT}/metrics_server.py", "--port", str(METRICS_PORT)],
            env=[
                {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/mlflow-tmp/prometheus"},
                pods.secret_env("METRICS_USERNAME", metrics_secret.metadata.name, "username"),
                pods.secret_env("METRICS_PASSWORD", metrics_secret.metadata.name, "password"),
            ],
            ports=[{"name": "metrics", "containerPort": METRICS_PORT}],
            readinessProbe=pods.http_probe("/healthz", "metrics"),
            livenessProbe=pods.http_probe("/healthz", "metrics", initial_delay=10, period=20),
            volumeMounts=[
                {"name": "tmp", "mountPath": "/mlflow-tmp", "readOnly": True},
                {"name": "metrics-server", "mountPath": OPS_MOUNT, "readOnly": True},
            ],
        )
        probe_path = f"{args.static_prefix}/health" if args.static_prefix else "/health"
        strategy: dict[str, Any] = (
            {"type": "Recreate"}
            if args.replicas == 1
            else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
        )
        pod_annotations = credentials.annotation({**args.upstream_generations, "mlflow": generation})
        deployment = k8s.apps.v1.Deployment(
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
                    "metadata": {
                        "labels": labels("mlflow", name, version=MLFLOW_VERSION),
                        "annotations": pod_annotations,
                    },
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
                            ),
                            metrics_sidecar,
                        ],
                        "volumes": [
                            {
                                "name": "auth",
                                "secret": {"secretName": config.metadata.name, "defaultMode": 0o440},
                            },
                            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "metrics-server", "configMap": {"name": metrics_config.metadata.name}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        if args.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                name,
                metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
                spec={"minAvailable": 1, "selector": {"matchLabels": selector_labels("mlflow", name)}},
                opts=child,
            )
        self.pods = Pods(args.namespace, selector_labels("mlflow", name), "mlflow")
        users_pods = Pods(args.namespace, selector_labels("mlflow-users", name), "mlflow-users")
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
                self.client(users_pods, "users Job: MLflow's auth REST API"),
                args.database.client(users_pods, "users Job: the admin in MLflow's user store"),
            ),
            # the metrics sidecar with its own login (MLflow's /metrics is admin-only)
            scrape_targets=(ScrapeTarget(self.pods, "metrics"),)
            if args.monitoring_release is not None
            else (),
        )
        self.users_job = self._users_job(name, args, config, users_secret, deployment)
        if args.monitoring_release is not None:
            credential = {"name": metrics_secret.metadata.name}
            k8s.apiextensions.CustomResource(
                f"{name}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": name, "namespace": args.namespace, "labels": labels("mlflow", name)},
                spec={
                    "selector": {"matchLabels": selector_labels("mlflow", name)},
                    "endpoints": [
                        {
                            "port": "metrics",
                            "path": "/metrics",
                            "interval": "30s",
                            # The metrics-only login (a credentials-only Secret): not an MLflow user.
                            "basicAuth": {
                                "username": {**credential, "key": "username"},
                                "password": {**credential, "key": "password"},
                            },
                        }
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.monitoring_release]),
            )
        self.register_outputs({"url": self.url, "adminSecret": self.admin_secret})

    def _users_job(
        self,
        name: str,
        args: MlflowArgs,
        config: k8s.core.v1.Secret,
        users_secret: k8s.core.v1.Secret,
        deployment: k8s.apps.v1.Deployment,
    ) -> k8s.batch.v1.Job:
        """The users Job (named by script, plan and generation) and a suspended CronJob to re-run it."""
        script = (OPS / "mlflow_users.py").read_text()
        plan = json.dumps(
            users_plan(self._users, args.experiments, args.registered_models), indent=2, sort_keys=True
        )
        suffix = credentials.job_suffix(script, {"mlflow": args.generation}, plan)
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-users",
            metadata={
                "name": f"{name}-users-{suffix}",
                "namespace": args.namespace,
                "labels": labels("mlflow-users", name),
            },
            data={"mlflow_users.py": script, "users.json": plan},
            opts=pulumi.ResourceOptions(parent=self),
        )
        env = [
            {"name": "MLFLOW_TRACKING_URI", "value": self.url},
            {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": "/etc/mlflow/basic_auth.ini"},
            {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
            {"name": "HOME", "value": "/tmp"},
            *(
                pods.secret_env(user.password_env, users_secret.metadata.name, user.password_env)
                for _, user in sorted(self._users.items())
            ),
        ]
        template = pods.job_pod_template(
            "mlflow-users",
            name,
            MLFLOW_UID,
            [
                pods.container(
                    "users",
                    args.image,
                    args.job_resources,
                    command=["python", f"{OPS_MOUNT}/mlflow_users.py", "--plan", f"{OPS_MOUNT}/users.json"],
                    env=env,
                    volumeMounts=[
                        {"name": "auth", "mountPath": "/etc/mlflow", "readOnly": True},
                        {"name": "ops", "mountPath": OPS_MOUNT, "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                )
            ],
            volumes=[
                {"name": "auth", "secret": {"secretName": config.metadata.name, "defaultMode": 0o440}},
                {"name": "ops", "configMap": {"name": scripts.metadata.name}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            ],
        )
        k8s.batch.v1.CronJob(
            f"{name}-users",
            metadata={
                "name": f"{name}-users",
                "namespace": args.namespace,
                "labels": labels("mlflow-users", name),
            },
            spec={
                "schedule": "0 0 29 2 *",  # never: suspended, a template for `kubectl create job --from`
                "suspend": True,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"backoffLimit": 6, "template": template}},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return k8s.batch.v1.Job(
            f"{name}-users",
            metadata={
                "name": f"{name}-users-{suffix}",
                "namespace": args.namespace,
                "labels": labels("mlflow-users", name),
            },
            spec={"backoffLimit": 10, "ttlSecondsAfterFinished": 86400, "template": template},
            # After the server's rollout: it reads the rotated auth config at start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )

    def login(self, identity: Identity) -> tuple[str, pulumi.Output[str]]:
        """A scoped user's username and password (secret), e.g. for Flyte's task Secret."""
        if identity not in self._users:
            raise KeyError(f"no MLflow identity {identity!r}; identities: {', '.join(sorted(self._users))}")
        return self._users[identity].username, self._passwords[identity]

    def pod_annotation(self) -> dict[str, str]:
        """For consumers' pod templates: they restart when their MLflow password rotates."""
        return credentials.annotation({"mlflow": self.generation})

    def client(self, pods: Pods, why: str) -> Flow:
        """The flow a client needs to reach MLflow's API."""
        return Flow(pods, self.pods, tcp("http"), f"{why}: MLflow API")


def client_secret(
    name: str,
    namespace: str,
    mlflow: Mlflow,
    opts: pulumi.ResourceOptions | None = None,
    *,
    identity: Identity = "training",
) -> k8s.core.v1.Secret:
    """MLflow's in-cluster URI and a scoped login for clients in `namespace` (never the admin).

    `serving` (read the served models) or `training` (the default: the workloads namespace, whose
    registration Job reads every pipeline's champion, and its training tasks). The Secret waits for
    the users Job, so a consumer that starts after it finds its user with the current password.
    """
    username, password = mlflow.login(identity)
    return k8s.core.v1.Secret(
        name,
        metadata={"name": "mlflow-client", "namespace": namespace, "labels": labels("mlflow-client", name)},
        type="Opaque",
        string_data={"uri": mlflow.url, "username": username, "password": password},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[mlflow.users_job])),
    )
