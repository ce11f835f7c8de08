"""NetworkPolicies derived from flows, manifest by manifest (issue 17, mutation testing): the peers
(namespace AND pod selector in one peer, ipBlocks with only the exceptions they contain), ports
left out for "every port", node-local flows generating nothing, one rule per distinct flow with
the reasons annotated, and the refusal of one pod-group name with two selectors."""

from __future__ import annotations

from typing import Any

import pytest

from infra.contract import Addresses, Flow, Pods, Port
from infra.network import _contains, _peers, network_policies

META_LABELS = {"app.kubernetes.io/part-of": "naomi", "app.kubernetes.io/managed-by": "pulumi"}
API = Pods("naomi-a", {"app": "api", "tier": "web"}, "api")
DB = Pods("naomi-b", {"app": "db"}, "db")
EVERY_B = Pods("naomi-b", {}, "every")
OUTSIDE = Pods("kube-system", {"k8s-app": "kube-dns"}, "dns")
LAN = Addresses("lan", ("10.0.0.0/8", "192.168.0.0/16"), ("10.1.0.0/16", "172.16.0.0/12", "not-a-cidr"))


def _defaults(namespace: str) -> list[dict[str, Any]]:
    def manifest(name: str, rules: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": META_LABELS},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], **rules},
        }

    return [
        manifest("default-deny", {}),
        manifest(
            "allow-same-namespace",
            {"ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]},
        ),
    ]


def _by_name(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in manifests}


def test_no_flows_gives_the_defaults_of_each_namespace_sorted() -> None:
    assert network_policies([], ["naomi-b", "naomi-a"]) == _defaults("naomi-a") + _defaults("naomi-b")


def test_a_flow_between_owned_namespaces_opens_both_ends() -> None:
    flow = Flow(API, DB, (Port(5432), Port("metrics", "UDP")), "api reads the database")
    manifests = network_policies([flow], ["naomi-a", "naomi-b"])
    assert manifests[:4] == _defaults("naomi-a") + _defaults("naomi-b")
    assert manifests[4:] == [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "egress-api",
                "namespace": "naomi-a",
                "labels": META_LABELS,
                "annotations": {"naomi.io/flows": "api reads the database"},
            },
            "spec": {
                "podSelector": {"matchLabels": {"app": "api", "tier": "web"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "naomi-b"}
                                },
                                "podSelector": {"matchLabels": {"app": "db"}},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "UDP", "port": "metrics"}],
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "ingress-db",
                "namespace": "naomi-b",
                "labels": META_LABELS,
                "annotations": {"naomi.io/flows": "api reads the database"},
            },
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "naomi-a"}
                                },
                                "podSelector": {"matchLabels": {"app": "api", "tier": "web"}},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "UDP", "port": "metrics"}],
                    }
                ],
            },
        },
    ]


def test_a_side_outside_the_owned_namespaces_generates_nothing_there() -> None:
    flows = [Flow(API, OUTSIDE, (Port(53, "UDP"),), "dns"), Flow(OUTSIDE, DB, (), "probe")]
    names = sorted(_by_name(network_policies(flows, ["naomi-a", "naomi-b"])))
    assert names == [
        ("naomi-a", "allow-same-namespace"),
        ("naomi-a", "default-deny"),
        ("naomi-a", "egress-api"),
        ("naomi-b", "allow-same-namespace"),
        ("naomi-b", "default-deny"),
        ("naomi-b", "ingress-db"),
    ]
    assert names == sorted(_by_name(network_policies(flows, ["naomi-a", "naomi-b"])))
    only_a = _by_name(network_policies(flows, ["naomi-a"]))
    assert ("naomi-b", "ingress-db") not in only_a and ("naomi-a", "egress-api") in only_a


def test_every_port_leaves_ports_out_and_every_pod_selects_all() -> None:
    manifests = _by_name(network_policies([Flow(API, EVERY_B, (), "anything")], ["naomi-a", "naomi-b"]))
    ingress = manifests[("naomi-b", "ingress-every")]["spec"]
    assert ingress["podSelector"] == {}
    assert ingress["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "naomi-a"}},
                    "podSelector": {"matchLabels": {"app": "api", "tier": "web"}},
                }
            ]
        }
    ]
    egress = manifests[("naomi-a", "egress-api")]["spec"]["egress"]
    assert egress == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "naomi-b"}},
                    "podSelector": {},
                }
            ]
        }
    ]


