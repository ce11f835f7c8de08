"""KubeRay and the platform's Ray cluster, with one worker pool per device class.

The kuberay-operator chart (1.7) installs the RayCluster/RayJob/RayService CRDs, so it is a
`helm.v3.Release` and every Ray custom resource depends on it (CRDs first, pulumi-kubernetes
#3176). The RayCluster's head schedules no work (`num-cpus: 0`); each pool from config is a
worker group on its architecture's nodes with that architecture's image (same Ray and Python on
both, checked by tests), a custom resource named after the pool (`{"pi": 1}`) so workloads can
target device classes, an in-memory `/dev/shm` sized to the object store, and explicit
object-store memory for small nodes. Token auth is on; the dashboard is reachable only through
the gateway. GCS fault tolerance (a Redis with a generated password) is an option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import pods
from infra.charts import ReleaseSettings, chart_release
from infra.contract import ClusterNetwork, Contract, Flow, Pods, Route, ScrapeTarget, tcp
from infra.naming import MANAGED_BY, PART_OF, labels, selector_labels
from infra.profiles import Resources
from infra.quantities import cpu_cores, memory_bytes
from infra.versions import KUBERAY_OPERATOR, RAY_IMAGES, RAY_VERSION, REDIS_IMAGE

RAY_UID = 1000  # the `ray` user of the official images (its home holds Ray's runtime files)
DASHBOARD_PORT = 8265
METRICS_PORT = 8080
OBJECT_STORE_FRACTION = 0.25


@dataclass(frozen=True, kw_only=True)
class RayPool:
    name: str
    arch: Literal["amd64", "arm64"]
    min: int
    max: int
    cpu: str
    memory: str

    @property
    def object_store_bytes(self) -> int:
        return int(memory_bytes(self.memory) * OBJECT_STORE_FRACTION)


@dataclass(frozen=True, kw_only=True)
class RayPlatformArgs:
    namespace: str
    pools: tuple[RayPool, ...]
    head: Resources
    operator: Resources
    cluster_name: str = "ray"
    gcs_fault_tolerance: bool = False
    redis: Resources | None = None
    storage_node_selector: dict[str, str] = field(default_factory=lambda: {"kubernetes.io/arch": "amd64"})
    network: ClusterNetwork | None = None  # required by RayPlatform (not by the pod builders)
    # The kube-prometheus-stack release: ServiceMonitor/PodMonitor need its CRDs first.
    monitoring_release: pulumi.Resource | None = None
    release: ReleaseSettings = field(default_factory=ReleaseSettings)

    def __post_init__(self) -> None:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"RayPlatformArgs.pools: names must be unique ({names})")
        if self.gcs_fault_tolerance and self.redis is None:
            raise ValueError("RayPlatformArgs.redis resources are required with gcs_fault_tolerance")


def ray_pod_labels() -> dict[str, str]:
    """Our labels on Ray pod templates: never `app.kubernetes.io/name`/`instance`, which KubeRay
    sets itself (`kuberay`) and its head Services select on (kuberay v1.7.0
    ray-operator/controllers/ray/common/service.go, utils HeadServiceLabels); ours would win and
    leave the RayService's head Service without endpoints."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "naomi.io/ray-version": RAY_VERSION,
    }


def _shm(size_bytes: int) -> dict[str, Any]:
    return {
        "name": "dshm",
        "emptyDir": {"medium": "Memory", "sizeLimit": f"{max(size_bytes // 2**20, 64)}Mi"},
    }


def _ray_container(
    name: str,
    image: pulumi.Input[str],
    resources: dict[str, Any],
    ports: list[dict[str, Any]],
    env: list[dict[str, Any]],
) -> dict[str, Any]:
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources,
        # Ray writes its session files under /tmp/ray and the home directory.
        "securityContext": pods.container_security_context(read_only_root=False),
        "ports": ports,
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if env:
        container["env"] = env
    return container


