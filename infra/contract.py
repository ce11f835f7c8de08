"""What a component offers and needs: gateway routes, network flows, scrape targets.

Every component states the connections it needs as `Flow`s (from, to, ports, why, and the
upstream source where that is not obvious) and the routes it serves behind the gateway in its
`Contract`. The stack collects all contracts; `network_policies` turns the flows into the only
NetworkPolicies the project renders (`infra.network` applies them): a default
deny in each platform namespace, then one ingress policy per destination pod group and one egress
policy per source pod group, each rule naming the flow it comes from. So a flow that nobody
declares is not open, and the cluster model (`naomi.cluster.flows`) proves, under NetworkPolicy
semantics and over every rendered policy (chart policies included), that each declared flow is
allowed.

Inside a platform namespace pods may talk freely (Ray nodes use many dynamic ports between
themselves); every flow that leaves a namespace, or reaches a pod from a node, the API server or
outside the cluster, needs a declaration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

IpProtocol = Literal["TCP", "UDP", "SCTP"]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace (1.21+)


@dataclass(frozen=True)
class Pods:
    """Pods of one namespace selected by labels (`{}`: every pod of the namespace)."""

    namespace: str
    labels: Mapping[str, str]
    name: str  # names the generated policy: `ingress-<name>`, `egress-<name>`

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", self.name) or len(self.name) > 50:
            raise ValueError(f"Pods.name must be a short DNS label (got {self.name!r})")

    def describe(self) -> str:
        selector = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())) or "all pods"
        return f"{self.namespace}/{self.name} [{selector}]"

    def as_dict(self) -> dict[str, object]:
        return {
            "pods": {
                "namespace": self.namespace,
                "labels": dict(sorted(self.labels.items())),
                "name": self.name,
            }
        }


@dataclass(frozen=True)
class Addresses:
    """Endpoints outside the pod network: nodes, the API server, anything beyond the cluster."""

    name: str
    cidrs: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    # The kubelet of the pod's own node: always allowed ("traffic to and from the node where a
    # Pod is running is always allowed", kubernetes.io/docs/concepts/services-networking/
    # network-policies/), so no policy is generated for it; the proof still checks the claim.
    node_local: bool = False

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.cidrs) or 'node-local'})"

    def as_dict(self) -> dict[str, object]:
        return {
            "addresses": {
                "name": self.name,
                "cidrs": list(self.cidrs),
                "excluded": list(self.excluded),
                "nodeLocal": self.node_local,
            }
        }


Endpoint = Pods | Addresses


@dataclass(frozen=True)
class Port:
    port: int | str  # a number, or a container port name of the destination pods
    protocol: IpProtocol = "TCP"


@dataclass(frozen=True)
class Flow:
    source: Endpoint
    destination: Endpoint
    ports: tuple[Port, ...]  # () = every port
    why: str
    upstream: str = ""  # repository, path and version where the need is not obvious

    def describe(self) -> str:
        ports = ", ".join(f"{p.port}/{p.protocol}" for p in self.ports) or "any port"
        return f"{self.source.describe()} -> {self.destination.describe()} on {ports}: {self.why}"

    def as_dict(self) -> dict[str, object]:
        """Plain data for the render (`flows.yaml`) and the cluster model's proof."""
        return {
            "source": self.source.as_dict(),
            "destination": self.destination.as_dict(),
            "ports": [{"port": p.port, "protocol": p.protocol} for p in self.ports],
            "why": self.why,
            "upstream": self.upstream,
        }


def tcp(*ports: int | str) -> tuple[Port, ...]:
    return tuple(Port(port) for port in ports)


