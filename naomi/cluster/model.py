"""The cluster model: every object and every pod that will exist once the stack is applied.

Objects come from three origins: our own resources (`pulumi`), the upstream charts rendered
with our values (`helm:<namespace>/<release>`) and the objects operators create from those
(`operator:<who>`). Pods are read from every pod template (Deployments, StatefulSets, DaemonSets,
Jobs, CronJobs, bare Pods) and from the operators' expansions; each keeps its origin and owner
so a failing check can name namespace, object and container. The model is as small as the checks
need — no scheduler and no controller loops: a pod has no node and no IP, and replicas are a
count on one pod entry.

A few pods exist on every cluster the platform targets and are not ours: CoreDNS, from
microk8s' `dns` addon (canonical/microk8s addons `dns`: Deployment `coredns` in `kube-system`,
labels `k8s-app: kube-dns`, ports 53/UDP, 53/TCP and metrics 9153), listed in `SYSTEM_PODS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from naomi.cluster import netpol

PULUMI = "pulumi"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


@dataclass(frozen=True)
class ModelObject:
    origin: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class ModelPod:
    """One pod template: what admission judges and what NetworkPolicies select."""

    namespace: str
    owner: str  # e.g. "Deployment naomi-platform/mlflow", "RayCluster naomi-ray/ray (head)"
    origin: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]
    replicas: int = 1
    long_running: bool = True

    @property
    def labels(self) -> Mapping[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("labels") or {}).items()}

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        spec = self.spec
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    @property
    def name(self) -> str:
        return self.owner

    def endpoint(self, node: str | None = None) -> netpol.Pod:
        """The pod as the NetworkPolicy evaluator sees it (its declared container ports)."""
        ports = []
        for container in self.spec.get("containers") or []:
            for port in container.get("ports") or []:
                ports.append(
                    netpol.ContainerPort(
                        port=int(port["containerPort"]),
                        protocol=str(port.get("protocol") or "TCP"),
                        name=port.get("name"),
                    )
                )
        return netpol.Pod(
            namespace=self.namespace,
            name=self.owner,
            labels=self.labels,
            ports=tuple(ports),
            node=node,
            host_network=bool(self.spec.get("hostNetwork")),
        )


SYSTEM_PODS = (
    ModelPod(
        namespace="kube-system",
        owner="Deployment kube-system/coredns",
        origin="cluster:microk8s dns addon",
        metadata={"labels": {"k8s-app": "kube-dns"}},
        spec={
            "containers": [
                {
                    "name": "coredns",
                    "ports": [
                        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                    ],
                }
            ]
        },
    ),
)
SYSTEM_NAMESPACES = (netpol.Namespace("kube-system"),)


def pod_templates(item: ModelObject) -> Iterator[ModelPod]:
    """The pod templates of a native workload object (nothing for other kinds)."""
    obj = item.obj
    kind = item.kind
    if kind not in WORKLOAD_KINDS:
        return
    spec: Mapping[str, Any] = obj.get("spec") or {}
    if kind == "Pod":
        # A bare Pod that always restarts (the Ray pods KubeRay creates) is a long-running service.
        long_running = spec.get("restartPolicy", "Always") == "Always"
        metadata = obj.get("metadata") or {}
        yield ModelPod(item.namespace, item.describe(), item.origin, metadata, spec, 1, long_running)
        return
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    replicas = int(spec.get("replicas", 1)) if kind in ("Deployment", "StatefulSet", "ReplicaSet") else 1
    yield ModelPod(
        namespace=item.namespace,
        owner=item.describe(),
        origin=item.origin,
        metadata=template.get("metadata") or {},
        spec=template.get("spec") or {},
        replicas=replicas,
        long_running=kind in LONG_RUNNING,
    )


# An expander turns one object into what its operator creates: more objects (Pods, Services, ...).
Expander = Callable[[ModelObject], Sequence[Mapping[str, Any]]]


@dataclass
class ClusterModel:
    objects: list[ModelObject]
    expanders: Mapping[str, Expander] = field(default_factory=dict)  # kind -> expander

    def __post_init__(self) -> None:
        created: list[ModelObject] = []
        for item in self.objects:
            expander = self.expanders.get(item.kind)
            if expander is not None:
                origin = f"operator:{item.describe()}"
                created += [ModelObject(origin, obj) for obj in expander(item)]
        self.objects = [*self.objects, *created]

    @classmethod
    def from_objects(
        cls, objects: Iterable[tuple[str, Mapping[str, Any]]], expanders: Mapping[str, Expander] | None = None
    ) -> ClusterModel:
        return cls([ModelObject(origin, obj) for origin, obj in objects], dict(expanders or {}))

    def of_kind(self, kind: str) -> list[ModelObject]:
        return [item for item in self.objects if item.kind == kind]

    @property
    def pods(self) -> list[ModelPod]:
        return [pod for item in self.objects for pod in pod_templates(item)]

    @property
    def namespaces(self) -> list[netpol.Namespace]:
        found = {
            item.name: netpol.Namespace(item.name, dict((item.obj.get("metadata") or {}).get("labels") or {}))
            for item in self.of_kind("Namespace")
        }
        for system in SYSTEM_NAMESPACES:
            found.setdefault(system.name, system)
        return sorted(found.values(), key=lambda n: n.name)

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        for namespace in self.namespaces:
            if namespace.name == name:
                return namespace.labels
        return {}

    @property
    def network_policies(self) -> list[Mapping[str, Any]]:
        return [item.obj for item in self.of_kind("NetworkPolicy")]
