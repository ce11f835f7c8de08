"""Stand-ins for the contracts a component test needs from its neighbours."""

from __future__ import annotations

from infra.contract import ClusterNetwork, Flow, Pods, tcp

NETWORK = ClusterNetwork(
    pod_cidr="10.1.0.0/16",
    service_cidr="10.152.183.0/24",
    nodes=("192.168.50.10/32", "192.168.50.11/32"),
    control_planes=("192.168.50.10/32",),
    api_server_ports=(443, 16443),
    api_server_service="10.152.183.1/32",
)


class Backend:
    """A component others connect to, for testing one component alone."""

    def __init__(self, name: str, namespace: str = "naomi-platform") -> None:
        self.pods = Pods(namespace, {"app.kubernetes.io/name": name}, name)

    def client(self, pods: Pods, why: str) -> Flow:
        return Flow(pods, self.pods, tcp(1), why)
