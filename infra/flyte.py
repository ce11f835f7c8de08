"""Flyte (the official flyte-binary chart) on the platform's Postgres and object store.

No second Postgres and no NodePort: flyte-binary reads its database password from the Postgres
component's consumer Secret (mounted as a file) and reaches the object store with credentials
from the object store's Secret (environment by reference, `authType: iam` so none are written
into its config). The Ray plugin is on, so `@task(task_config=RayJobConfig(...))` becomes a
RayJob that KubeRay runs. Every execution runs in the workloads namespace, whose task pods get
the object-store endpoint and credentials by reference (`default-env-from-secrets`); presigned
URLs point at the in-cluster endpoint, which is what in-cluster registration needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import pods
from infra.charts import ReleaseSettings, chart_release
from infra.contract import ClusterNetwork, Contract, Flow, Pods, Reachable, Route, ScrapeTarget, tcp
from infra.naming import labels
from infra.profiles import Resources
from infra.versions import FLYTE_BINARY, FLYTE_IMAGE, POSTGRES_IMAGE

RELEASE = "flyte-binary"
HTTP_SERVICE = "flyte-binary-http"
HTTP_PORT = 8088
GRPC_SERVICE = "flyte-binary-grpc"  # FlyteAdmin's gRPC API: registration and FlyteRemote
GRPC_PORT = 8089
GRPC_API = ("AdminService", "AuthMetadataService", "DataProxyService", "IdentityService", "SignalService")
TASK_STORAGE_SECRET = "flyte-task-storage"
TASK_MLFLOW_SECRET = "flyte-task-mlflow"  # MLFLOW_TRACKING_* for pipeline tasks
PROJECT = "naomi"
DB_SECRET_MOUNT = "/var/run/secrets/flyte-db"
METRICS_PORT = 10254
# The chart's pod labels (flyte-binary v1.16.8 templates/_helpers.tpl selectorLabels).
FLYTE_LABELS = {"app.kubernetes.io/name": "flyte-binary", "app.kubernetes.io/instance": RELEASE}
# Flyte puts `default-labels` on every task pod (flyteplugins v1.16.8
# go/tasks/pluginmachinery/flytek8s/config/config.go DefaultLabels); policies select them by it.
TASK_LABELS = {"naomi.io/flyte-task": "true"}


@dataclass(frozen=True, kw_only=True)
class TaskDefaults:
    """Resources every task pod gets unless the task asks otherwise (also used by local tests)."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"


@dataclass(frozen=True, kw_only=True)
class FlyteArgs:
    namespace: str
    workloads_namespace: str
    resources: Resources
    database_host: pulumi.Input[str]
    database_secret: pulumi.Input[str]
    object_store_endpoint: pulumi.Input[str]
    object_store_secret: pulumi.Input[str]
    object_store_credentials: pulumi.Input[dict[str, str]]  # secret: copied for task pods
    database: Reachable
    object_store: Reachable
    mlflow: Reachable | None
    network: ClusterNetwork
    ray_operator: Pods | None = None  # KubeRay's operator pods (RayJobs of Ray tasks)
    bucket: str = "flyte"
    task_defaults: TaskDefaults = TaskDefaults()
    monitoring_release: pulumi.Resource | None = None
    # Where pipeline tasks keep datasets, features, checkpoints and models (NAOMI_STORE).
    task_store: str = "s3://datasets"
    # MLflow for pipeline tasks (registration): in-cluster URI and the generated admin password.
    mlflow_uri: pulumi.Input[str] | None = None
    # The training user's login (never the admin): `Mlflow.login("training")`.
    mlflow_username: str = "training"
    mlflow_password: pulumi.Input[str] | None = None
    # Credential generations of what flyte-binary reads (pod annotation: a rotation restarts it).
    credential_annotations: dict[str, str] = field(default_factory=dict)
    # What must have run before flyte-binary starts (the database and bucket Jobs).
    after: tuple[pulumi.Resource, ...] = ()
    release: ReleaseSettings = field(default_factory=ReleaseSettings)


