"""NetworkPolicy evaluator (naomi/cluster/netpol.py): the docs' cases and the upstream e2e suite.

Upstream cases are ported from kubernetes/kubernetes test/e2e/network/netpol/network_policy.go
(the 9-pod version read at commit 9db638c0807a720aa050ebcef69c32e4d4cce280, the v1.29-v1.33
shape of the file), with the policy builders of policies.go (SetSpecIngressRules and
SetSpecEgressRules add "Ingress"/"Egress" to policyTypes) and the Reachability helpers of
reachability.go. The model is upstream's: namespaces x, y, z labelled {"ns": name}; pods a, b, c
labelled {"pod": name}, one container port per tested port and protocol named
"serve-<port>-<protocol>". As upstream (ignoreLoopback), pod-to-itself probes are not compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from naomi.cluster.netpol import ContainerPort, Host, Namespace, Pod, PolicySet, service_backends

# --- docs cases (kubernetes.io/docs/concepts/services-networking/network-policies/) ----------


def policy(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


DEFAULT = Namespace("default")
OTHER = Namespace("other")
DB = Pod(
    "default", "db", {"role": "db"}, ports=(ContainerPort(6379, name="redis"),), ip="10.1.0.5", node="n1"
)
FRONTEND = Pod("default", "frontend", {"role": "frontend"}, ip="10.1.0.6", node="n2")
OTHER_FRONTEND = Pod("other", "frontend", {"role": "frontend"}, ip="10.1.1.6", node="n2")

# service/networking/network-policy-*.yaml (the docs' "Default policies" section)
DENY_INGRESS = policy("default", "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_INGRESS = policy(
    "default", "allow-all-ingress", {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}
)
DENY_EGRESS = policy("default", "default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_EGRESS = policy(
    "default", "allow-all-egress", {"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}
)
DENY_ALL = policy("default", "default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def allowed(
    policies: Sequence[Mapping[str, Any]],
    source: Pod | Host,
    destination: Pod | Host,
    port: int | str = 6379,
    protocol: str = "TCP",
    namespaces: Sequence[Namespace] = (DEFAULT, OTHER),
) -> bool:
    return PolicySet(policies, namespaces).decide(source, destination, port, protocol).allowed


def test_default_deny_ingress_isolates_every_pod_for_ingress_only() -> None:
    assert not allowed([DENY_INGRESS], OTHER_FRONTEND, DB)
    assert not allowed([DENY_INGRESS], FRONTEND, DB)
    assert allowed([DENY_INGRESS], DB, OTHER_FRONTEND)  # egress is not isolated
    assert allowed([], OTHER_FRONTEND, DB)  # no policy: non-isolated
    assert allowed([DENY_INGRESS, ALLOW_INGRESS], OTHER_FRONTEND, DB)  # union; order irrelevant
    assert allowed([ALLOW_INGRESS, DENY_INGRESS], OTHER_FRONTEND, DB)


def test_default_deny_egress_and_allow_all_egress() -> None:
    assert not allowed([DENY_EGRESS], DB, OTHER_FRONTEND)
    assert allowed([DENY_EGRESS], OTHER_FRONTEND, DB)  # ingress is not isolated
    assert allowed([DENY_EGRESS, ALLOW_EGRESS], DB, OTHER_FRONTEND)


def test_default_deny_all_blocks_both_directions_and_needs_both_sides() -> None:
    assert not allowed([DENY_ALL], DB, OTHER_FRONTEND)
    assert not allowed([DENY_ALL], OTHER_FRONTEND, DB)
    # Egress allowed at the source is not enough: the destination's ingress must allow it too.
    decision = PolicySet([DENY_ALL, ALLOW_EGRESS], [DEFAULT, OTHER]).decide(DB, FRONTEND, 6379)
    assert (decision.allowed, decision.egress.allowed, decision.ingress.allowed) == (False, True, False)


# service/networking/networkpolicy.yaml, the docs' example NetworkPolicy
EXAMPLE = policy(
    "default",
    "test-network-policy",
    {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                    {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                    {"podSelector": {"matchLabels": {"role": "frontend"}}},
                ],
                "ports": [{"protocol": "TCP", "port": 6379}],
            }
        ],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5978}]}
        ],
    },
)


def test_docs_example_policy() -> None:
    myproject = Namespace("myproject", {"project": "myproject"})
    namespaces = (DEFAULT, OTHER, myproject)
    some_pod = Pod("myproject", "anything", {"app": "x"})
    # "IP addresses in the ranges 172.17.0.0-172.17.0.255 and 172.17.2.0-172.17.255.255"
    assert allowed([EXAMPLE], Host("172.17.0.255"), DB, namespaces=namespaces)
    assert not allowed([EXAMPLE], Host("172.17.1.7"), DB, namespaces=namespaces)
    assert allowed([EXAMPLE], Host("172.17.2.0"), DB, namespaces=namespaces)
    assert not allowed([EXAMPLE], Host("172.18.0.1"), DB, namespaces=namespaces)
    assert allowed([EXAMPLE], FRONTEND, DB, namespaces=namespaces)  # podSelector: own namespace only
    assert not allowed([EXAMPLE], OTHER_FRONTEND, DB, namespaces=namespaces)
    assert allowed([EXAMPLE], some_pod, DB, namespaces=namespaces)  # any pod of project=myproject
    assert not allowed([EXAMPLE], FRONTEND, DB, port=6380, namespaces=namespaces)
    assert not allowed([EXAMPLE], FRONTEND, DB, protocol="UDP", namespaces=namespaces)
    # Egress: only TCP 5978 to 10.0.0.0/24.
    assert allowed([EXAMPLE], DB, Host("10.0.0.7"), port=5978, namespaces=namespaces)
    assert not allowed([EXAMPLE], DB, Host("10.0.1.7"), port=5978, namespaces=namespaces)
    assert not allowed([EXAMPLE], DB, Host("10.0.0.7"), port=5979, namespaces=namespaces)
    assert not allowed([EXAMPLE], DB, FRONTEND, port=5978, namespaces=namespaces)  # pod IP not in the block


def test_namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or() -> None:
    alice = Namespace("alice", {"user": "alice"})
    namespaces = (DEFAULT, OTHER, alice)
    target = Pod("default", "target", {"app": "target"})
    alice_client = Pod("alice", "client", {"role": "client"})
    alice_other = Pod("alice", "other", {"role": "other"})
    local_client = Pod("default", "client", {"role": "client"})
    other_client = Pod("other", "client", {"role": "client"})
    and_peer = policy(
        "default",
        "and",
        {
            "podSelector": {},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"user": "alice"}},
                            "podSelector": {"matchLabels": {"role": "client"}},
                        }
                    ]
                }
            ],
        },
    )
    or_peers = policy(
        "default",
        "or",
        {
            "podSelector": {},
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"user": "alice"}}},
                        {"podSelector": {"matchLabels": {"role": "client"}}},
                    ]
                }
            ],
        },
    )
    sources = (alice_client, alice_other, local_client, other_client)
    assert [allowed([and_peer], s, target, 80, namespaces=namespaces) for s in sources] == [
        True,
        False,
        False,
        False,
    ]
    assert [allowed([or_peers], s, target, 80, namespaces=namespaces) for s in sources] == [
        True,
        True,
        True,
        False,
    ]


def test_end_port_range_is_inclusive() -> None:
    # service/networking/networkpolicy-multiport-egress.yaml
    multi_port = policy(
        "default",
        "multi-port-egress",
        {
            "podSelector": {"matchLabels": {"role": "db"}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}],
                }
            ],
        },
    )
    results = {
        port: allowed([multi_port], DB, Host("10.0.0.9"), port)
        for port in (31999, 32000, 32400, 32768, 32769)
    }
    assert results == {31999: False, 32000: True, 32400: True, 32768: True, 32769: False}
    assert not allowed([multi_port], DB, Host("10.0.0.9"), 32000, "UDP")


def test_named_ports_resolve_against_the_destination_pod() -> None:
    web_a = Pod("default", "web-a", {"app": "web"}, ports=(ContainerPort(8080, name="http"),))
    web_b = Pod("default", "web-b", {"app": "web"}, ports=(ContainerPort(9090, name="http"),))
    ingress_named = policy(
        "default",
        "web",
        {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": "http"}]}]},
    )
    assert allowed([ingress_named], FRONTEND, web_a, 8080)
    assert not allowed([ingress_named], FRONTEND, web_a, 9090)
    assert allowed([ingress_named], FRONTEND, web_b, 9090)
    assert allowed([ingress_named], FRONTEND, web_b, "http")  # a connection to the named port itself
    egress_named = policy(
        "default",
        "frontend-out",
        {
            "podSelector": {"matchLabels": {"role": "frontend"}},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "http"}]}],
        },
    )
    assert allowed([egress_named], FRONTEND, web_a, 8080)
    assert allowed([egress_named], FRONTEND, web_b, 9090)
    assert not allowed([egress_named], FRONTEND, web_b, 8080)
    # A host has no container ports: a named port never matches it.
    assert not allowed([egress_named], FRONTEND, Host("10.0.0.9"), 8080)


def test_named_port_needs_the_policy_protocol() -> None:
    dns = Pod(
        "default",
        "dns",
        {"app": "dns"},
        ports=(ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp")),
    )
    only_tcp_named = policy("default", "dns", {"podSelector": {}, "ingress": [{"ports": [{"port": "dns"}]}]})
    assert not allowed(
        [only_tcp_named], FRONTEND, dns, 53, "TCP"
    )  # "dns" is a UDP port; protocol defaults to TCP
    assert not allowed([only_tcp_named], FRONTEND, dns, 53, "UDP")
    udp_named = policy(
        "default", "dns", {"podSelector": {}, "ingress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}
    )
    assert allowed([udp_named], FRONTEND, dns, 53, "UDP")


def test_default_policy_types() -> None:
    egress_rules_only = policy(
        "default",
        "egress-rules",
        {
            "podSelector": {"matchLabels": {"role": "db"}},
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        },
    )
    # No policyTypes and an egress rule: Ingress and Egress.
    assert not allowed([egress_rules_only], FRONTEND, DB)
    assert not allowed([egress_rules_only], DB, Host("192.168.1.1"), 443)
    assert allowed([egress_rules_only], DB, Host("10.9.9.9"), 443)
    ingress_only = policy(
        "default", "ingress-rules", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [{}]}
    )
    assert allowed([ingress_only], DB, Host("192.168.1.1"), 443)  # Ingress only: egress open
    # defaults.go: Egress only `if len(obj.Spec.Egress) != 0`, so an empty egress list does not isolate.
    empty_egress = policy("default", "empty-egress", {"podSelector": {}, "egress": []})
    decision = PolicySet([empty_egress], [DEFAULT]).decide(DB, Host("192.168.1.1"), 443)
    assert (decision.allowed, decision.egress.isolated) == (True, False)
    assert not PolicySet([empty_egress], [DEFAULT]).decide(FRONTEND, DB, 6379).allowed


def test_match_expressions_operators() -> None:
    def selects(expression: dict[str, Any], labels: dict[str, str]) -> bool:
        source = Pod("default", "client", labels)
        rule = {"from": [{"podSelector": {"matchExpressions": [expression]}}]}
        return allowed([policy("default", "p", {"podSelector": {}, "ingress": [rule]})], source, DB)

    assert selects({"key": "tier", "operator": "In", "values": ["web", "api"]}, {"tier": "api"})
    assert not selects({"key": "tier", "operator": "In", "values": ["web"]}, {})
    assert selects({"key": "tier", "operator": "NotIn", "values": ["web"]}, {})  # absent key: NotIn matches
    assert not selects({"key": "tier", "operator": "NotIn", "values": ["web"]}, {"tier": "web"})
    assert selects({"key": "tier", "operator": "Exists"}, {"tier": ""})
    assert not selects({"key": "tier", "operator": "Exists"}, {})
    assert selects({"key": "tier", "operator": "DoesNotExist"}, {"other": "x"})
    assert not selects({"key": "tier", "operator": "DoesNotExist"}, {"tier": "web"})


def test_node_local_traffic_is_always_allowed_into_a_pod() -> None:
    kubelet = Host("192.168.1.11", node="n1", description="kubelet on n1")
    other_node = Host("192.168.1.12", node="n2", description="kubelet on n2")
    assert allowed([DENY_ALL], kubelet, DB, 6379)  # DB runs on n1: probes get through
    assert not allowed([DENY_ALL], other_node, DB, 6379)
    # Only ingress is exempt: egress from a pod to its own node still needs an egress rule.
    assert not allowed([DENY_ALL], DB, kubelet, 10250)


def test_host_network_pods_are_node_traffic_and_not_selectable() -> None:
    agent = Pod("default", "agent", {"role": "db"}, ip="192.168.1.13", node="n3", host_network=True)
    # DENY_ALL selects every pod of "default", but not a hostNetwork pod.
    decision = PolicySet([DENY_ALL], [DEFAULT]).decide(Host("192.168.1.20"), agent, 9100)
    assert (decision.allowed, decision.ingress.isolated) == (True, False)
    # As a source (on another node than FRONTEND) it is matched by ipBlock (its node IP), not by a podSelector.
    by_selector = policy(
        "default",
        "sel",
        {"podSelector": {"matchLabels": {"role": "frontend"}}, "ingress": [{"from": [{"podSelector": {}}]}]},
    )
    by_block = policy(
        "default",
        "blk",
        {
            "podSelector": {"matchLabels": {"role": "frontend"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]}],
        },
    )
    assert not allowed([by_selector], agent, FRONTEND, 80)
    assert allowed([by_block], agent, FRONTEND, 80)
    # On the destination's node it is node traffic, always allowed in.
    assert allowed([DENY_ALL], Pod("default", "a2", {}, ip="192.168.1.11", node="n1", host_network=True), DB)


def test_loopback_and_host_to_host() -> None:
    assert allowed([DENY_ALL], DB, DB)  # "a pod cannot block access to itself"
    decision = PolicySet([DENY_ALL], [DEFAULT]).decide(Host("10.0.0.1"), Host("10.0.0.2"), 22)
    assert decision.allowed and not decision.egress.isolated and not decision.ingress.isolated


def test_pulumi_float_ports_are_numbers() -> None:
    float_port = policy(
        "default", "f", {"podSelector": {}, "ingress": [{"ports": [{"port": 6379.0, "endPort": 6380.0}]}]}
    )
    assert allowed([float_port], FRONTEND, DB, 6380)


def test_explain_allowed() -> None:
    decision = PolicySet([EXAMPLE], [DEFAULT]).decide(FRONTEND, DB, "redis")
    assert decision.explain() == (
        "ALLOWED default/frontend -> default/db TCP/6379 (redis)\n"
        "  egress: allowed (not isolated)\n"
        "    - no NetworkPolicy in default selects default/frontend for egress\n"
        "  ingress: allowed (isolated)\n"
        "    - allowed by default/test-network-policy ingress[0]"
    )


def test_explain_denied() -> None:
    decision = PolicySet([EXAMPLE, DENY_INGRESS], [DEFAULT, OTHER]).decide(OTHER_FRONTEND, DB, 6379)
    assert decision.explain() == (
        "DENIED other/frontend -> default/db TCP/6379\n"
        "  egress: allowed (not isolated)\n"
        "    - no NetworkPolicy in other selects other/frontend for egress\n"
        "  ingress: denied (isolated)\n"
        "    - no policy selecting default/db allows ingress from other/frontend on TCP/6379 "
        "(selected for ingress by default/test-network-policy, default/default-deny-ingress)"
    )
    assert decision.ingress.reasons == (
        "no policy selecting default/db allows ingress from other/frontend on TCP/6379 "
        "(selected for ingress by default/test-network-policy, default/default-deny-ingress)",
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}},
            "NetworkPolicy default/bad: spec.podSelector.matchExpressions[0]: operator 'Equals' is not one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
            "NetworkPolicy default/bad: spec.ingress[0].ports[0].endPort: needs a numeric port, got port 'http'",
        ),
        (
            {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            "NetworkPolicy default/bad: spec.egress[0].to[0]: ipBlock cannot be combined with podSelector or namespaceSelector",
        ),
        (
            {
                "podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/24"]}}]}],
            },
            "NetworkPolicy default/bad: spec.ingress[0].from[0].ipBlock.except[0]: 11.0.0.0/24 is outside the cidr 10.0.0.0/8",
        ),
        ({"ingress": [{}]}, "NetworkPolicy default/bad: spec.podSelector is required ({} selects every pod)"),
    ],
)
def test_invalid_policies_are_refused_with_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        PolicySet([policy("default", "bad", spec)], [DEFAULT])
    assert str(error.value) == message


def test_unknown_namespace_and_unknown_named_port_are_errors() -> None:
    with pytest.raises(ValueError) as error:
        PolicySet([DENY_ALL], [DEFAULT]).decide(OTHER_FRONTEND, DB, 6379)
    assert str(error.value) == "namespace 'other' is not among the namespaces given to PolicySet"
    with pytest.raises(ValueError) as error:
        PolicySet([], [DEFAULT]).decide(FRONTEND, DB, "http")
    assert str(error.value) == "default/db has no container port named 'http' for TCP"


def test_service_backends() -> None:
    web_a = Pod("default", "web-a", {"app": "web"}, ports=(ContainerPort(8080, name="http"),))
    web_b = Pod("default", "web-b", {"app": "web"}, ports=(ContainerPort(9090, name="http"),))
    web_udp = Pod("default", "web-c", {"app": "web"}, ports=(ContainerPort(8080, "UDP", "http"),))
    elsewhere = Pod("other", "web-a", {"app": "web"}, ports=(ContainerPort(8080, name="http"),))
    pods = [web_a, web_b, web_udp, elsewhere, FRONTEND]
    service = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9100},
            ],
        },
    }
    # Named targetPort per pod (protocol must match: web-c's "http" is UDP); default targetPort = port.
    assert service_backends(service, pods, "http") == [(web_a, 8080), (web_b, 9090)]
    assert service_backends(service, pods, 9100) == [(web_a, 9100), (web_b, 9100), (web_udp, 9100)]
    assert len(service_backends(service, pods)) == 5
    assert (
        service_backends({"metadata": {"namespace": "default"}, "spec": {"ports": [{"port": 80}]}}, pods)
        == []
    )
    with pytest.raises(ValueError) as error:
        service_backends(service, pods, "grpc")
    assert str(error.value) == "Service default/web has no port 'grpc'"
    # The backends feed decide(): post-DNAT, per pod and target port.
    named = policy(
        "default",
        "web",
        {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": "http"}]}]},
    )
    policies = PolicySet([named], [DEFAULT])
    assert all(
        policies.decide(FRONTEND, pod, port).allowed for pod, port in service_backends(service, pods, "http")
    )
    assert not any(
        policies.decide(FRONTEND, pod, port).allowed for pod, port in service_backends(service, pods, 9100)
    )


# --- upstream e2e: test/e2e/network/netpol/network_policy.go ---------------------------------

NS = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
ALL = tuple(f"{ns}/{pod}" for ns in NS for pod in POD_NAMES)
NAME = "kubernetes.io/metadata.name"


def ip_of(pod: str) -> str:
    namespace, name = pod.split("/")
    return f"10.244.{NS.index(namespace)}.{POD_NAMES.index(name) + 10}"


class Reachability:
    """reachability.go: a truth table over the 9 pods, default connected."""

    def __init__(self) -> None:
        self.expected = {(source, destination): True for source in ALL for destination in ALL}

    def expect(self, source: str, destination: str, connected: bool) -> Reachability:
        self.expected[(source, destination)] = connected
        return self

    def expect_all_ingress(self, pod: str, connected: bool) -> Reachability:
        return self.expect_peer("", "", *pod.split("/"), connected)

    def expect_all_egress(self, pod: str, connected: bool) -> Reachability:
        return self.expect_peer(*pod.split("/"), "", "", connected)

    def expect_peer(
        self, from_ns: str, from_pod: str, to_ns: str, to_pod: str, connected: bool
    ) -> Reachability:
        """ExpectPeer(&Peer{Namespace, Pod}, ...); an empty field matches everything."""

        def matches(pod: str, namespace: str, name: str) -> bool:
            pod_namespace, pod_name = pod.split("/")
            return namespace in ("", pod_namespace) and name in ("", pod_name)

        for source in ALL:
            for destination in ALL:
                if matches(source, from_ns, from_pod) and matches(destination, to_ns, to_pod):
                    self.expected[(source, destination)] = connected
        return self


@dataclass
class Probe:
    port: int
    protocol: str
    reachability: Reachability


@dataclass
class Step:
    policies: list[dict[str, Any]]
    probes: list[Probe]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Case:
    it: str
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    steps: list[Step]


def gen(
    namespace: str,
    name: str,
    pod_selector: Mapping[str, Any],
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
    policy_types: list[str] | None = None,
) -> dict[str, Any]:
    """GenNetworkPolicyWithName...(SetSpecIngressRules(ingress...), SetSpecEgressRules(egress...))."""
    spec: dict[str, Any] = {"podSelector": dict(pod_selector)}
    types = []
    if ingress is not None:
        spec["ingress"] = ingress
        types.append("Ingress")
    if egress is not None:
        spec["egress"] = egress
        types.append("Egress")
    spec["policyTypes"] = policy_types if policy_types is not None else types
    return policy(namespace, name, spec)


def labels(**values: str) -> dict[str, Any]:
    return {"matchLabels": dict(values)}


def ns_named(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAME: name}}


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


CASES: list[Case] = []


def upstream(
    it: str, ports: tuple[int, ...] = (80,), protocols: tuple[str, ...] = ("TCP",)
) -> Callable[[Callable[[], list[Step]]], None]:
    def register(build: Callable[[], list[Step]]) -> None:
        CASES.append(Case(it, ports, protocols, build()))

    return register


def one(
    policies: list[dict[str, Any]], reachability: Reachability, port: int = 80, protocol: str = "TCP"
) -> list[Step]:
    return [Step(policies, [Probe(port, protocol, reachability)])]


R = Reachability


@upstream("should support a 'default-deny-ingress' policy")
def _() -> list[Step]:
    return one([gen("x", "deny-ingress", {}, ingress=[])], R().expect_peer("", "", "x", "", False))


@upstream("should support a 'default-deny-all' policy")
def _() -> list[Step]:
    reachability = R().expect_peer("", "", "x", "", False).expect_peer("x", "", "", "", False)
    return one([gen("x", "deny-all", {}, ingress=[], egress=[])], reachability)


@upstream("should enforce policy to allow traffic from pods within server namespace based on PodSelector")
def _() -> list[Step]:
    rule = {"from": [{"podSelector": labels(pod="b")}]}
    policies = [gen("x", "x-a-allows-x-b", labels(pod="a"), ingress=[rule])]
    return one(policies, R().expect_all_ingress("x/a", False).expect("x/b", "x/a", True))


@upstream("should enforce policy to allow ingress traffic for a target")
def _() -> list[Step]:
    rule = {"from": [{"podSelector": {}, "namespaceSelector": {}}]}
    policies = [
        gen("x", "deny-all", {}, ingress=[]),
        gen("x", "allow-all-to-a", labels(pod="a"), ingress=[rule]),
    ]
    reachability = (
        R().expect_all_ingress("x/a", True).expect_all_ingress("x/b", False).expect_all_ingress("x/c", False)
    )
    return one(policies, reachability)


@upstream("should enforce policy to allow ingress traffic from pods in all namespaces")
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": {"matchLabels": {}}}]}
    return one([gen("x", "allow-from-another-ns", labels(pod="a"), ingress=[rule])], R())


@upstream(
    "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector"
)
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": ns_named("y")}]}
    reachability = R().expect_peer("x", "", "x", "a", False).expect_peer("z", "", "x", "a", False)
    return one([gen("x", "allow-client-a-via-ns-selector", labels(pod="a"), ingress=[rule])], reachability)


@upstream("should enforce policy based on PodSelector with MatchExpressions")
def _() -> list[Step]:
    rule = {"from": [{"podSelector": expression("pod", "In", "b")}]}
    policies = [gen("x", "x-a-allows-x-b", labels(pod="a"), ingress=[rule])]
    return one(policies, R().expect_all_ingress("x/a", False).expect("x/b", "x/a", True))


@upstream("should enforce policy based on NamespaceSelector with MatchExpressions")
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": expression(NAME, "In", "y")}]}
    reachability = R().expect_peer("x", "", "x", "a", False).expect_peer("z", "", "x", "a", False)
    return one([gen("x", "allow-ns-y-match-selector", labels(pod="a"), ingress=[rule])], reachability)


@upstream("should enforce policy based on PodSelector or NamespaceSelector")
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": expression(NAME, "NotIn", "x")}, {"podSelector": labels(pod="b")}]}
    reachability = R().expect("x/a", "x/a", False).expect("x/c", "x/a", False)
    return one([gen("x", "allow-ns-y-match-selector", labels(pod="a"), ingress=[rule])], reachability)


@upstream("should enforce policy based on PodSelector and NamespaceSelector")
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": expression(NAME, "NotIn", "x"), "podSelector": labels(pod="b")}]}
    reachability = R().expect_all_ingress("x/a", False).expect("y/b", "x/a", True).expect("z/b", "x/a", True)
    return one(
        [gen("x", "allow-ns-y-podselector-and-nsselector", labels(pod="a"), ingress=[rule])], reachability
    )


@upstream("should enforce policy based on Multiple PodSelectors and NamespaceSelectors")
def _() -> list[Step]:
    rule = {
        "from": [
            {
                "namespaceSelector": expression(NAME, "NotIn", "x"),
                "podSelector": expression("pod", "In", "b", "c"),
            }
        ]
    }
    reachability = (
        R().expect_peer("x", "", "x", "a", False).expect("y/a", "x/a", False).expect("z/a", "x/a", False)
    )
    return one([gen("x", "allow-ns-y-z-pod-b-c", labels(pod="a"), ingress=[rule])], reachability)


@upstream("should enforce policy based on any PodSelectors")
def _() -> list[Step]:
    rule = {"from": [{"podSelector": labels(pod="b")}, {"podSelector": labels(pod="c")}]}
    reachability = R().expect_all_ingress("x/a", False).expect("x/b", "x/a", True).expect("x/c", "x/a", True)
    return one([gen("x", "allow-ns-x-pod-b-c", labels(pod="a"), ingress=[rule])], reachability)


@upstream(
    "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector"
)
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": ns_named("y"), "podSelector": labels(pod="a")}]}
    policies = [gen("x", "allow-ns-y-pod-a-via-namespace-pod-selector", labels(pod="a"), ingress=[rule])]
    return one(policies, R().expect_all_ingress("x/a", False).expect("y/a", "x/a", True))


def _port_81_from_y(
    name: str = "allow-client-a-via-ns-selector", port: int = 81, protocol: str = "TCP"
) -> dict[str, Any]:
    rule = {"from": [{"namespaceSelector": ns_named("y")}], "ports": [{"port": port, "protocol": protocol}]}
    return gen("x", name, labels(pod="a"), ingress=[rule])


@upstream("should enforce policy based on Ports", ports=(81,))
def _() -> list[Step]:
    reachability = R().expect_peer("x", "", "x", "a", False).expect_peer("y", "", "x", "a", True)
    return one([_port_81_from_y()], reachability.expect_peer("z", "", "x", "a", False), port=81)


@upstream("should enforce multiple, stacked policies with overlapping podSelectors", ports=(80, 81))
def _() -> list[Step]:
    def allow() -> Reachability:
        return (
            R()
            .expect_peer("x", "", "x", "a", False)
            .expect_peer("y", "", "x", "a", True)
            .expect_peer("z", "", "x", "a", False)
        )

    port_80 = _port_81_from_y("allow-client-a-via-ns-selector-80", port=80)
    return [
        Step(
            [_port_81_from_y()],
            [Probe(81, "TCP", allow()), Probe(80, "TCP", R().expect_all_ingress("x/a", False))],
        ),
        Step([_port_81_from_y(), port_80], [Probe(80, "TCP", allow())]),
    ]


@upstream("should support allow-all policy", ports=(80, 81))
def _() -> list[Step]:
    policies = [gen("x", "allow-all", labels(), ingress=[{}])]
    return [Step(policies, [Probe(80, "TCP", R()), Probe(81, "TCP", R())])]


@upstream("should allow ingress access on one named port", ports=(80, 81))
def _() -> list[Step]:
    policies = [gen("x", "allow-all", labels(), ingress=[{"ports": [{"port": "serve-81-tcp"}]}])]
    return [
        Step(policies, [Probe(81, "TCP", R()), Probe(80, "TCP", R().expect_peer("", "", "x", "", False))])
    ]


@upstream("should allow ingress access from namespace on one named port", ports=(80, 81))
def _() -> list[Step]:
    rule = {
        "from": [{"namespaceSelector": ns_named("y")}],
        "ports": [{"port": "serve-80-tcp", "protocol": "TCP"}],
    }
    policies = [gen("x", "allow-client-a-via-ns-selector-80", labels(pod="a"), ingress=[rule])]
    port_80 = R().expect_peer("x", "", "x", "a", False).expect_peer("z", "", "x", "a", False)
    return [
        Step(policies, [Probe(80, "TCP", port_80), Probe(81, "TCP", R().expect_all_ingress("x/a", False))])
    ]


@upstream("should allow egress access on one named port", ports=(80, 81))
def _() -> list[Step]:
    policies = [gen("x", "allow-egress", labels(), egress=[{"ports": [{"port": "serve-80-tcp"}]}])]
    return [
        Step(policies, [Probe(80, "TCP", R()), Probe(81, "TCP", R().expect_peer("x", "", "", "", False))])
    ]


@upstream("should enforce updated policy", ports=(81,))
def _() -> list[Step]:
    return [
        Step([gen("x", "allow-all-mutate-to-deny-all", labels(), ingress=[{}])], [Probe(81, "TCP", R())]),
        Step(
            [gen("x", "allow-all-mutate-to-deny-all", labels(), ingress=[])],
            [Probe(81, "TCP", R().expect_peer("", "", "x", "", False))],
        ),
    ]


@upstream("should allow ingress access from updated namespace")
def _() -> list[Step]:
    policies = [
        gen(
            "x",
            "allow-client-a-via-ns-selector",
            labels(pod="a"),
            ingress=[{"from": [{"namespaceSelector": labels(ns2="updated")}]}],
        )
    ]
    return [
        Step(policies, [Probe(80, "TCP", R().expect_all_ingress("x/a", False))]),
        Step(
            policies,
            [Probe(80, "TCP", R().expect_all_ingress("x/a", False).expect_peer("y", "", "", "", True))],
            namespace_labels={"y": {"ns2": "updated"}},
        ),
    ]


@upstream("should allow ingress access from updated pod")
def _() -> list[Step]:
    rule = {"from": [{"podSelector": labels(pod="b", pod2="updated")}]}
    policies = [gen("x", "allow-client-a-via-pod-selector", labels(pod="a"), ingress=[rule])]
    return [
        Step(policies, [Probe(80, "TCP", R().expect_all_ingress("x/a", False))]),
        Step(
            policies,
            [Probe(80, "TCP", R().expect_all_ingress("x/a", False).expect("x/b", "x/a", True))],
            pod_labels={"x/b": {"pod": "b", "pod2": "updated"}},
        ),
    ]


@upstream("should deny ingress from pods on other namespaces")
def _() -> list[Step]:
    policies = [gen("x", "deny-empty-policy", {}, ingress=[{"from": [{"podSelector": {"matchLabels": {}}}]}])]
    return one(policies, R().expect_peer("y", "", "x", "", False).expect_peer("z", "", "x", "", False))


@upstream("should deny ingress access to updated pod")
def _() -> list[Step]:
    policies = [gen("x", "deny-ingress-via-label-selector", labels(target="isolated"), ingress=[])]
    return [
        Step(policies, [Probe(80, "TCP", R())]),
        Step(
            policies,
            [Probe(80, "TCP", R().expect_all_ingress("x/a", False))],
            pod_labels={"x/a": {"target": "isolated"}},
        ),
    ]


@upstream("should deny egress from pods based on PodSelector")
def _() -> list[Step]:
    return one(
        [gen("x", "deny-egress-pod-a", labels(pod="a"), egress=[])], R().expect_all_egress("x/a", False)
    )


@upstream("should deny egress from all pods in a namespace")
def _() -> list[Step]:
    return one([gen("x", "deny-egress-ns-x", {}, egress=[])], R().expect_peer("x", "", "", "", False))


@upstream("should work with Ingress, Egress specified together", ports=(80, 81))
def _() -> list[Step]:
    policies = [
        gen(
            "x",
            "allow-client-a-via-pod-selector",
            labels(pod="a"),
            ingress=[{"from": [{"podSelector": labels(pod="b")}]}],
            egress=[{"ports": [{"port": 80}]}],
            policy_types=["Egress", "Ingress"],
        )
    ]
    port_80 = R().expect_all_ingress("x/a", False).expect("x/b", "x/a", True)
    port_81 = R().expect_all_ingress("x/a", False).expect_all_egress("x/a", False).expect("x/b", "x/a", True)
    return [Step(policies, [Probe(80, "TCP", port_80), Probe(81, "TCP", port_81)])]


@upstream(
    "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)"
)
def _() -> list[Step]:
    egress = gen(
        "x",
        "allow-to-ns-y-pod-a",
        labels(pod="a"),
        egress=[{"to": [{"namespaceSelector": ns_named("y"), "podSelector": labels(pod="a")}]}],
    )
    from_x_a = [{"from": [{"namespaceSelector": ns_named("x"), "podSelector": labels(pod="a")}]}]
    policies = [
        egress,
        gen("y", "allow-from-xa-on-ya-match-selector", labels(pod="a"), ingress=from_x_a),
        gen("y", "allow-from-xa-on-yb-match-selector", labels(pod="b"), ingress=from_x_a),
    ]
    reachability = (
        R()
        .expect_peer("x", "a", "", "", False)
        .expect_peer("", "", "y", "a", False)
        .expect_peer("x", "a", "y", "a", True)
        .expect_peer("", "", "y", "b", False)
    )
    return one(policies, reachability)


@upstream(
    "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector"
)
def _() -> list[Step]:
    rule = {"to": [{"namespaceSelector": ns_named("y"), "podSelector": labels(pod="a")}]}
    policies = [gen("x", "allow-to-ns-y-pod-a", labels(pod="a"), egress=[rule])]
    return one(policies, R().expect_all_egress("x/a", False).expect("x/a", "y/a", True))


@upstream(
    "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
    protocols=("TCP", "UDP"),
)
def _() -> list[Step]:
    policies = [
        gen("x", "allow-ingress-by-proto", labels(pod="a"), ingress=[{"ports": [{"protocol": "TCP"}]}])
    ]
    return [
        Step(policies, [Probe(80, "TCP", R()), Probe(80, "UDP", R().expect_peer("", "", "x", "a", False))])
    ]


@upstream(
    "should enforce multiple ingress policies with ingress allow-all policy taking precedence", ports=(81,)
)
def _() -> list[Step]:
    only_80 = gen("x", "allow-ingress-port-80", labels(), ingress=[{"ports": [{"port": 80}]}])
    return [
        Step([only_80], [Probe(81, "TCP", R().expect_peer("", "", "x", "", False))]),
        Step([only_80, gen("x", "allow-ingress", labels(), ingress=[{}])], [Probe(81, "TCP", R())]),
    ]


@upstream(
    "should enforce multiple egress policies with egress allow-all policy taking precedence", ports=(81,)
)
def _() -> list[Step]:
    only_80 = gen("x", "allow-egress-port-80", labels(), egress=[{"ports": [{"port": 80}]}])
    return [
        Step([only_80], [Probe(81, "TCP", R().expect_peer("x", "", "", "", False))]),
        Step([only_80, gen("x", "allow-egress", labels(), egress=[{}])], [Probe(81, "TCP", R())]),
    ]


@upstream("should stop enforcing policies after they are deleted")
def _() -> list[Step]:
    deny_all = R().expect_peer("x", "", "", "", False).expect_peer("", "", "x", "", False)
    return [
        Step([gen("x", "deny-all", {}, ingress=[], egress=[])], [Probe(80, "TCP", deny_all)]),
        Step([], [Probe(80, "TCP", R())]),
    ]


@upstream("should allow egress access to server in CIDR block")
def _() -> list[Step]:
    rule = {"to": [{"ipBlock": {"cidr": f"{ip_of('y/b')}/32"}}]}
    policies = [gen("x", "allow-client-a-via-cidr-egress-rule", labels(pod="a"), egress=[rule])]
    return one(policies, R().expect_all_egress("x/a", False).expect("x/a", "y/b", True))


def _cidr_except_x_b() -> dict[str, Any]:
    rule = {"to": [{"ipBlock": {"cidr": f"{ip_of('x/a')}/4", "except": [f"{ip_of('x/b')}/32"]}}]}
    return gen("x", "allow-client-a-via-cidr-egress-rule", labels(pod="a"), egress=[rule])


@upstream("should enforce except clause while egress access to server in CIDR block")
def _() -> list[Step]:
    return one([_cidr_except_x_b()], R().expect("x/a", "x/b", False))


@upstream("should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed")
def _() -> list[Step]:
    # UpdatePolicy replaces the policy of the same name.
    only_x_b = gen(
        "x",
        "allow-client-a-via-cidr-egress-rule",
        labels(pod="a"),
        egress=[{"to": [{"ipBlock": {"cidr": f"{ip_of('x/b')}/32"}}]}],
    )
    return [
        Step([_cidr_except_x_b()], [Probe(80, "TCP", R().expect("x/a", "x/b", False))]),
        Step([only_x_b], [Probe(80, "TCP", R().expect_all_egress("x/a", False).expect("x/a", "x/b", True))]),
    ]


@upstream(
    "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector"
)
def _() -> list[Step]:
    allow_egress = gen("x", "allow-egress-for-target", labels(pod="a"), egress=[{}])
    deny_ingress = gen("x", "deny-ingress-via-label-selector", labels(pod="a"), ingress=[])
    return [
        Step([allow_egress], [Probe(80, "TCP", R())]),
        Step([allow_egress, deny_ingress], [Probe(80, "TCP", R().expect_all_ingress("x/a", False))]),
    ]


@upstream(
    "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    ports=(81,),
)
def _() -> list[Step]:
    sctp = gen(
        "x",
        "allow-only-sctp-ingress-on-port-81",
        labels(pod="a"),
        ingress=[{"ports": [{"port": 81, "protocol": "SCTP"}]}],
    )
    return one(
        [gen("x", "deny-ingress", {}, ingress=[]), sctp], R().expect_peer("", "", "x", "", False), port=81
    )


@upstream(
    "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
    ports=(81,),
)
def _() -> list[Step]:
    sctp = gen(
        "x",
        "allow-only-sctp-ingress-on-port-80",
        labels(pod="a"),
        ingress=[{"ports": [{"port": 80, "protocol": "SCTP"}]}],
    )
    return one([sctp], R().expect_all_ingress("x/a", False), port=81)


@upstream("should not allow access by TCP when a policy specifies only UDP", ports=(81,))
def _() -> list[Step]:
    udp = gen(
        "x",
        "allow-only-udp-ingress-on-port-81",
        labels(pod="a"),
        ingress=[{"ports": [{"port": 81, "protocol": "UDP"}]}],
    )
    return one([udp], R().expect_all_ingress("x/a", False), port=81)


@upstream(
    "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label"
)
def _() -> list[Step]:
    rule = {"from": [{"namespaceSelector": ns_named("y")}]}
    policies = [
        gen("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", labels(pod="a"), ingress=[rule])
    ]
    return one(policies, R().expect_peer("x", "", "x", "a", False).expect_peer("z", "", "x", "a", False))


@upstream("should enforce policy based on NamespaceSelector with MatchExpressions using default ns label")
def _() -> list[Step]:
    rule = {"to": [{"namespaceSelector": expression(NAME, "NotIn", "y")}]}
    policies = [gen("x", "allow-ns-y-match-selector-for-immutable-ns-label", labels(pod="a"), egress=[rule])]
    return one(policies, R().expect_peer("x", "a", "y", "", False))


# "Netpol [LinuxOnly]" (UDP) and "Netpol [Feature:SCTPConnectivity]" (SCTP) contexts.
for _protocol in ("UDP", "SCTP"):

    @upstream(f"{_protocol}: should support a 'default-deny-ingress' policy", protocols=(_protocol,))
    def _(protocol: str = _protocol) -> list[Step]:
        return one(
            [gen("x", "deny-all", {}, ingress=[])], R().expect_peer("", "", "x", "", False), protocol=protocol
        )

    @upstream(f"{_protocol}: should enforce policy based on Ports", ports=(81,), protocols=(_protocol,))
    def _(protocol: str = _protocol) -> list[Step]:
        reachability = R().expect_peer("x", "", "x", "a", False).expect_peer("z", "", "x", "a", False)
        return one(
            [_port_81_from_y("allow-ingress-on-port-81-ns-x", protocol=protocol)], reachability, 81, protocol
        )

    @upstream(
        f"{_protocol}: should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
        protocols=(_protocol,),
    )
    def _(protocol: str = _protocol) -> list[Step]:
        rule = {"from": [{"namespaceSelector": ns_named("y"), "podSelector": labels(pod="a")}]}
        policies = [gen("x", "allow-ns-y-pod-a-via-namespace-pod-selector", labels(pod="a"), ingress=[rule])]
        return one(
            policies, R().expect_all_ingress("x/a", False).expect("y/a", "x/a", True), protocol=protocol
        )


def model(case: Case, step: Step) -> tuple[list[Namespace], dict[str, Pod]]:
    namespaces = [Namespace(ns, {"ns": ns, **step.namespace_labels.get(ns, {})}) for ns in NS]
    container_ports = tuple(
        ContainerPort(port, protocol, f"serve-{port}-{protocol.lower()}")
        for port in case.ports
        for protocol in case.protocols
    )
    pods = {}
    for pod in ALL:
        namespace, name = pod.split("/")
        pod_labels = {"pod": name, **step.pod_labels.get(pod, {})}
        pods[pod] = Pod(
            namespace, name, pod_labels, container_ports, ip_of(pod), f"node-{POD_NAMES.index(name)}"
        )
    return namespaces, pods


def test_upstream_case_count() -> None:
    assert len(CASES) == 48
    assert len({case.it for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.it for case in CASES])
def test_upstream_e2e_truth_table(case: Case) -> None:
    for step_index, step in enumerate(case.steps):
        namespaces, pods = model(case, step)
        policies = PolicySet(step.policies, namespaces)
        for probe in step.probes:
            wrong = []
            for (source, destination), expected in probe.reachability.expected.items():
                if source == destination:
                    continue  # ignoreLoopback, as upstream
                decision = policies.decide(pods[source], pods[destination], probe.port, probe.protocol)
                if decision.allowed != expected:
                    wrong.append(f"expected {'allowed' if expected else 'denied'}:\n{decision.explain()}")
            assert not wrong, f"step {step_index}, {probe.protocol}/{probe.port}:\n" + "\n".join(wrong)
