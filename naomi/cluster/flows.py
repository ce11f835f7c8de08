"""Proof that every declared flow is allowed, and that nothing undeclared is open.

Input: the cluster model (every pod that will exist, every NetworkPolicy — ours and the charts')
and the flows components declared (`infra.contract.Flow`, carried in the render by the
NetworkPolicies component). For each flow, every pod the source selects is tried against every
pod the destination selects, on each port, with the NetworkPolicy evaluator
(`naomi.cluster.netpol`, Kubernetes semantics: egress at the source and ingress at the
destination). A selector that matches no pod of the model is a failure too: a flow to pods that
do not exist (a wrong chart label) protects nothing and allows nothing.

Kubelet probes are flows every probed pod needs; they are derived from the pods' probes and are
node-local (the kubelet probes pods on its own node, which NetworkPolicy always admits). The
KubeRay operator's calls to the heads it manages are derived from the model too (`kuberay_flows`),
from what the operator does rather than from what our components declare.

Undeclared flows: every pod is tried against every declared container port of every pod in
another namespace, and an address outside the cluster against every pod; whatever the policies
allow there without a declared flow is reported. Ports a container does not declare are not
enumerated (a real cluster can still reach them where a policy allows all ports).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from naomi.cluster import netpol
from naomi.cluster.model import SYSTEM_PODS, ClusterModel, ModelPod
from naomi.cluster.operators import DASHBOARD_PORT, SERVE_PORT, find_container_port

OUTSIDE_IP = "203.0.113.10"  # TEST-NET-3: a client outside the cluster
KUBELET = "kubelet"


@dataclass(frozen=True)
class Side:
    """A flow endpoint read back from the render: pods by selector, or addresses."""

    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    cidrs: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    node_local: bool = False
    is_pods: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Side:
        if "pods" in raw:
            pods = raw["pods"]
            return cls(str(pods["namespace"]), dict(pods.get("labels") or {}), str(pods["name"]))
        addresses = raw["addresses"]
        return cls(
            name=str(addresses["name"]),
            cidrs=tuple(addresses.get("cidrs") or ()),
            excluded=tuple(addresses.get("excluded") or ()),
            node_local=bool(addresses.get("nodeLocal")),
            is_pods=False,
        )

    def describe(self) -> str:
        if self.is_pods:
            return f"{self.namespace}/{self.name}"
        return self.name

    def selects(self, pod: ModelPod) -> bool:
        return (
            self.is_pods
            and pod.namespace == self.namespace
            and all(pod.labels.get(k) == v for k, v in self.labels.items())
        )

    def contains(self, ip: str) -> bool:
        if self.is_pods or self.node_local:
            return False
        address = ipaddress.ip_address(ip)
        inside = any(address in ipaddress.ip_network(c) for c in self.cidrs)
        return inside and not any(address in ipaddress.ip_network(e) for e in self.excluded)

    def hosts(self) -> list[netpol.Host]:
        """One representative address per CIDR (an outside address for the whole internet)."""
        hosts = []
        for cidr in self.cidrs:
            network = ipaddress.ip_network(cidr)
            ip = (
                OUTSIDE_IP
                if network.prefixlen == 0
                else str(next(iter(network.hosts()), network.network_address))
            )
            if self.contains(ip):
                hosts.append(netpol.Host(ip=ip, description=self.name))
        return hosts


@dataclass(frozen=True)
class DeclaredFlow:
    source: Side
    destination: Side
    ports: tuple[tuple[int | str, str], ...]  # (port, protocol); () = any port
    why: str
    upstream: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DeclaredFlow:
        return cls(
            source=Side.parse(raw["source"]),
            destination=Side.parse(raw["destination"]),
            ports=tuple((p["port"], str(p.get("protocol") or "TCP")) for p in raw.get("ports") or ()),
            why=str(raw.get("why") or ""),
            upstream=str(raw.get("upstream") or ""),
        )

    def describe(self) -> str:
        ports = ", ".join(f"{port}/{protocol}" for port, protocol in self.ports) or "any port"
        return f"{self.source.describe()} -> {self.destination.describe()} {ports} ({self.why})"

    def covers(self, source: ModelPod | str, destination: ModelPod, port: netpol.ContainerPort) -> bool:
        """Whether this flow declares a connection from `source` (a pod or an IP) to `destination`."""
        from_ok = (
            self.source.selects(source) if isinstance(source, ModelPod) else self.source.contains(source)
        )
        if not (from_ok and self.destination.selects(destination)):
            return False
        if not self.ports:
            return True
        return any(
            protocol == port.protocol and (number == port.port or number == port.name)
            for number, protocol in self.ports
        )


@dataclass(frozen=True)
class FlowResult:
    flow: DeclaredFlow
    problems: tuple[str, ...]
    connections: int  # (source, destination, port) triples tried

    @property
    def allowed(self) -> bool:
        return not self.problems


@dataclass
class FlowReport:
    results: list[FlowResult]
    undeclared: list[str]

    @property
    def failures(self) -> list[str]:
        lines = [f"flow {r.flow.describe()}: {p}" for r in self.results for p in r.problems]
        return lines + [f"undeclared: {line}" for line in self.undeclared]

    def matrix(self) -> list[tuple[str, str, str, str, str]]:
        """(from, to, ports, verdict, why) per declared flow, for `naomi check flows`."""
        rows = []
        for result in self.results:
            flow = result.flow
            ports = ", ".join(f"{port}/{protocol}" for port, protocol in flow.ports) or "any"
            verdict = "allowed" if result.allowed else "DENIED"
            rows.append((flow.source.describe(), flow.destination.describe(), ports, verdict, flow.why))
        return rows


def kubelet_probe_flows(pods: Iterable[ModelPod]) -> list[DeclaredFlow]:
    """The kubelet probes every probed container on its own node (httpGet and tcpSocket)."""
    flows = []
    for pod in pods:
        side = Side(pod.namespace, pod.labels, pod.owner)
        ports: set[tuple[int | str, str]] = set()
        for container in pod.spec.get("containers") or []:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                action = (container.get(probe) or {}).get("httpGet") or (container.get(probe) or {}).get(
                    "tcpSocket"
                )
                if action and action.get("port") is not None:
                    ports.add((action["port"], "TCP"))
        if ports:
            flows.append(
                DeclaredFlow(
                    source=Side(name=KUBELET, node_local=True, is_pods=False),
                    destination=side,
                    ports=tuple(sorted(ports, key=str)),
                    why="kubelet probes",
                    upstream="kubernetes pkg/probe/http/request.go (URL host: the pod IP)",
                )
            )
    return flows


KUBERAY_OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}  # kuberay-operator chart 1.7.0 _helpers.tpl


def kuberay_flows(model: ClusterModel) -> list[DeclaredFlow]:
    """What the KubeRay operator (when the model has it) opens to each Ray head pod, kuberay v1.7.0:
    - the dashboard, for every cluster (utils/util.go FetchHeadServiceURL: job status, Serve
      configs, through the head Service, so on the pod's dashboard port);
    - for a RayService's head, the Serve proxy on the container port named `serve` (default 8000):
      rayservice_controller.go updateHeadPodServeLabel calls `/-/healthz` on the head pod's IP on
      every reconcile and labels the head `ray.io/serve` by the answer (the serve Service selects
      that label), unless the RayService sets `excludeHeadPodFromServeSvc`.
    """
    operators = [
        pod for pod in model.pods if all(pod.labels.get(k) == v for k, v in KUBERAY_OPERATOR.items())
    ]
    if not operators:
        return []
    excluded = {
        (item.namespace, str(item.obj["metadata"]["name"]))
        for item in model.of_kind("RayService")
        if (item.obj.get("spec") or {}).get("excludeHeadPodFromServeSvc")
    }
    # The RayCluster of each head (label ray.io/cluster), and what created it (a RayService puts
    # ray.io/originated-from-crd and -cr-name on the cluster it makes).
    creators = {
        (item.namespace, str(item.obj["metadata"]["name"])): (
            str(labels.get("ray.io/originated-from-crd", "RayCluster")),
            str(labels.get("ray.io/originated-from-cr-name", "")),
        )
        for item in model.of_kind("RayCluster")
        for labels in [item.obj["metadata"].get("labels") or {}]
    }
    operator = operators[0]
    source = Side(operator.namespace, operator.labels, operator.owner)
    flows = []
    for pod in model.pods:
        if pod.labels.get("ray.io/node-type") != "head":
            continue
        ray = (pod.spec.get("containers") or [{}])[0]  # utils.RayContainerIndex
        ports = [(find_container_port(ray, "dashboard", DASHBOARD_PORT), "TCP")]
        crd, name = creators.get((pod.namespace, pod.labels.get("ray.io/cluster", "")), ("RayCluster", ""))
        if crd == "RayService" and (pod.namespace, name) not in excluded:
            ports.append((find_container_port(ray, "serve", SERVE_PORT), "TCP"))
        flows.append(
            DeclaredFlow(
                source=source,
                destination=Side(pod.namespace, pod.labels, pod.owner),
                ports=tuple(ports),
                why="KubeRay manages its Ray head",
                upstream="ray-project/kuberay v1.7.0 ray-operator/controllers/ray/utils/util.go FetchHeadServiceURL, "
                "rayservice_controller.go updateHeadPodServeLabel",
            )
        )
    return flows


def _pod_endpoints(model_pods: Sequence[ModelPod], side: Side) -> list[tuple[ModelPod, netpol.Pod]]:
    return [(pod, pod.endpoint(node=f"node-of-{pod.owner}")) for pod in model_pods if side.selects(pod)]


def prove(model: ClusterModel, declared: Iterable[Mapping[str, Any]]) -> FlowReport:
    """Every declared flow, plus what the kubelet's probes and the KubeRay operator need, against
    every policy of the model."""
    pods = [*model.pods, *SYSTEM_PODS]
    policies = netpol.PolicySet(model.network_policies, model.namespaces)
    flows = [DeclaredFlow.parse(raw) for raw in declared]
    derived = [*kubelet_probe_flows(model.pods), *kuberay_flows(model)]
    results = [_prove_one(policies, pods, flow) for flow in [*flows, *derived]]
    # Only the platform's own namespaces are judged as destinations: their policies are ours.
    owned = {item.name for item in model.of_kind("Namespace")}
    return FlowReport(results=results, undeclared=_undeclared(policies, pods, flows, owned))


def _prove_one(policies: netpol.PolicySet, pods: Sequence[ModelPod], flow: DeclaredFlow) -> FlowResult:
    problems: list[str] = []
    destinations: list[tuple[ModelPod | None, netpol.Endpoint]] = []
    if flow.destination.is_pods:
        destinations = list(_pod_endpoints(pods, flow.destination))
        if not destinations:
            problems.append(
                f"no pod of the model matches the destination {flow.destination.describe()} {dict(flow.destination.labels)}"
            )
    else:
        destinations = [(None, host) for host in flow.destination.hosts()]
    tried = 0
    for destination_pod, destination in destinations:
        if flow.source.is_pods:
            sources: list[netpol.Endpoint] = [ep for _, ep in _pod_endpoints(pods, flow.source)]
            if not sources:
                problems.append(
                    f"no pod of the model matches the source {flow.source.describe()} {dict(flow.source.labels)}"
                )
                break
        elif flow.source.node_local:
            node = destination.node if isinstance(destination, netpol.Pod) else None
            sources = [netpol.Host(ip="192.0.2.1", node=node, description=KUBELET)]
        else:
            sources = list(flow.source.hosts())
        ports = flow.ports or _all_ports(destination_pod)
        for source in sources:
            for port, protocol in ports:
                tried += 1
                try:
                    decision = policies.decide(source, destination, port, protocol)
                except ValueError as error:
                    problems.append(str(error))
                    continue
                if not decision.allowed:
                    problems.append(decision.explain().replace("\n", " | "))
    return FlowResult(flow=flow, problems=tuple(dict.fromkeys(problems)), connections=tried)


def _all_ports(pod: ModelPod | None) -> list[tuple[int | str, str]]:
    if pod is None:
        return [(443, "TCP")]
    return [(p.port, p.protocol) for p in pod.endpoint().ports] or [(80, "TCP")]


def _undeclared(
    policies: netpol.PolicySet, pods: Sequence[ModelPod], flows: Sequence[DeclaredFlow], owned: set[str]
) -> list[str]:
    found: list[str] = []
    endpoints = [(pod, pod.endpoint()) for pod in pods]
    outside = netpol.Host(ip=OUTSIDE_IP, description="outside the cluster")
    for destination_pod, destination in endpoints:
        if destination_pod.namespace not in owned:
            continue
        for port in destination.ports:
            for source_pod, source in endpoints:
                if source_pod.namespace == destination_pod.namespace:
                    continue
                if any(flow.covers(source_pod, destination_pod, port) for flow in flows):
                    continue
                if policies.decide(source, destination, port.port, port.protocol).allowed:
                    found.append(f"{source_pod.owner} -> {destination_pod.owner} {port.protocol}/{port.port}")
            if any(flow.covers(OUTSIDE_IP, destination_pod, port) for flow in flows):
                continue
            if policies.decide(outside, destination, port.port, port.protocol).allowed:
                found.append(f"outside the cluster -> {destination_pod.owner} {port.protocol}/{port.port}")
    return found