def head_group(
    args: RayPlatformArgs, image: pulumi.Input[str] | None = None, env: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The head (no work scheduled): `image` overrides the upstream Ray image (naomi-ray, multi-arch)."""
    image = image if image is not None else RAY_IMAGES["amd64"]
    return {
        "serviceType": "ClusterIP",
        "rayStartParams": {
            "num-cpus": "0",
            "dashboard-host": "0.0.0.0",
            "metrics-export-port": str(METRICS_PORT),
        },
        "template": {
            "metadata": {"labels": ray_pod_labels()},
            "spec": {
                # The head keeps its service-account token: the in-tree autoscaler sidecar talks to
                # the API server (KubeRay binds it a Role scoped to this cluster's pods).
                "nodeSelector": {"kubernetes.io/arch": "amd64"},
                "securityContext": pods.pod_security_context(RAY_UID, group=100),
                "containers": [
                    _ray_container(
                        "ray-head",
                        image,
                        args.head.spec(),
                        [
                            {"name": "gcs-server", "containerPort": 6379},
                            {"name": "dashboard", "containerPort": DASHBOARD_PORT},
                            {"name": "client", "containerPort": 10001},
                            {"name": "metrics", "containerPort": METRICS_PORT},
                        ],
                        env or [],
                    )
                ],
                "volumes": [_shm(512 * 2**20)],
            },
        },
    }


def worker_group(
    args: RayPlatformArgs,
    pool: RayPool,
    image: pulumi.Input[str] | None = None,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    image = image if image is not None else RAY_IMAGES[pool.arch]
    cpus = max(int(cpu_cores(pool.cpu)), 1)
    return {
        "groupName": pool.name,
        "replicas": pool.min,
        "minReplicas": pool.min,
        "maxReplicas": pool.max,
        # CPUs and the pool's custom resource go through the group-level `resources` field:
        # KubeRay 1.7.0 single-quotes the JSON it makes of it (ray-operator/controllers/ray/common/
        # pod.go updateRayStartParamsResources) before pasting it into the `bash -c` line, whereas
        # rayStartParams values are pasted raw, so bash stripped the quotes of '{"x86":2}' and
        # `ray start` aborted. KubeRay refuses num-cpus/memory/resources in both places
        # (utils/validation.go validateRayGroupResources), so num-cpus moves here too.
        "resources": {"cpu": str(cpus), pool.name: str(cpus)},
        "rayStartParams": {
            "object-store-memory": str(pool.object_store_bytes),
            "metrics-export-port": str(METRICS_PORT),
        },
        "template": {
            "metadata": {
                "labels": {
                    **ray_pod_labels(),
                    "naomi.io/ray-pool": pool.name,
                }
            },
            "spec": {
                "automountServiceAccountToken": False,
                "nodeSelector": {"kubernetes.io/arch": pool.arch},
                "securityContext": pods.pod_security_context(RAY_UID, group=100),
                "containers": [
                    _ray_container(
                        "ray-worker",
                        image,
                        Resources(
                            cpu_request=pool.cpu,
                            memory_request=pool.memory,
                            cpu_limit=pool.cpu,
                            memory_limit=pool.memory,
                        ).spec(),
                        [{"name": "metrics", "containerPort": METRICS_PORT}],
                        env or [],
                    )
                ],
                "volumes": [_shm(pool.object_store_bytes)],
            },
        },
    }


def cluster_spec(head: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
    """A RayCluster spec (also a RayService's rayClusterConfig): token auth, in-tree autoscaler."""
    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 300,
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
            "securityContext": pods.container_security_context(read_only_root=False),
        },
        "authOptions": {"mode": "token"},
        "headGroupSpec": head,
        "workerGroupSpecs": workers,
    }


# The operator's pod labels (kuberay-operator 1.7.0 chart templates/_helpers.tpl), and the labels
# KubeRay puts on every Ray pod (kuberay v1.7.0 ray-operator/controllers/ray/common/pod.go
# labelPod: ray.io/cluster, ray.io/node-type, ray.io/group, ...).
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "kuberay-operator",
    "app.kubernetes.io/instance": "kuberay-operator",
}


def head_pods(namespace: str, cluster: str) -> Pods:
    return Pods(namespace, {"ray.io/cluster": cluster, "ray.io/node-type": "head"}, f"{cluster}-head")


def worker_pods(namespace: str, cluster: str) -> Pods:
    return Pods(namespace, {"ray.io/cluster": cluster, "ray.io/node-type": "worker"}, f"{cluster}-workers")