@dataclass(frozen=True, kw_only=True)
class Route:
    """`https://<gateway><prefix>` -> `<service>.<namespace>:<port>` (pods `backend`)."""

    name: str
    prefix: str
    service: str
    port: int  # the Service port the IngressRoute names
    backend: Pods  # the pods behind the Service (the gateway's flow goes there)
    target_port: int | str | None = None  # the pods' port (default: `port`)
    auth: bool = True  # False only for services with their own login (MLflow, Grafana)
    strip_prefix: bool = False
    extra_prefixes: tuple[str, ...] = ()  # more paths to the same service (Flyte: /console, /api, ...)
    # How the gateway talks to the pods: HTTP/1.1, or HTTP/2 without TLS (`h2c`), which gRPC needs
    # (Traefik's IngressRoute service `scheme`, traefik/traefik v3.7.9 pkg/provider/kubernetes/crd/
    # kubernetes_http.go parseServiceProtocol).
    scheme: Literal["http", "h2c"] = "http"

    def __post_init__(self) -> None:
        for prefix in (self.prefix, *self.extra_prefixes):
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(
                    f"Route {self.name}: prefix must start and not end with '/' (got {prefix!r})"
                )

    @property
    def namespace(self) -> str:
        return self.backend.namespace

    @property
    def pod_port(self) -> int | str:
        return self.port if self.target_port is None else self.target_port


@dataclass(frozen=True)
class ScrapeTarget:
    """Pods Prometheus scrapes; their component creates the ServiceMonitor/PodMonitor."""

    pods: Pods
    port: int | str
    path: str = "/metrics"


@dataclass(frozen=True)
class Contract:
    """What a component offers and needs: gateway routes, network flows, scrape targets."""

    routes: tuple[Route, ...] = ()
    flows: tuple[Flow, ...] = ()
    scrape_targets: tuple[ScrapeTarget, ...] = ()

    def __add__(self, other: Contract) -> Contract:
        return Contract(
            routes=self.routes + other.routes,
            flows=self.flows + other.flows,
            scrape_targets=self.scrape_targets + other.scrape_targets,
        )


def combine(contracts: Iterable[Contract]) -> Contract:
    total = Contract()
    for contract in contracts:
        total = total + contract
    return total


@dataclass(frozen=True)
class ClusterNetwork:
    """Addresses flows need outside the pod network, derived from config once."""

    pod_cidr: str
    service_cidr: str
    nodes: tuple[str, ...]  # CIDRs of every node (kubelet, host-network components)
    control_planes: tuple[str, ...]  # CIDRs of the API server's endpoints (host network)
    api_server_ports: tuple[int, ...]  # the service port and the endpoints' port
    api_server_service: str  # the `kubernetes` Service's ClusterIP /32

    @property
    def api_server(self) -> Addresses:
        # Most CNIs (Calico, microk8s' default) evaluate egress after the Service DNAT, so the
        # endpoints (control-plane addresses) must be allowed; the ClusterIP is listed for those
        # that evaluate before it. Only a real cluster confirms which one applies.
        return Addresses("api-server", (self.api_server_service, *self.control_planes))

    @property
    def node_addresses(self) -> Addresses:
        return Addresses("nodes", self.nodes)

    @property
    def control_plane_addresses(self) -> Addresses:
        return Addresses("control-planes", self.control_planes)

    @property
    def kubelet(self) -> Addresses:
        return Addresses("kubelet", (), node_local=True)

    @property
    def outside(self) -> Addresses:
        return Addresses("outside the cluster", ("0.0.0.0/0",), excluded=(self.pod_cidr,))

    def to_api_server(self, pods: Pods, why: str, upstream: str = "") -> Flow:
        return Flow(pods, self.api_server, tcp(*self.api_server_ports), why, upstream)


DNS = Pods("kube-system", {"k8s-app": "kube-dns"}, "kube-dns")


def dns_flows(namespaces: Sequence[str]) -> tuple[Flow, ...]:
    """Every pod resolves names through CoreDNS (microk8s' dns addon labels it k8s-app=kube-dns)."""
    return tuple(
        Flow(
            Pods(namespace, {}, "all-pods"),
            DNS,
            (Port(53, "UDP"), Port(53, "TCP")),
            "name resolution",
            "canonical/microk8s addons dns: CoreDNS with label k8s-app=kube-dns",
        )
        for namespace in namespaces
    )


class Reachable(Protocol):
    """A component other pods connect to (Postgres, the object store, MLflow, Flyte's API)."""

    def client(self, pods: Pods, why: str) -> Flow: ...