def flyte_values(
    args: FlyteArgs, *, endpoint: str, database_host: str, object_store_secret: str, database_secret: str
) -> dict[str, Any]:
    """flyte-binary values (checked against the chart's values.yaml by the tests)."""
    image_repository, image_tag = FLYTE_IMAGE.rsplit(":", 1)
    postgres_repository, postgres_tag = POSTGRES_IMAGE.rsplit(":", 1)
    defaults = args.task_defaults
    restricted = pods.container_security_context(read_only_root=False)
    return {
        "configuration": {
            "database": {
                "username": "flyte",
                "passwordPath": f"{DB_SECRET_MOUNT}/password",
                "host": database_host,
                "port": 5432,
                "dbname": "flyte",
                "options": "sslmode=disable",
            },
            "storage": {
                "metadataContainer": args.bucket,
                "userDataContainer": args.bucket,
                "provider": "s3",
                "providerConfig": {
                    "s3": {
                        "region": "us-east-1",
                        "disableSSL": endpoint.startswith("http://"),
                        "v2Signing": True,
                        "endpoint": endpoint,
                        "authType": "iam",
                    },
                },
            },
            "inline": {
                "namespace_mapping": {"template": args.workloads_namespace},
                "plugins": {
                    "k8s": {
                        "inject-finalizer": True,
                        "default-labels": dict(TASK_LABELS),
                        "default-env-vars": [
                            {"FLYTE_AWS_ENDPOINT": endpoint},
                            {"AWS_ENDPOINT_URL": endpoint},
                            {"NAOMI_STORE": args.task_store},
                        ],
                        "default-env-from-secrets": [
                            TASK_STORAGE_SECRET,
                            *([TASK_MLFLOW_SECRET] if args.mlflow_uri is not None else []),
                        ],
                        "default-pod-security-context": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "default-security-context": restricted,
                    },
                    # The head Service of each RayJob: ClusterIP (Flyte's default is NodePort,
                    # flyteplugins v1.16.8 go/tasks/plugins/k8s/ray/config.go defaultConfig).
                    "ray": {
                        "ttlSecondsAfterFinished": 3600,
                        "includeDashboard": True,
                        "serviceType": "ClusterIP",
                    },
                },
                "task_resources": {
                    "defaults": {"cpu": defaults.cpu, "memory": defaults.memory},
                    "limits": {"cpu": defaults.cpu_limit, "memory": defaults.memory_limit},
                },
            },
        },
        "flyte-core-components": {
            "admin": {
                "disableClusterResourceManager": True,
                "seedProjects": [PROJECT],
                "seedProjectsWithDetails": [
                    {"name": PROJECT, "description": "naomi pipelines (registered by the stack)"}
                ],
            },
        },
        "enabled_plugins": {
            "tasks": {
                "task-plugins": {
                    "enabled-plugins": ["container", "sidecar", "k8s-array", "ray"],
                    "default-for-task-types": {
                        "container": "container",
                        "sidecar": "sidecar",
                        "container_array": "k8s-array",
                        "ray": "ray",
                    },
                }
            }
        },
        "deployment": {
            "image": {"repository": image_repository, "tag": image_tag, "pullPolicy": "IfNotPresent"},
            "podAnnotations": dict(args.credential_annotations),
            "resources": args.resources.spec(),
            "extraEnvVars": [
                pods.secret_env("AWS_ACCESS_KEY_ID", object_store_secret, "accessKey"),
                pods.secret_env("AWS_SECRET_ACCESS_KEY", object_store_secret, "secretKey"),
            ],
            "extraVolumes": [
                {
                    "name": "db",
                    "secret": {
                        "secretName": database_secret,
                        "defaultMode": 0o440,
                        "items": [{"key": "password", "path": "password"}],
                    },
                }
            ],
            "extraVolumeMounts": [{"name": "db", "mountPath": DB_SECRET_MOUNT, "readOnly": True}],
            # The chart passes everything but `enabled` through as the pod securityContext
            # (flyte-binary v1.16.8 templates/deployment.yaml); `restricted` needs runAsNonRoot
            # and a seccomp profile, which its defaults lack.
            "podSecurityContext": {
                "enabled": True,
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "securityContext": restricted,
            "waitForDB": {
                "image": {
                    "repository": postgres_repository.removeprefix("docker.io/library/"),
                    "tag": postgres_tag,
                    "pullPolicy": "IfNotPresent",
                },
                "securityContext": restricted,
            },
            "readinessProbe": {"httpGet": {"path": "/healthcheck", "port": "http"}, "periodSeconds": 10},
            "livenessProbe": {
                "httpGet": {"path": "/healthcheck", "port": "http"},
                "periodSeconds": 20,
                "initialDelaySeconds": 30,
            },
        },
        "rbac": {
            "extraRules": [
                {
                    "apiGroups": ["ray.io"],
                    "resources": ["rayjobs", "rayjobs/status"],
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                },
            ]
        },
        "service": {"type": "ClusterIP"},
        "ingress": {"create": False},
    }


class Flyte(pulumi.ComponentResource):
    """flyte-binary release plus the task-pod storage Secret in the workloads namespace."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: FlyteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Flyte", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        credentials = pulumi.Output.secret(args.object_store_credentials)
        k8s.core.v1.Secret(
            f"{name}-task-storage",
            metadata={
                "name": TASK_STORAGE_SECRET,
                "namespace": args.workloads_namespace,
                "labels": labels("flyte", name),
            },
            type="Opaque",
            string_data={
                "FLYTE_AWS_ACCESS_KEY_ID": credentials.apply(lambda c: c["accessKey"]),
                "FLYTE_AWS_SECRET_ACCESS_KEY": credentials.apply(lambda c: c["secretKey"]),
                "AWS_ACCESS_KEY_ID": credentials.apply(lambda c: c["accessKey"]),
                "AWS_SECRET_ACCESS_KEY": credentials.apply(lambda c: c["secretKey"]),
            },
            opts=child,
        )
        if args.mlflow_uri is not None:
            k8s.core.v1.Secret(
                f"{name}-task-mlflow",
                metadata={
                    "name": TASK_MLFLOW_SECRET,
                    "namespace": args.workloads_namespace,
                    "labels": labels("flyte", name),
                },
                type="Opaque",
                string_data={
                    "MLFLOW_TRACKING_URI": args.mlflow_uri,
                    "MLFLOW_TRACKING_USERNAME": args.mlflow_username,
                    "MLFLOW_TRACKING_PASSWORD": pulumi.Output.secret(args.mlflow_password or ""),
                },
                opts=child,
            )
        values = pulumi.Output.all(
            args.object_store_endpoint, args.database_host, args.object_store_secret, args.database_secret
        ).apply(
            lambda v: flyte_values(
                args,
                endpoint=str(v[0]),
                database_host=str(v[1]),
                object_store_secret=str(v[2]),
                database_secret=str(v[3]),
            )
        )
        # Helm release: flyte-binary creates its CRD (flyteworkflows) on start and relies on
        # chart-managed RBAC; a release keeps the upstream lifecycle intact. Its chart has no
        # crds/ folder, so no CRDs are applied for it.
        self.release, _ = chart_release(
            name,
            chart=FLYTE_BINARY,
            release=RELEASE,
            namespace=args.namespace,
            values=values,
            settings=args.release,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
            crds=False,
        )
        if args.monitoring_release is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata={"name": RELEASE, "namespace": args.namespace, "labels": labels("flyte", name)},
                spec={
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "flyte-binary"}},
                    # flyte-binary's admin and propeller publish Prometheus metrics on the profiler port.
                    "podMetricsEndpoints": [
                        {"portNumber": METRICS_PORT, "path": "/metrics", "interval": "30s"}
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, args.monitoring_release]),
            )
        self.pods = Pods(args.namespace, FLYTE_LABELS, "flyte-binary")
        self.contract = flyte_contract(args, self.pods, monitored=args.monitoring_release is not None)
        self.register_outputs({})

    def client(self, pods: Pods, why: str) -> Flow:
        """FlyteAdmin's gRPC API (registration, FlyteRemote)."""
        return Flow(pods, self.pods, tcp("grpc"), f"{why}: FlyteAdmin gRPC")


def flyte_contract(args: FlyteArgs, flyte: Pods, *, monitored: bool) -> Contract:
    """flyte-binary's backends and the API server; the task pods' and Ray task pods' needs."""
    tasks = Pods(args.workloads_namespace, TASK_LABELS, "flyte-tasks")
    ray_nodes = Pods(args.workloads_namespace, {"ray.io/is-ray-node": "yes"}, "flyte-ray-nodes")
    ray_heads = Pods(args.workloads_namespace, {"ray.io/node-type": "head"}, "flyte-ray-heads")
    flows = [
        args.database.client(flyte, "Flyte admin and propeller state"),
        args.object_store.client(flyte, "Flyte metadata and raw data"),
        args.network.to_api_server(flyte, "propeller creates task pods and RayJobs; admin reads namespaces"),
        Flow(
            args.network.control_plane_addresses,
            flyte,
            tcp("webhook"),
            "the API server calls Flyte's pod webhook (secret injection) on pod creation",
            "flyteorg/flyte v1.16.8 flytepropeller/pkg/webhook (MutatingWebhookConfiguration made at start)",
        ),
        args.object_store.client(tasks, "task inputs, outputs and datasets"),
        args.object_store.client(ray_nodes, "Ray task data and Ray Train checkpoints"),
    ]
    if args.mlflow is not None:
        flows += [
            args.mlflow.client(tasks, "training tasks register models"),
            args.mlflow.client(ray_nodes, "Ray training logs runs"),
        ]
    if args.ray_operator is not None:
        flows.append(
            Flow(
                args.ray_operator,
                ray_heads,
                tcp(8265),
                "KubeRay follows each Ray task's RayJob through its head's dashboard",
                "ray-project/kuberay v1.7.0 ray-operator/controllers/ray/rayjob_controller.go",
            )
        )
    route = Route(
        name="flyte",
        prefix="/console",
        extra_prefixes=("/api", "/v1", "/healthcheck", "/config"),
        service=HTTP_SERVICE,
        port=HTTP_PORT,
        backend=flyte,
        target_port="http",
    )
    # FlyteAdmin's gRPC API for pyflyte and FlyteRemote from outside the cluster: the services the
    # chart's own gRPC ingress routes (flyte-binary v1.16.8 templates/_helpers.tpl
    # flyte-binary.ingress.grpcPaths; the health service is left out), over h2c to the gRPC port.
    grpc_route = Route(
        name="flyte-grpc",
        prefix=f"/flyteidl.service.{GRPC_API[0]}",
        extra_prefixes=tuple(f"/flyteidl.service.{service}" for service in GRPC_API[1:]),
        service=GRPC_SERVICE,
        port=GRPC_PORT,
        backend=flyte,
        target_port="grpc",
        scheme="h2c",
    )
    return Contract(
        routes=(route, grpc_route),
        flows=tuple(flows),
        scrape_targets=(ScrapeTarget(flyte, METRICS_PORT),) if monitored else (),
    )
