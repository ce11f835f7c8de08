"""The gateway's auth and route pieces (issue 17, mutation testing): argument checks at their
edges, the Traefik values (NodePort, TLS, no dashboard, restricted pods), value overrides merged
key by key, each IngressRoute's match and middlewares (basic auth unless the route opts out), and
the gateway's flows. The custom resources are captured instead of registered with Pulumi."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra import gateway
from infra.contract import Addresses, ClusterNetwork, Flow, Pods, Port, Route
from infra.gateway import Gateway, GatewayArgs, ProvidedCertificate, _merge, gateway_contract, traefik_values
from infra.profiles import Resources

RESOURCES = Resources(cpu_request="100m", memory_request="64Mi", cpu_limit="500m", memory_limit="256Mi")
NETWORK = ClusterNetwork(
    pod_cidr="10.1.0.0/16",
    service_cidr="10.152.183.0/24",
    nodes=("192.168.50.0/24",),
    control_planes=("192.168.50.10/32",),
    api_server_ports=(443, 16443),
    api_server_service="10.152.183.1/32",
)
MLFLOW = Pods("naomi-mlflow", {"app": "mlflow"}, "mlflow")
RAY = Pods("naomi-ray", {"ray": "head"}, "ray-head")


def _args(**overrides: Any) -> GatewayArgs:
    arguments: dict[str, Any] = {
        "namespace": "naomi-gateway",
        "address": "192.168.50.10",
        "node_port": 30443,
        "resources": RESOURCES,
        "network": NETWORK,
    }
    arguments.update(overrides)
    return GatewayArgs(**arguments)


def _route(name: str, prefix: str, backend: Pods = MLFLOW, **fields: Any) -> Route:
    return Route(name=name, prefix=prefix, service=name, port=80, backend=backend, **fields)


def _refused(**overrides: Any) -> str:
    with pytest.raises(ValueError) as raised:
        _args(**overrides)
    return str(raised.value)


# --- arguments ---------------------------------------------------------------------------------


def test_the_node_port_range_is_inclusive() -> None:
    assert _args(node_port=30000).node_port == 30000
    assert _args(node_port=32767).node_port == 32767
    for port in (29999, 32768):
        assert _refused(node_port=port) == f"GatewayArgs.node_port must be in 30000-32767 (got {port})"


def test_provided_tls_needs_the_certificate() -> None:
    assert _refused(tls_mode="provided") == "GatewayArgs.provided is required when tls_mode is 'provided'"
    provided = ProvidedCertificate(certificate="cert", private_key="key")
    assert _args(tls_mode="provided", provided=provided).provided is provided
    assert _args(provided=provided).tls_mode == "generated-ca"


def test_route_prefixes_must_be_unique_across_extra_prefixes() -> None:
    routes = (_route("a", "/a", extra_prefixes=("/x",)), _route("b", "/x"))
    assert _refused(routes=routes) == "GatewayArgs.routes: prefixes must be unique (['/a', '/x', '/x'])"
    assert _refused(routes=(_route("a", "/a", extra_prefixes=("/a",)),)) == (
        "GatewayArgs.routes: prefixes must be unique (['/a', '/a'])"
    )
    assert len(_args(routes=(_route("a", "/a", extra_prefixes=("/b",)), _route("c", "/c"))).routes) == 2


def test_at_least_one_user() -> None:
    assert _refused(users=()) == "GatewayArgs.users must name at least one user"
    assert _args().users == ("admin",)


def test_urls_bracket_ipv6() -> None:
    assert _args().base_url == "https://192.168.50.10:30443"
    assert _args(address="fd00::10", node_port=31000).base_url == "https://[fd00::10]:31000"
    assert GatewayArgs.url("naomi.lan", 30443) == "https://naomi.lan:30443"


def test_the_pods_and_watched_namespaces() -> None:
    assert _args().pods == Pods(
        "naomi-gateway",
        {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-naomi-gateway"},
        "traefik",
    )
    routes = (_route("ray", "/ray", RAY), _route("mlflow", "/mlflow"), _route("m2", "/m2"))
    assert _args(routes=routes).watched_namespaces == ["naomi-gateway", "naomi-mlflow", "naomi-ray"]
    assert _args().watched_namespaces == ["naomi-gateway"]


# --- Traefik values ---------------------------------------------------------------------------


def test_traefik_values() -> None:
    values = traefik_values(_args(routes=(_route("mlflow", "/mlflow"),), node_port=31443))
    assert values == {
        "deployment": {"replicas": 1},
        "ingressClass": {"enabled": False},
        "providers": {
            "kubernetesCRD": {
                "enabled": True,
                "allowCrossNamespace": True,
                "namespaces": ["naomi-gateway", "naomi-mlflow"],
            },
            "kubernetesIngress": {"enabled": False},
        },
        "ingressRoute": {"dashboard": {"enabled": False}},
        "ports": {
            "web": {"expose": {"default": False}},
            "websecure": {
                "port": 8443,
                "exposedPort": 443,
                "nodePort": 31443,
                "http": {"tls": {"enabled": True}},
            },
        },
        "service": {"spec": {"type": "NodePort"}},
        "tlsStore": {"default": {"defaultCertificate": {"secretName": "gateway-tls"}}},
        "tlsOptions": {"default": {"minVersion": "VersionTLS12", "sniStrict": False}},
        "resources": RESOURCES.spec(),
        "podSecurityContext": {
            "runAsGroup": 65532,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def test_extra_values_merge_key_by_key() -> None:
    values = traefik_values(_args(extra_values={"deployment": {"replicas": 2}, "logs": {"level": "DEBUG"}}))
    assert values["deployment"] == {"replicas": 2}
    assert values["logs"] == {"level": "DEBUG"}
    assert values["ports"]["websecure"]["nodePort"] == 30443
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    assert _merge(base, {"a": {"c": {"x": 9}}, "e": {"f": 1}}) == {
        "a": {"b": 1, "c": {"d": 2, "x": 9}},
        "e": {"f": 1},
    }
    assert _merge(base, {"a": 5}) == {"a": 5, "e": 3}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}  # not modified


# --- routes -----------------------------------------------------------------------------------


class Captured:
    def __init__(self, resource_name: str, **kwargs: Any) -> None:
        self.resource_name = resource_name
        self.kwargs = kwargs


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Captured]:
    made: list[Captured] = []

    def record(resource_name: str, **kwargs: Any) -> Captured:
        made.append(Captured(resource_name, **kwargs))
        return made[-1]

    monkeypatch.setattr(gateway.k8s.apiextensions, "CustomResource", record)
    return made


def _routed(route: Route) -> None:
    Gateway._route(None, "gw", _args(routes=(route,)), route, pulumi.ResourceOptions())  # type: ignore[arg-type]


META = {
    "app.kubernetes.io/name": "gateway",
    "app.kubernetes.io/instance": "gw",
    "app.kubernetes.io/part-of": "naomi",
    "app.kubernetes.io/managed-by": "pulumi",
}


def test_a_route_with_auth(captured: list[Captured]) -> None:
    route = _route("ray", "/ray", RAY, extra_prefixes=("/api/ray",), target_port=8265)
    _routed(route)
    assert [c.resource_name for c in captured] == ["gw-ray"]
    (ingress,) = captured
    assert ingress.kwargs["api_version"] == "traefik.io/v1alpha1"
    assert ingress.kwargs["kind"] == "IngressRoute"
    assert ingress.kwargs["metadata"] == {"name": "ray", "namespace": "naomi-gateway", "labels": META}
    assert ingress.kwargs["spec"] == {
        "entryPoints": ["websecure"],
        "routes": [
            {
                "kind": "Rule",
                "match": "Path(`/ray`) || PathPrefix(`/ray/`) || Path(`/api/ray`) || PathPrefix(`/api/ray/`)",
                "middlewares": [
                    {"name": "security-headers", "namespace": "naomi-gateway"},
                    {"name": "basic-auth", "namespace": "naomi-gateway"},
                ],
                "services": [{"name": "ray", "namespace": "naomi-ray", "port": 80}],
            }
        ],
        "tls": {},
    }
    assert isinstance(ingress.kwargs["opts"], pulumi.ResourceOptions)


def test_a_route_with_its_own_login_and_a_stripped_prefix(captured: list[Captured]) -> None:
    _routed(_route("grafana", "/grafana", auth=False, strip_prefix=True))
    strip, ingress = captured
    assert strip.resource_name == "gw-grafana-strip"
    assert strip.kwargs["api_version"] == "traefik.io/v1alpha1"
    assert strip.kwargs["kind"] == "Middleware"
    assert strip.kwargs["metadata"] == {"name": "grafana-strip", "namespace": "naomi-gateway", "labels": META}
    assert strip.kwargs["spec"] == {"stripPrefix": {"prefixes": ["/grafana"]}}
    assert isinstance(strip.kwargs["opts"], pulumi.ResourceOptions)
    assert ingress.kwargs["spec"]["routes"][0]["middlewares"] == [
        {"name": "security-headers", "namespace": "naomi-gateway"},
        {"name": "grafana-strip", "namespace": "naomi-gateway"},
    ]
    assert ingress.kwargs["spec"]["routes"][0]["match"] == "Path(`/grafana`) || PathPrefix(`/grafana/`)"


# --- flows ------------------------------------------------------------------------------------


def test_gateway_contract() -> None:
    routes = (_route("mlflow", "/mlflow", target_port="http"), _route("ray", "/ray", RAY))
    args = _args(routes=routes)
    traefik = args.pods
    assert gateway_contract(args).flows == (
        Flow(
            Addresses("outside the cluster", ("0.0.0.0/0",), excluded=("10.1.0.0/16",)),
            traefik,
            (Port(8443),),
            "users reach the gateway (NodePort)",
        ),
        Flow(
            traefik,
            Addresses("api-server", ("10.152.183.1/32", "192.168.50.10/32")),
            (Port(443), Port(16443)),
            "the CRD provider watches IngressRoutes, Middlewares, Services, EndpointSlices and Secrets",
            "traefik/traefik v3.7 pkg/provider/kubernetes/crd",
        ),
        Flow(traefik, MLFLOW, (Port("http"),), "gateway route /mlflow"),
        Flow(traefik, RAY, (Port(80),), "gateway route /ray"),
    )


def test_a_route_to_an_h2c_backend_names_its_scheme(captured: list[Captured]) -> None:
    _routed(_route("flyte-grpc", "/flyteidl.service.AdminService", scheme="h2c"))
    (ingress,) = captured
    assert ingress.kwargs["spec"]["routes"][0]["services"] == [
        {"name": "flyte-grpc", "namespace": "naomi-mlflow", "port": 80, "scheme": "h2c"}
    ]
    captured.clear()
    _routed(_route("plain", "/plain"))
    assert "scheme" not in captured[0].kwargs["spec"]["routes"][0]["services"][0]