def managed_cluster_flows(
    operator: Pods, network: ClusterNetwork, head: Pods, *, autoscaling: bool, serve_port: int | None = None
) -> tuple[Flow, ...]:
    """What a Ray cluster managed by KubeRay needs beyond its namespace.

    The operator calls the head's dashboard through the head Service (kuberay v1.7.0
    ray-operator/controllers/ray/utils/util.go FetchHeadServiceURL; rayjob_controller.go and
    rayservice_controller.go use it for job status and Serve configs); for a RayService
    (`serve_port`) it also asks the head pod's Serve proxy `/-/healthz` on every reconcile and
    labels the head `ray.io/serve` by the answer, which puts it in the serve Service
    (rayservice_controller.go updateHeadPodServeLabel); the in-tree autoscaler sidecar in the head
    pod lists and patches pods through the API server.
    """
    cluster = head.name.removesuffix("-head")
    flows = [
        Flow(
            operator,
            head,
            tcp(DASHBOARD_PORT),
            f"KubeRay manages Ray cluster {cluster} through its dashboard API",
            "ray-project/kuberay v1.7.0 ray-operator/controllers/ray/utils/util.go FetchHeadServiceURL",
        )
    ]
    if serve_port is not None:
        flows.append(
            Flow(
                operator,
                head,
                tcp(serve_port),
                f"KubeRay checks the Serve proxy of {cluster}'s head (the ray.io/serve label)",
                "ray-project/kuberay v1.7.0 ray-operator/controllers/ray/rayservice_controller.go "
                "updateHeadPodServeLabel",
            )
        )
    if autoscaling:
        flows.append(
            network.to_api_server(
                head,
                f"the autoscaler of {cluster} scales its worker pods",
                "ray-project/kuberay v1.7.0 ray-operator/controllers/ray/common/pod.go BuildAutoscalerContainer",
            )
        )
    return tuple(flows)


def operator_values(args: RayPlatformArgs) -> dict[str, Any]:
    return {
        "resources": args.operator.spec(),
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "metrics": {"enabled": True},
    }


