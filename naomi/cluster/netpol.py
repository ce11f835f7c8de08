"""NetworkPolicy semantics: is a connection between two endpoints allowed, and why.

Owns the evaluation of rendered `networking.k8s.io/v1` NetworkPolicies (ours and the charts')
the way a conformant network plugin enforces them, for one connection at a time
(`PolicySet.decide`), and the Service-to-backend resolution that turns a Service port into the
pod endpoints and target ports the evaluator works on (`service_backends`; NetworkPolicy acts
after the Service DNAT, on pod IPs and pod ports).

Sources, quoted where the behaviour is modelled:
- "Network Policies", kubernetes.io/docs/concepts/services-networking/network-policies/
  (kubernetes/website content/en/docs/concepts/services-networking/network-policies.md);
- the API reference of NetworkPolicy: kubernetes/api networking/v1/types.go at v0.32.0
  (= Kubernetes 1.32.0), defaulting in kubernetes/kubernetes pkg/apis/networking/v1/defaults.go;
- label selectors: kubernetes/apimachinery pkg/apis/meta/v1/helpers.go (LabelSelectorAsSelector)
  and pkg/labels/selector.go (Requirement.Matches) at v0.32.0;
- Service target ports: kubernetes/api core/v1/types.go (ServicePort.targetPort) at v0.32.0 and
  FindPort in kubernetes/kubernetes pkg/api/v1/pod/util.go.
The upstream conformance cases (test/e2e/network/netpol/network_policy.go) run against this
module in tests/test_netpol.py. What only a real cluster confirms: the plugin's choices where the
docs leave behaviour to the implementation (ipBlock against pod IPs, hostNetwork pods, loopback).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
DOCS = "Kubernetes docs, Network Policies"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Namespace:
    """A namespace and its labels; `kubernetes.io/metadata.name` is always set to the name."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The API server sets this immutable label on every namespace (since 1.21, GA 1.22); the
        # docs: "The Kubernetes control plane sets an immutable label kubernetes.io/metadata.name
        # on all namespaces, the value of the label is the namespace name."
        object.__setattr__(self, "labels", {**self.labels, NAMESPACE_NAME_LABEL: self.name})


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ports: tuple[ContainerPort, ...] = ()
    ip: str | None = None
    node: str | None = None
    host_network: bool = False


@dataclass(frozen=True)
class Host:
    """A node address (kubelet, an API server on the host network) or an address outside the cluster."""

    ip: str
    node: str | None = None
    description: str = ""


Endpoint = Pod | Host


@dataclass(frozen=True)
class Verdict:
    """One side of a connection: egress at the source or ingress at the destination."""

    allowed: bool
    isolated: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    egress: Verdict
    ingress: Verdict
    connection: str  # "x/a -> y/b TCP/80", what explain() is about

    def explain(self) -> str:
        lines = [f"{'ALLOWED' if self.allowed else 'DENIED'} {self.connection}"]
        for side, verdict in (("egress", self.egress), ("ingress", self.ingress)):
            state = "allowed" if verdict.allowed else "denied"
            isolation = "isolated" if verdict.isolated else "not isolated"
            lines.append(f"  {side}: {state} ({isolation})")
            lines.extend(f"    - {reason}" for reason in verdict.reasons)
        return "\n".join(lines)


# --- parsed policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Selector:
    """A metav1.LabelSelector; matchLabels and matchExpressions are ANDed, `{}` matches everything."""

    match_labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, str, frozenset[str]], ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels):
            return False
        return all(_requirement_matches(labels, *expression) for expression in self.expressions)


def _requirement_matches(labels: Mapping[str, str], key: str, operator: str, values: frozenset[str]) -> bool:
    # kubernetes/apimachinery pkg/labels/selector.go Requirement.Matches at v0.32.0: NotIn (like
    # DoesNotExist) matches a pod that lacks the key altogether.
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist; the operator was validated when parsing


