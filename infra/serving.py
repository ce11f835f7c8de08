"""Model serving: one component per `serving.models[]` entry, routed through the gateway with auth.

Runtime `ray-serve`: a RayService (KubeRay) running the model's Ray Serve application from the
naomi-ray image (`workloads.<model>.serve_deployment:app_builder`, FastAPI ingress, request
batching, autoscaling replicas); its worker group sits on the chosen Ray pool's architecture.
KubeRay upgrades with a new cluster and switches traffic when it is ready (zero downtime).
Runtime `deployment`: Deployment + Service + HorizontalPodAutoscaler (+ PodDisruptionBudget when
more than one replica) running the generic MLflow model server (`naomi-model-server`, multi-arch,
so amd64 and arm64 alike). Both read the model from MLflow with a client Secret in the serving
namespace; editing `version` or `alias` in config changes only that model's objects.

Both follow the registry (`workloads.common.follow`): a promoted version reaches users within one
poll, and on a bare cluster they start without a model (`/predict` answers 503 until the first
training promotes one) and count as ready, so the first `pulumi up` does not wait on a model
nobody has trained yet. The generic server's readiness is `/ready` (a model loaded, or none to
load), its liveness `/healthz`. Every replica of a model signs feedback ids with the same
generated key (`<name>-feedback-key`), so `/feedback` is scored whichever replica receives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from infra import pods
from infra.contract import Contract, Pods, Reachable, Route, ScrapeTarget
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.quantities import cpu_cores
from infra.ray import (
    METRICS_PORT,
    RayPlatform,
    RayPlatformArgs,
    RayPool,
    cluster_spec,
    head_group,
    worker_group,
)
from workloads import catalogue
from workloads.common.serve_env import SERVE_PROCESS_ENV

# Registered model name -> its Ray Serve application (a builder taking the args below).
SERVE_APPS = catalogue.SERVE_APPS
SERVE_PORT = 8000  # Ray Serve's HTTP proxy (KubeRay's `<name>-serve-svc`)
SERVER_PORT = 8080  # the generic model server
SERVER_UID = 10001
MLFLOW_CLIENT_SECRET = "mlflow-client"
FEEDBACK_KEY_ENV = "NAOMI_FEEDBACK_KEY"  # workloads.common.serving reads it


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    model: str
    version: int | None
    alias: str | None
    runtime: Literal["ray-serve", "deployment"]
    arch: Literal["amd64", "arm64"]
    min: int
    max: int
    cpu: str
    memory: str
    pool: RayPool | None = None  # ray-serve: the pool whose architecture and size the workers take

    def __post_init__(self) -> None:
        if (self.version is None) == (self.alias is None):
            raise ValueError(f"ModelSpec {self.name}: set exactly one of version or alias")
        if self.runtime == "ray-serve" and self.model not in SERVE_APPS:
            raise ValueError(
                f"ModelSpec {self.name}: no Ray Serve application for model {self.model!r} "
                f"(known: {', '.join(sorted(SERVE_APPS))}); use runtime 'deployment'"
            )

    @property
    def model_uri(self) -> str:
        return (
            f"models:/{self.model}/{self.version}"
            if self.version is not None
            else f"models:/{self.model}@{self.alias}"
        )

    @property
    def replicas(self) -> int:
        """Replicas kept running: `min`, but at least one (a route needs a backend)."""
        return max(self.min, 1)

    @property
    def service(self) -> str:
        return f"{self.name}-serve-svc" if self.runtime == "ray-serve" else self.name

    @property
    def port(self) -> int:
        return SERVE_PORT if self.runtime == "ray-serve" else SERVER_PORT


def route(spec: ModelSpec, namespace: str) -> Route:
    """`https://<gateway>/serving/<name>/predict`, basic auth, prefix stripped."""
    return Route(
        name=f"serving-{spec.name}",
        prefix=f"/serving/{spec.name}",
        service=spec.service,
        port=spec.port,
        backend=Pods(namespace, pod_selector(spec), f"serving-{spec.name}"),
        strip_prefix=True,
    )


def metadata(spec: ModelSpec, namespace: str) -> dict[str, Any]:
    """Name, namespace and labels of every object serving `spec` (but the RayService's own)."""
    return {"name": spec.name, "namespace": namespace, "labels": labels("model-server", spec.name)}


def pod_selector(spec: ModelSpec) -> dict[str, str]:
    """Labels of the pods answering for `spec` (Ray pods carry `naomi.io/rayservice`)."""
    if spec.runtime == "ray-serve":
        return {"naomi.io/rayservice": spec.name}
    return selector_labels("model-server", spec.name)


def feedback_secret(spec: ModelSpec) -> str:
    return f"{spec.name}-feedback-key"


def serving_env(spec: ModelSpec) -> list[dict[str, Any]]:
    """What every container answering for `spec` reads: MLflow's login and the feedback key."""
    return [*mlflow_env(), pods.secret_env(FEEDBACK_KEY_ENV, feedback_secret(spec), "key")]


def mlflow_env(secret: str = MLFLOW_CLIENT_SECRET) -> list[dict[str, Any]]:
    return [
        pods.secret_env("MLFLOW_TRACKING_URI", secret, "uri"),
        pods.secret_env("MLFLOW_TRACKING_USERNAME", secret, "username"),
        pods.secret_env("MLFLOW_TRACKING_PASSWORD", secret, "password"),
    ]


def serve_config(spec: ModelSpec) -> str:
    """The RayService's serveConfigV2: one application, the model URI and replica bounds as args."""
    application = {
        "name": spec.name,
        "import_path": SERVE_APPS[spec.model],
        "route_prefix": "/",
        "args": {
            "model_uri": spec.model_uri,
            "num_replicas": spec.replicas,
            "max_replicas": spec.max,
            "num_cpus": min(float(cpu_cores(spec.cpu)), 1.0),
        },
    }
    return yaml.safe_dump({"applications": [application]}, sort_keys=True)


def ray_service_spec(spec: ModelSpec, head: Resources, image: pulumi.Input[str]) -> dict[str, Any]:
    assert spec.pool is not None
    pool = RayPool(
        name=spec.pool.name,
        arch=spec.arch,
        min=spec.replicas,
        max=spec.max,
        cpu=spec.cpu,
        memory=spec.memory,
    )
    cluster = RayPlatformArgs(namespace="", pools=(pool,), head=head, operator=head, cluster_name=spec.name)
    env = [*serving_env(spec), *({"name": k, "value": v} for k, v in sorted(SERVE_PROCESS_ENV.items()))]
    head_spec = head_group(cluster, image, env)
    head_spec["template"]["metadata"]["labels"]["naomi.io/rayservice"] = spec.name
    # KubeRay builds the RayService's serve Service (<name>-serve-svc) from the head container's
    # port named `serve` (kuberay v1.7.0 ray-operator/controllers/ray/common/service.go
    # BuildServeService); without it the gateway route has no Service to reach.
    head_spec["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "serve", "containerPort": SERVE_PORT}
    )
    worker = worker_group(cluster, pool, image, env)
    worker["template"]["metadata"]["labels"]["naomi.io/rayservice"] = spec.name
    worker["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "serve", "containerPort": SERVE_PORT}
    )
    # Serve replicas read the model from MLflow: the workers need the service-account token off
    # (already) and nothing else from the API server.
    return {
        "serveConfigV2": serve_config(spec),
        "upgradeStrategy": {"type": "NewCluster"},
        "rayClusterConfig": cluster_spec(head_spec, [worker]),
    }


def model_server_deployment(spec: ModelSpec, namespace: str, image: pulumi.Input[str]) -> dict[str, Any]:
    resources = Resources(
        cpu_request=spec.cpu, memory_request=spec.memory, cpu_limit=spec.cpu, memory_limit=spec.memory
    )
    container = pods.container(
        "model-server",
        image,  # an Output when built here; resolved by Pulumi
        resources,
        args=["--model-uri", spec.model_uri],
        env=[*serving_env(spec), {"name": "HOME", "value": "/tmp"}],
        ports=[{"name": "http", "containerPort": SERVER_PORT}],
        # Ready once the model is loaded, or when the registry has none yet (a bare cluster).
        readinessProbe=pods.http_probe("/ready", "http"),
        livenessProbe=pods.http_probe("/healthz", "http", period=20, initial_delay=30),
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    return {
        "metadata": metadata(spec, namespace),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": pod_selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {**labels("model-server", spec.name), "naomi.io/model": spec.model}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "nodeSelector": {"kubernetes.io/arch": spec.arch},
                    "securityContext": pods.pod_security_context(SERVER_UID),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


@dataclass(frozen=True, kw_only=True)
class ServedModelArgs:
    spec: ModelSpec
    namespace: str
    image: pulumi.Input[str]  # naomi-ray for ray-serve, naomi-model-server for deployment
    head: Resources
    mlflow: Reachable  # models are read from the registry
    ray: RayPlatform | None = None  # ray-serve: KubeRay (its release brings the RayService CRD)
    monitoring_release: pulumi.Resource | None = None
    # The MLflow login's credential generation (`Mlflow.pod_annotation()`): a rotation restarts
    # the pods, which would otherwise keep polling with the old password and get 401.
    pod_annotations: dict[str, str] = field(default_factory=dict)
    # What must exist first (the client Secret): a component's depends_on does not hold back its
    # children (pulumi/pulumi#8721), so the children wait on it themselves.
    after: tuple[pulumi.Resource, ...] = ()

    def __post_init__(self) -> None:
        if self.spec.runtime == "ray-serve" and self.ray is None:
            raise ValueError(
                f"ServedModelArgs {self.spec.name}: runtime 'ray-serve' needs the Ray platform (ray.enabled)"
            )


class ServedModel(pulumi.ComponentResource):
    """One served model: its runtime's objects plus a metrics monitor."""

    def __init__(self, name: str, args: ServedModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:serving:ServedModel", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        key = random.RandomPassword(f"{name}-feedback-key", length=48, special=False, opts=child)
        k8s.core.v1.Secret(
            f"{name}-feedback-key",
            metadata={
                "name": feedback_secret(spec),
                "namespace": args.namespace,
                "labels": labels("model-server", spec.name),
            },
            type="Opaque",
            string_data={"key": key.result},
            opts=child,
        )
        if spec.runtime == "ray-serve":
            k8s.apiextensions.CustomResource(
                f"{name}-rayservice",
                api_version="ray.io/v1",
                kind="RayService",
                metadata={
                    "name": spec.name,
                    "namespace": args.namespace,
                    "labels": labels("rayservice", spec.name),
                },
                spec=_annotated(ray_service_spec(spec, args.head, args.image), args.pod_annotations),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[*args.after, *([args.ray.operator] if args.ray else [])]
                ),
            )
        else:
            self._deployment(name, args, child)
        if args.monitoring_release is not None:
            # Ray pods export Ray Serve's request metrics on Ray's metrics port; the generic
            # server exports naomi_serving_* on its own /metrics.
            ray = spec.runtime == "ray-serve"
            k8s.apiextensions.CustomResource(
                f"{name}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=metadata(spec, args.namespace),
                spec={
                    "selector": {"matchLabels": pod_selector(spec)},
                    "podMetricsEndpoints": [
                        {"port": "metrics" if ray else "http", "path": "/metrics", "interval": "30s"}
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.monitoring_release]),
            )
        self.contract = serving_contract(args)
        self.register_outputs({"service": spec.service, "modelUri": spec.model_uri})

    def _deployment(self, name: str, args: ServedModelArgs, child: pulumi.ResourceOptions) -> None:
        spec = args.spec
        manifest = model_server_deployment(spec, args.namespace, args.image)
        if args.pod_annotations:
            manifest["spec"]["template"]["metadata"]["annotations"] = dict(args.pod_annotations)
        k8s.apps.v1.Deployment(f"{name}-deployment", **manifest, opts=child)
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(spec, args.namespace),
            spec={
                "type": "ClusterIP",
                "selector": pod_selector(spec),
                "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}],
            },
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=metadata(spec, args.namespace),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
                "minReplicas": spec.replicas,
                "maxReplicas": spec.max,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
            opts=child,
        )
        if spec.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=metadata(spec, args.namespace),
                spec={
                    "maxUnavailable": 1,
                    "selector": {"matchLabels": pod_selector(spec)},
                },
                opts=child,
            )


def serving_contract(args: ServedModelArgs) -> Contract:
    """The model's route, its pods' access to MLflow, KubeRay's access to its Ray cluster."""
    spec = args.spec
    served = route(spec, args.namespace)
    flows = [args.mlflow.client(served.backend, f"served model {spec.name} reads the registry")]
    if spec.runtime == "ray-serve":
        assert args.ray is not None
        # KubeRay names the RayService's cluster `<name>-<suffix>`: select it by our label.
        head = Pods(args.namespace, {**pod_selector(spec), "ray.io/node-type": "head"}, f"{spec.name}-head")
        flows += args.ray.manages(head, autoscaling=True, serve_port=SERVE_PORT)
    metrics = METRICS_PORT if spec.runtime == "ray-serve" else "http"
    targets = (ScrapeTarget(served.backend, metrics),) if args.monitoring_release is not None else ()
    return Contract(routes=(served,), flows=tuple(flows), scrape_targets=targets)


def _annotated(service_spec: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """The RayService's head and worker pod templates carry `annotations` (a new value rolls a new
    cluster: KubeRay's NewCluster upgrade compares the cluster spec's hash)."""
    if annotations:
        cluster = service_spec["rayClusterConfig"]
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            group["template"]["metadata"].setdefault("annotations", {}).update(annotations)
    return service_spec