class RayPlatform(pulumi.ComponentResource):
    """kuberay-operator, the shared RayCluster and (optionally) Redis for GCS fault tolerance."""

    operator: k8s.helm.v3.Release
    head_service: str
    auth_token: pulumi.Output[str]  # the Ray dashboard's and job API's token (secret)
    dashboard_port: int = DASHBOARD_PORT

    def __init__(self, name: str, args: RayPlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:RayPlatform", name, None, opts)
        if args.network is None:
            raise ValueError("RayPlatformArgs.network is required for the Ray platform (its flows)")
        network = args.network
        child = pulumi.ResourceOptions(parent=self)
        # Helm release; the ray.io CRDs are applied before it (infra.charts, a ConfigGroup, from the
        # chart archive, upgraded with it) and our RayCluster depends on the release, so it is
        # created only once the CRD exists and the operator runs.
        self.operator, _ = chart_release(
            f"{name}-operator",
            chart=KUBERAY_OPERATOR,
            release="kuberay-operator",
            namespace=args.namespace,
            values=operator_values(args),
            settings=args.release,
            opts=child,
        )
        spec = cluster_spec(head_group(args), [worker_group(args, pool) for pool in args.pools])
        # The token the dashboard and job API ask for: generated here (not by the operator) so it
        # is a stack output users can read; KubeRay takes it from authOptions.secretName
        # (kuberay v1.7.0 raycluster_controller.go reconcileAuthSecret, key `auth_token`).
        token = random.RandomPassword(f"{name}-auth-token", length=40, special=False, opts=child)
        token_secret = k8s.core.v1.Secret(
            f"{name}-auth-token",
            metadata={
                "name": f"{args.cluster_name}-auth-token",
                "namespace": args.namespace,
                "labels": labels("ray", args.cluster_name),
            },
            type="Opaque",
            string_data={"auth_token": token.result},
            opts=child,
        )
        spec["authOptions"] = {"mode": "token", "secretName": f"{args.cluster_name}-auth-token"}
        self.auth_token = pulumi.Output.secret(token.result)
        depends: list[pulumi.Resource] = [self.operator, token_secret]
        if args.gcs_fault_tolerance:
            assert args.redis is not None
            redis_secret = self._redis(name, args, args.redis, child)
            depends.append(redis_secret)
            spec["gcsFaultToleranceOptions"] = {
                "redisAddress": f"redis.{args.namespace}.svc.cluster.local:6379",
                "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "ray-redis", "key": "password"}}},
            }
        k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version="ray.io/v1",
            kind="RayCluster",
            metadata={
                "name": args.cluster_name,
                "namespace": args.namespace,
                "labels": labels("ray", args.cluster_name, version=RAY_VERSION),
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.head_service = f"{args.cluster_name}-head-svc"
        if args.monitoring_release is not None:
            self._monitors(name, args, args.monitoring_release)
        self.operator_pods = Pods(args.namespace, OPERATOR_LABELS, "kuberay-operator")
        self.network = network
        head = head_pods(args.namespace, args.cluster_name)
        self.contract = Contract(
            routes=(
                Route(
                    name="ray-dashboard",
                    prefix="/ray",
                    service=self.head_service,
                    port=DASHBOARD_PORT,
                    backend=head,
                    strip_prefix=True,
                ),
            ),
            flows=(
                args.network.to_api_server(
                    self.operator_pods, "KubeRay watches and creates Ray pods and Services"
                ),
                *self.manages(head, autoscaling=True),
            ),
            scrape_targets=(
                (
                    ScrapeTarget(head, METRICS_PORT),
                    ScrapeTarget(worker_pods(args.namespace, args.cluster_name), METRICS_PORT),
                )
                if args.monitoring_release is not None
                else ()
            ),
        )
        self.register_outputs({"headService": self.head_service})

    def manages(self, head: Pods, *, autoscaling: bool, serve_port: int | None = None) -> tuple[Flow, ...]:
        """The flows a Ray cluster (its head pods) needs from this operator and its autoscaler;
        `serve_port` for a RayService's (the head's Serve proxy)."""
        return managed_cluster_flows(
            self.operator_pods, self.network, head, autoscaling=autoscaling, serve_port=serve_port
        )

    def _redis(
        self, name: str, args: RayPlatformArgs, resources: Resources, child: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        password = random.RandomPassword(f"{name}-redis", length=32, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-redis",
            metadata={
                "name": "ray-redis",
                "namespace": args.namespace,
                "labels": labels("redis", "redis"),
            },
            type="Opaque",
            string_data={"password": password.result},
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-redis",
            metadata={"name": "redis", "namespace": args.namespace, "labels": labels("redis", "redis")},
            spec={
                "type": "ClusterIP",
                "selector": selector_labels("redis", "redis"),
                "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}],
            },
            opts=child,
        )
        probe = ["sh", "-c", 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG']
        pods.stateful_set(
            f"{name}-redis",
            component="redis",
            instance="redis",
            namespace=args.namespace,
            version=REDIS_IMAGE,
            uid=10001,
            container=pods.container(
                "redis",
                REDIS_IMAGE,
                resources,
                command=[
                    "sh",
                    "-c",
                    'exec redis-server --requirepass "$REDIS_PASSWORD" --appendonly yes --dir /data',
                ],
                env=[pods.secret_env("REDIS_PASSWORD", "ray-redis", "password")],
                ports=[{"name": "redis", "containerPort": 6379}],
                readinessProbe=pods.exec_probe(probe),
                livenessProbe=pods.exec_probe(probe, initial_delay=20),
                volumeMounts=[{"name": "data", "mountPath": "/data"}],
            ),
            volume_size="2Gi",
            node_selector=args.storage_node_selector,
            opts=child,
        )
        return secret

    def _monitors(self, name: str, args: RayPlatformArgs, monitoring: pulumi.Resource) -> None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=[monitoring])
        release: dict[str, str] = {}
        k8s.apiextensions.CustomResource(
            f"{name}-head-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={
                "name": "ray-head",
                "namespace": args.namespace,
                "labels": {**labels("ray", args.cluster_name), **release},
            },
            spec={
                "jobLabel": "ray-head",
                "selector": {
                    "matchLabels": {"ray.io/node-type": "head", "ray.io/cluster": args.cluster_name}
                },
                "endpoints": [{"port": "metrics", "interval": "30s"}],
                "targetLabels": ["ray.io/cluster"],
            },
            opts=opts,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-worker-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={
                "name": "ray-workers",
                "namespace": args.namespace,
                "labels": {**labels("ray", args.cluster_name), **release},
            },
            spec={
                "jobLabel": "ray-workers",
                "selector": {
                    "matchLabels": {"ray.io/node-type": "worker", "ray.io/cluster": args.cluster_name}
                },
                "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}],
                "podTargetLabels": ["ray.io/cluster", "naomi.io/ray-pool"],
            },
            opts=opts,
        )