def test_ip_blocks_carry_only_the_exceptions_inside_them() -> None:
    assert _peers(LAN) == [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
        {"ipBlock": {"cidr": "192.168.0.0/16"}},
    ]
    egress = _by_name(network_policies([Flow(API, LAN, (Port(443),), "lan")], ["naomi-a"]))
    assert egress[("naomi-a", "egress-api")]["spec"]["egress"] == [
        {"to": _peers(LAN), "ports": [{"protocol": "TCP", "port": 443}]}
    ]
    ingress = _by_name(network_policies([Flow(LAN, DB, (), "from the lan")], ["naomi-b"]))
    assert ingress[("naomi-b", "ingress-db")]["spec"]["ingress"] == [{"from": _peers(LAN)}]


def test_contains() -> None:
    assert _contains("10.0.0.0/8", "10.1.0.0/16")
    assert _contains("10.0.0.0/8", "10.0.0.0/8")
    assert not _contains("10.1.0.0/16", "10.0.0.0/8")
    assert not _contains("10.0.0.0/8", "fd00::/8")  # another family: TypeError, not contained
    assert not _contains("10.0.0.0/8", "garbage")


def test_node_local_flows_generate_nothing() -> None:
    kubelet = Addresses("kubelet", (), node_local=True)
    flows = [Flow(kubelet, DB, (Port(8080),), "probes"), Flow(API, kubelet, (), "to its node")]
    assert network_policies(flows, ["naomi-a", "naomi-b"]) == _defaults("naomi-a") + _defaults("naomi-b")


def test_identical_rules_merge_and_their_reasons_are_sorted_and_unique() -> None:
    flows = [
        Flow(API, DB, (Port(5432),), "z: migrations"),
        Flow(API, DB, (Port(5432),), "a: queries"),
        Flow(API, DB, (Port(5432),), "a: queries"),
        Flow(API, DB, (Port(9187),), "m: metrics"),
    ]
    ingress = _by_name(network_policies(flows, ["naomi-a", "naomi-b"]))[("naomi-b", "ingress-db")]
    assert ingress["metadata"]["annotations"] == {"naomi.io/flows": "a: queries; m: metrics; z: migrations"}
    assert [rule["ports"] for rule in ingress["spec"]["ingress"]] == [
        [{"protocol": "TCP", "port": 5432}],
        [{"protocol": "TCP", "port": 9187}],
    ]


def test_the_annotation_is_capped_and_an_empty_reason_adds_none() -> None:
    long = network_policies([Flow(API, DB, (), "x" * 5000)], ["naomi-b"])
    assert long[-1]["metadata"]["annotations"] == {"naomi.io/flows": "x" * 4000}
    empty = network_policies([Flow(API, DB, (), "")], ["naomi-b"])
    assert "annotations" not in empty[-1]["metadata"]


def test_policies_are_sorted_by_namespace_group_and_direction() -> None:
    web = Pods("naomi-a", {"app": "web"}, "web")
    flows = [Flow(web, API, (), "w->a"), Flow(API, web, (), "a->w"), Flow(DB, API, (), "db->api")]
    names = [
        (m["metadata"]["namespace"], m["metadata"]["name"])
        for m in network_policies(flows, ["naomi-b", "naomi-a"])
    ]
    assert names == [
        ("naomi-a", "default-deny"),
        ("naomi-a", "allow-same-namespace"),
        ("naomi-b", "default-deny"),
        ("naomi-b", "allow-same-namespace"),
        ("naomi-a", "egress-api"),
        ("naomi-a", "ingress-api"),
        ("naomi-a", "egress-web"),
        ("naomi-a", "ingress-web"),
        ("naomi-b", "egress-db"),
    ]


def test_one_group_name_with_two_selectors_is_refused() -> None:
    other = Pods("naomi-b", {"app": "other"}, "db")
    with pytest.raises(ValueError) as raised:
        network_policies([Flow(API, DB, (), "x"), Flow(API, other, (), "y")], ["naomi-b"])
    assert str(raised.value) == (
        "flows name two different pod groups naomi-b/db: {'app': 'db'} and {'app': 'other'}"
    )
    same = Pods("naomi-b", {"app": "db"}, "db")
    assert len(network_policies([Flow(API, DB, (), "x"), Flow(same, API, (), "y")], ["naomi-b"])) == 4


def test_flows_after_a_node_local_one_still_count() -> None:
    kubelet = Addresses("kubelet", (), node_local=True)
    for node_local in (Flow(kubelet, DB, (), "probes"), Flow(API, kubelet, (), "to its node")):
        manifests = _by_name(
            network_policies([node_local, Flow(API, DB, (), "queries")], ["naomi-a", "naomi-b"])
        )
        assert ("naomi-b", "ingress-db") in manifests and ("naomi-a", "egress-api") in manifests
