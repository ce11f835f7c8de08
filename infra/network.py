"""The platform's NetworkPolicies, derived from the flows every component declares.

One source of truth: components state flows in their `Contract` (`infra.contract`); this module
turns them into policies and nothing else in the project writes a NetworkPolicy. Per platform
namespace: `default-deny` (ingress and egress), `allow-same-namespace`, then one `ingress-<group>`
and one `egress-<group>` policy per pod group, one rule per flow, the reasons in the
`naomi.io/flows` annotation. The cluster model (`naomi.cluster.flows`) proves each flow allowed.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.contract import NAMESPACE_LABEL, Addresses, Endpoint, Flow, Pods, Port
from infra.naming import MANAGED_BY, PART_OF


def _selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(sorted(labels.items()))} if labels else {}


def _peers(endpoint: Endpoint) -> list[dict[str, Any]]:
    if isinstance(endpoint, Pods):
        return [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: endpoint.namespace}},
                "podSelector": _selector(endpoint.labels),
            }
        ]
    blocks = []
    for cidr in endpoint.cidrs:
        block: dict[str, Any] = {"cidr": cidr}
        excluded = [e for e in endpoint.excluded if _contains(cidr, e)]
        if excluded:
            block["except"] = excluded
        blocks.append({"ipBlock": block})
    return blocks


def _contains(outer: str, inner: str) -> bool:
    try:
        return ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _ports(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [{"protocol": p.protocol, "port": p.port} for p in ports]


@dataclass
class _Policy:
    namespace: str
    pods: Pods
    direction: Literal["Ingress", "Egress"]
    rules: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def network_policies(flows: Sequence[Flow], namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """The NetworkPolicy manifests for `namespaces` (the platform's own) from `flows`.

    Per namespace: `default-deny` (ingress and egress), `allow-same-namespace`, then for each pod
    group one `ingress-<name>` / `egress-<name>` policy with one rule per flow. A flow's side that
    lies outside `namespaces` (kube-system, the API server) generates nothing there.
    """
    owned = set(namespaces)
    policies: dict[tuple[str, str, str], _Policy] = {}
    selectors: dict[tuple[str, str], Mapping[str, str]] = {}

    def policy(pods: Pods, direction: Literal["Ingress", "Egress"]) -> _Policy:
        known = selectors.setdefault((pods.namespace, pods.name), pods.labels)
        if dict(known) != dict(pods.labels):
            raise ValueError(
                f"flows name two different pod groups {pods.namespace}/{pods.name}: "
                f"{dict(known)} and {dict(pods.labels)}"
            )
        key = (pods.namespace, pods.name, direction)
        return policies.setdefault(key, _Policy(pods.namespace, pods, direction))

    for flow in flows:
        if isinstance(flow.destination, Addresses) and flow.destination.node_local:
            continue
        if isinstance(flow.source, Addresses) and flow.source.node_local:
            continue  # always allowed; the proof checks the claim
        rule_ports = _ports(flow.ports)
        if isinstance(flow.destination, Pods) and flow.destination.namespace in owned:
            rule: dict[str, Any] = {"from": _peers(flow.source)}
            if rule_ports:
                rule["ports"] = rule_ports
            policy(flow.destination, "Ingress").rules.append((rule, flow.why))
        if isinstance(flow.source, Pods) and flow.source.namespace in owned:
            rule = {"to": _peers(flow.destination)}
            if rule_ports:
                rule["ports"] = rule_ports
            policy(flow.source, "Egress").rules.append((rule, flow.why))

    manifests: list[dict[str, Any]] = []
    for namespace in sorted(owned):
        manifests.append(_manifest(namespace, "default-deny", {}, ["Ingress", "Egress"], {}))
        manifests.append(
            _manifest(
                namespace,
                "allow-same-namespace",
                {},
                ["Ingress", "Egress"],
                {"ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]},
            )
        )
    grouped: dict[str, list[_Policy]] = defaultdict(list)
    for item in policies.values():
        grouped[item.namespace].append(item)
    for namespace in sorted(grouped):
        for item in sorted(grouped[namespace], key=lambda p: (p.pods.name, p.direction)):
            unique: dict[str, tuple[dict[str, Any], list[str]]] = {}
            for rule, why in item.rules:
                key = repr(sorted(rule.items()))
                unique.setdefault(key, (rule, []))[1].append(why)
            rules = [rule for rule, _ in unique.values()]
            reasons = sorted({why for _, whys in unique.values() for why in whys})
            section = "ingress" if item.direction == "Ingress" else "egress"
            manifests.append(
                _manifest(
                    namespace,
                    f"{section}-{item.pods.name}",
                    item.pods.labels,
                    [item.direction],
                    {section: rules},
                    annotation="; ".join(reasons),
                )
            )
    return manifests


def _manifest(
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    policy_types: list[str],
    rules: dict[str, Any],
    annotation: str = "",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": MANAGED_BY},
    }
    if annotation:
        metadata["annotations"] = {"naomi.io/flows": annotation[:4000]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {"podSelector": _selector(labels), "policyTypes": policy_types, **rules},
    }


@dataclass(frozen=True, kw_only=True)
class NetworkPoliciesArgs:
    flows: tuple[Flow, ...]
    namespaces: tuple[str, ...]  # the platform's namespaces (policies are created there only)
    # Each namespace's component, which owned its `default-deny` policy before this component
    # did: the alias keeps the object (same name) from being deleted after its re-creation.
    previous_parents: Mapping[str, pulumi.Resource] = field(default_factory=dict)


class NetworkPolicies(pulumi.ComponentResource):
    """Every NetworkPolicy of the platform, from the declared flows."""

    def __init__(
        self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:platform:NetworkPolicies", name, None, opts)
        manifests = network_policies(args.flows, args.namespaces)
        for manifest in manifests:
            metadata = manifest["metadata"]
            namespace = metadata["namespace"]
            aliases: list[pulumi.Alias | str] = []
            if metadata["name"] == "default-deny" and namespace in args.previous_parents:
                key = namespace.removeprefix("naomi-")
                aliases.append(
                    pulumi.Alias(name=f"ns-{key}-default-deny", parent=args.previous_parents[namespace])
                )
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{namespace}-{metadata['name']}",
                metadata=metadata,
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, aliases=aliases),
            )
        # The declared flows travel with the component (the render writes them to flows.yaml and
        # the cluster model proves each one against the policies above).
        self.register_outputs(
            {"flows": [flow.as_dict() for flow in args.flows], "namespaces": list(args.namespaces)}
        )