@dataclass(frozen=True)
class _IPBlock:
    cidr: _Network
    excepts: tuple[_Network, ...]

    def matches(self, ip: str | None) -> bool:
        if ip is None:
            return False
        address = ipaddress.ip_address(ip)
        if address.version != self.cidr.version or address not in self.cidr:
            return False
        return not any(address in excluded for excluded in self.excepts)


@dataclass(frozen=True)
class _Peer:
    pod_selector: _Selector | None
    namespace_selector: _Selector | None
    ip_block: _IPBlock | None


@dataclass(frozen=True)
class _PolicyPort:
    protocol: str
    port: int | str | None  # None: every port of the protocol
    end_port: int | None


@dataclass(frozen=True)
class _Rule:
    index: int
    peers: tuple[_Peer, ...]  # empty: every peer
    ports: tuple[_PolicyPort, ...]  # empty: every port


@dataclass(frozen=True)
class _Policy:
    namespace: str
    name: str
    pod_selector: _Selector
    applies_to_ingress: bool
    applies_to_egress: bool
    ingress: tuple[_Rule, ...]
    egress: tuple[_Rule, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class _PolicyError(ValueError):
    pass


def _number(value: Any) -> Any:
    """Pulumi mocks deliver numbers as floats (`80.0`); the API would hold an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _parse_selector(raw: Any, where: str) -> _Selector:
    if not isinstance(raw, Mapping):
        raise _PolicyError(f"{where}: a label selector must be a mapping, got {raw!r}")
    match_labels = raw.get("matchLabels") or {}
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise _PolicyError(f"{where}.matchLabels.{key}: label values are strings, got {value!r}")
    expressions = []
    for index, expression in enumerate(raw.get("matchExpressions") or []):
        path = f"{where}.matchExpressions[{index}]"
        operator = expression.get("operator")
        values = list(expression.get("values") or [])
        # Operators and value counts as LabelSelectorAsSelector/NewRequirement accept them.
        if operator in ("In", "NotIn"):
            if not values:
                raise _PolicyError(f"{path}: operator {operator} needs at least one value")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                raise _PolicyError(f"{path}: operator {operator} takes no values, got {values!r}")
        else:
            raise _PolicyError(f"{path}: operator {operator!r} is not one of In, NotIn, Exists, DoesNotExist")
        key = expression.get("key")
        if not isinstance(key, str) or not key:
            raise _PolicyError(f"{path}: key must be a label key, got {key!r}")
        expressions.append((key, str(operator), frozenset(str(v) for v in values)))
    return _Selector(tuple(sorted(match_labels.items())), tuple(expressions))


def _parse_network(raw: Any, where: str) -> _Network:
    # strict=False: the API server parses ipBlock CIDRs with Go's net.ParseCIDR, which accepts
    # host bits ("10.1.2.3/4"); the upstream e2e suite builds such CIDRs from pod IPs.
    try:
        return ipaddress.ip_network(str(raw), strict=False)
    except ValueError as error:
        raise _PolicyError(f"{where}: {raw!r} is not a CIDR") from error


def _parse_ip_block(raw: Mapping[str, Any], where: str) -> _IPBlock:
    cidr = _parse_network(raw.get("cidr"), f"{where}.cidr")
    excepts = tuple(
        _parse_network(item, f"{where}.except[{index}]") for index, item in enumerate(raw.get("except") or [])
    )
    for index, excluded in enumerate(excepts):
        # types.go: "Except values will be rejected if they are outside the cidr range".
        if excluded.version != cidr.version or not excluded.subnet_of(cidr):  # type: ignore[arg-type]
            raise _PolicyError(f"{where}.except[{index}]: {excluded} is outside the cidr {cidr}")
    return _IPBlock(cidr, excepts)


def _parse_peer(raw: Mapping[str, Any], where: str) -> _Peer:
    pod_selector = raw.get("podSelector")
    namespace_selector = raw.get("namespaceSelector")
    ip_block = raw.get("ipBlock")
    present = [item is not None for item in (pod_selector, namespace_selector, ip_block)]
    # As the API server validates a NetworkPolicyPeer (types.go: "ipBlock ... If this field is set
    # then neither of the other fields can be"): a peer names something, an ipBlock stands alone.
    if not any(present):
        raise _PolicyError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    if ip_block is not None and sum(present) > 1:
        raise _PolicyError(f"{where}: ipBlock cannot be combined with podSelector or namespaceSelector")
    return _Peer(
        pod_selector=None if pod_selector is None else _parse_selector(pod_selector, f"{where}.podSelector"),
        namespace_selector=None
        if namespace_selector is None
        else _parse_selector(namespace_selector, f"{where}.namespaceSelector"),
        ip_block=None if ip_block is None else _parse_ip_block(ip_block, f"{where}.ipBlock"),
    )


def _parse_port(raw: Mapping[str, Any], where: str) -> _PolicyPort:
    # defaults.go SetDefaults_NetworkPolicyPort: a missing protocol is TCP.
    protocol = raw.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise _PolicyError(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    port = _number(raw.get("port"))
    end_port = _number(raw.get("endPort"))
    if end_port is not None:
        # types.go: "This field cannot be defined if the port field is not defined or if the port
        # field is defined as a named (string) port. The endPort must be equal or greater than port."
        if not isinstance(port, int):
            raise _PolicyError(f"{where}.endPort: needs a numeric port, got port {port!r}")
        if not isinstance(end_port, int) or end_port < port:
            raise _PolicyError(f"{where}.endPort: {end_port!r} is less than port {port}")
    if port is not None and not isinstance(port, int | str):
        raise _PolicyError(f"{where}.port: {port!r} is neither a number nor a port name")
    return _PolicyPort(protocol, port, end_port)


def _parse_rules(raw: Any, peers_key: str, where: str) -> tuple[_Rule, ...]:
    rules = []
    for index, rule in enumerate(raw or []):
        path = f"{where}[{index}]"
        # types.go: an empty or missing from/to matches all peers, an empty or missing ports all
        # ports; so the rule `{}` allows everything.
        peers = tuple(
            _parse_peer(peer, f"{path}.{peers_key}[{i}]") for i, peer in enumerate(rule.get(peers_key) or [])
        )
        ports = tuple(
            _parse_port(port, f"{path}.ports[{i}]") for i, port in enumerate(rule.get("ports") or [])
        )
        rules.append(_Rule(index, peers, ports))
    return tuple(rules)


def _parse_policy(raw: Mapping[str, Any]) -> _Policy:
    metadata = raw.get("metadata") or {}
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    where = f"NetworkPolicy {namespace}/{name}"
    if raw.get("kind") != "NetworkPolicy":
        raise _PolicyError(f"{where}: kind is {raw.get('kind')!r}, not NetworkPolicy")
    if not name or not namespace:
        raise _PolicyError(f"{where}: metadata.name and metadata.namespace are required")
    spec = raw.get("spec") or {}
    egress = spec.get("egress") or []
    policy_types = list(spec.get("policyTypes") or [])
    for policy_type in policy_types:
        if policy_type not in ("Ingress", "Egress"):
            raise _PolicyError(f"{where}: policyTypes entry {policy_type!r} is not Ingress or Egress")
    if not policy_types:
        # defaults.go SetDefaults_NetworkPolicy: "Any policy that does not specify policyTypes
        # implies at least Ingress", and Egress `if len(obj.Spec.Egress) != 0` (so `egress: []`
        # without policyTypes does not isolate for egress).
        policy_types = ["Ingress", "Egress"] if egress else ["Ingress"]
    if "podSelector" not in spec:
        raise _PolicyError(f"{where}: spec.podSelector is required ({{}} selects every pod)")
    return _Policy(
        namespace=str(namespace),
        name=str(name),
        pod_selector=_parse_selector(spec["podSelector"], f"{where}: spec.podSelector"),
        applies_to_ingress="Ingress" in policy_types,
        applies_to_egress="Egress" in policy_types,
        ingress=_parse_rules(spec.get("ingress"), "from", f"{where}: spec.ingress"),
        egress=_parse_rules(egress, "to", f"{where}: spec.egress"),
    )


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Connection:
    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str
    label: str  # "TCP/80" or "TCP/80 (serve-80-tcp)"


def _as_host(endpoint: Endpoint) -> Host | None:
    """The host an endpoint's traffic comes from, or None for a pod on the pod network.

    hostNetwork pods: the docs ("NetworkPolicy and hostNetwork pods") leave their behaviour
    undefined between two options and name the most common one, which we model: the plugin
    "ignores hostNetwork pods when matching podSelector and namespaceSelector. Traffic to/from
    hostNetwork pods is treated the same as all other traffic to/from the node IP."
    """
    if isinstance(endpoint, Host):
        return endpoint
    if endpoint.host_network:
        address = endpoint.ip or ""
        return Host(address, endpoint.node, f"hostNetwork pod {endpoint.namespace}/{endpoint.name}")
    return None


def describe(endpoint: Endpoint) -> str:
    if isinstance(endpoint, Pod):
        if endpoint.host_network:
            return f"{endpoint.namespace}/{endpoint.name} (hostNetwork, node IP {endpoint.ip or 'unknown'})"
        return f"{endpoint.namespace}/{endpoint.name}"
    return f"host {endpoint.ip}" + (f" ({endpoint.description})" if endpoint.description else "")


class PolicySet:
    """The NetworkPolicies of a cluster and its namespaces; decides single connections."""

    def __init__(self, policies: Sequence[Mapping[str, Any]], namespaces: Sequence[Namespace]) -> None:
        self._policies = tuple(_parse_policy(policy) for policy in policies)
        self._namespaces = {namespace.name: namespace for namespace in namespaces}

    def decide(
        self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP"
    ) -> Decision:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        number = self._connection_port(destination, port, protocol)
        label = f"{protocol}/{number}" + (f" ({port})" if isinstance(port, str) else "")
        connection = _Connection(source, destination, number, protocol, label)
        egress = self._egress(connection)
        ingress = self._ingress(connection)
        return Decision(
            allowed=egress.allowed and ingress.allowed,
            egress=egress,
            ingress=ingress,
            connection=f"{describe(source)} -> {describe(destination)} {label}",
        )

    def _connection_port(self, destination: Endpoint, port: int | str, protocol: str) -> int:
        if isinstance(port, str):
            resolved = _named_port(destination, port, protocol) if isinstance(destination, Pod) else None
            if resolved is None:
                raise ValueError(
                    f"{describe(destination)} has no container port named {port!r} for {protocol}"
                )
            return resolved
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1-65535")
        return port

    def _namespace(self, name: str) -> Namespace:
        try:
            return self._namespaces[name]
        except KeyError:
            raise ValueError(f"namespace {name!r} is not among the namespaces given to PolicySet") from None

    def _selecting(self, pod: Pod, direction: str) -> list[_Policy]:
        self._namespace(pod.namespace)
        return [
            policy
            for policy in self._policies
            if policy.namespace == pod.namespace
            and (policy.applies_to_ingress if direction == "ingress" else policy.applies_to_egress)
            and policy.pod_selector.matches(pod.labels)
        ]

    def _egress(self, connection: _Connection) -> Verdict:
        source = connection.source
        if not isinstance(source, Pod) or source.host_network:
            return Verdict(True, False, (_not_selectable(source, "egress"),))
        policies = self._selecting(source, "egress")
        if not policies:
            return Verdict(
                True,
                False,
                (f"no NetworkPolicy in {source.namespace} selects {describe(source)} for egress",),
            )
        if _is_loopback(connection):
            return Verdict(True, True, (_LOOPBACK,))
        allowed_by = [
            f"allowed by {policy.key} egress[{rule.index}]"
            for policy in policies
            for rule in policy.egress
            if self._rule_matches(rule, policy, connection.destination, connection)
        ]
        if allowed_by:
            return Verdict(True, True, tuple(allowed_by))
        return Verdict(
            False,
            True,
            (
                f"no policy selecting {describe(source)} allows egress to {describe(connection.destination)} "
                f"on {connection.label} (selected for egress by {', '.join(p.key for p in policies)})",
            ),
        )

    def _ingress(self, connection: _Connection) -> Verdict:
        destination = connection.destination
        if not isinstance(destination, Pod) or destination.host_network:
            return Verdict(True, False, (_not_selectable(destination, "ingress"),))
        policies = self._selecting(destination, "ingress")
        if not policies:
            return Verdict(
                True,
                False,
                (f"no NetworkPolicy in {destination.namespace} selects {describe(destination)} for ingress",),
            )
        if _is_loopback(connection):
            return Verdict(True, True, (_LOOPBACK,))
        source_host = _as_host(connection.source)
        if source_host is not None and source_host.node is not None and source_host.node == destination.node:
            # The docs: "traffic to and from the node where a Pod is running is always allowed,
            # regardless of the IP address of the Pod or the node"; "When a pod is isolated for
            # ingress, the only allowed connections into the pod are those from the pod's node and
            # those allowed by the ingress list" (kubelet probes). types.go spec.ingress likewise:
            # "OR if the traffic source is the pod's local node". Egress from a pod to its node is
            # not exempt in that section, so egress rules still apply to it.
            return Verdict(
                True, True, (f"from the pod's own node {destination.node}: always allowed ({DOCS})",)
            )
        allowed_by = [
            f"allowed by {policy.key} ingress[{rule.index}]"
            for policy in policies
            for rule in policy.ingress
            if self._rule_matches(rule, policy, connection.source, connection)
        ]
        if allowed_by:
            return Verdict(True, True, tuple(allowed_by))
        return Verdict(
            False,
            True,
            (
                f"no policy selecting {describe(destination)} allows ingress from {describe(connection.source)} "
                f"on {connection.label} (selected for ingress by {', '.join(p.key for p in policies)})",
            ),
        )

    def _rule_matches(self, rule: _Rule, policy: _Policy, peer: Endpoint, connection: _Connection) -> bool:
        """A rule allows traffic that matches both its peers and its ports (types.go)."""
        peers_match = not rule.peers or any(self._peer_matches(p, policy, peer) for p in rule.peers)
        return peers_match and (not rule.ports or any(_port_matches(p, connection) for p in rule.ports))

    def _peer_matches(self, peer: _Peer, policy: _Policy, endpoint: Endpoint) -> bool:
        if peer.ip_block is not None:
            # Hosts and hostNetwork pods (whose IP is the node's) match by address. ipBlock against a
            # pod's own IP is left to the implementation: the docs say ipBlock CIDRs "should be
            # cluster-external IPs, since Pod IPs are ephemeral and unpredictable" and that with
            # source/destination rewriting "it is not defined whether this happens before or after
            # NetworkPolicy processing". Most plugins match pod IPs, and the upstream e2e cases
            # ("should allow egress access to server in CIDR block", ...) rely on it; we match a
            # pod only when its IP is known.
            return peer.ip_block.matches(endpoint.ip or None)
        if isinstance(endpoint, Host) or endpoint.host_network:
            return False  # selectors select pods on the pod network only (see _as_host)
        if peer.namespace_selector is None:
            # types.go: podSelector alone "selects the pods matching podSelector in the policy's own namespace".
            in_namespaces = endpoint.namespace == policy.namespace
        else:
            in_namespaces = peer.namespace_selector.matches(self._namespace(endpoint.namespace).labels)
        return in_namespaces and (peer.pod_selector is None or peer.pod_selector.matches(endpoint.labels))


_LOOPBACK = f"a pod cannot block access to itself ({DOCS})"


def _is_loopback(connection: _Connection) -> bool:
    # The docs: "Other pods that are allowed (exception: a pod cannot block access to itself)".
    # The upstream e2e suite ignores pod-to-itself probes because plugins differ (network_policy.go
    # ignoreLoopback, kubernetes/kubernetes#95879); we follow the docs.
    source, destination = connection.source, connection.destination
    return (
        isinstance(source, Pod)
        and isinstance(destination, Pod)
        and (source.namespace, source.name) == (destination.namespace, destination.name)
    )


def _not_selectable(endpoint: Endpoint, direction: str) -> str:
    if isinstance(endpoint, Pod):
        return (
            f"{describe(endpoint)} is not selectable by NetworkPolicy: a hostNetwork pod's traffic is "
            f"node traffic ({DOCS}, NetworkPolicy and hostNetwork pods), so no {direction} rules apply at it"
        )
    return f"{describe(endpoint)} is not a pod: NetworkPolicy does not apply to its {direction}"


def _named_port(destination: Pod, name: str, protocol: str) -> int | None:
    for container_port in destination.ports:
        if container_port.name == name and container_port.protocol == protocol:
            return container_port.port
    return None


def _port_matches(policy_port: _PolicyPort, connection: _Connection) -> bool:
    if policy_port.protocol != connection.protocol:
        return False
    if policy_port.port is None:
        return True  # types.go: "If this field is not provided, this matches all port names and numbers."
    if isinstance(policy_port.port, str):
        # types.go: port "can either be a numerical or named port on a pod": the name is resolved
        # against the destination pod's container ports, for ingress and egress rules alike; a
        # host has no container ports, so a named port never matches a host destination.
        destination = connection.destination
        if not isinstance(destination, Pod) or destination.host_network:
            return False
        return _named_port(destination, policy_port.port, policy_port.protocol) == connection.port
    end_port = policy_port.end_port if policy_port.end_port is not None else policy_port.port
    return policy_port.port <= connection.port <= end_port


def service_backends(
    service: Mapping[str, Any], pods: Iterable[Pod], port: int | str | None = None
) -> list[tuple[Pod, int]]:
    """The pods behind a Service port and the target port on each (what a client's traffic reaches).

    `port` picks a Service port by number or name; None takes every port of the Service. A
    Service without a selector (endpoints managed elsewhere, or ExternalName) has no backends here.
    The target port follows core/v1 ServicePort.targetPort: "If this is a string, it will be looked
    up as a named port in the target Pod's container ports. If this is not specified, the value of
    the 'port' field is used"; like FindPort (pkg/api/v1/pod/util.go) the name must match with the
    Service port's protocol, and a pod without that named port gets no endpoint for it.
    """
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector or spec.get("type") == "ExternalName":
        return []
    service_ports = [
        p
        for p in spec.get("ports") or []
        if port is None or p.get("name") == port or _number(p.get("port")) == port
    ]
    if not service_ports:
        raise ValueError(f"Service {metadata.get('namespace')}/{metadata.get('name')} has no port {port!r}")
    backends: list[tuple[Pod, int]] = []
    for pod in pods:
        if pod.namespace != metadata.get("namespace"):
            continue
        if any(pod.labels.get(key) != value for key, value in selector.items()):
            continue
        for service_port in service_ports:
            target = _number(service_port.get("targetPort"))
            protocol = service_port.get("protocol") or "TCP"
            if target is None:
                target = _number(service_port["port"])
            if isinstance(target, str):
                target = _named_port(pod, target, protocol)
                if target is None:
                    continue
            backends.append((pod, int(target)))
    return backends
