"""Domain types for stack configuration, defined once.

Every constrained string the stack files use (architectures, Kubernetes quantities, host
addresses, versions, names, durations, cron expressions) is declared here with the pattern
that an error message quotes, so a user sees the allowed form next to the offending key.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, StringConstraints

from workloads import catalogue

Arch = Literal["amd64", "arm64"]
Board = Literal["generic", "rpi4", "rpi5"]
NodeRole = Literal["control-plane", "worker"]
Profile = Literal["edge", "lab", "full"]
ClusterMode = Literal["microk8s", "kubeconfig", "stack"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

# Pipelines and their workflows come from the one catalogue (workloads/catalogue.py). The config
# model sees them as Literals (same validation messages and JSON Schema enum as written out);
# mypy cannot take a Literal built at run time, so it sees plain strings.
PIPELINES: tuple[str, ...] = catalogue.PIPELINE_NAMES
WORKFLOWS: dict[str, str] = {p.workflow: p.name for p in catalogue.PIPELINES}
if TYPE_CHECKING:
    Pipeline = str
    Workflow = str
else:
    Pipeline = Literal[catalogue.PIPELINE_NAMES]
    Workflow = Literal[catalogue.WORKFLOW_NAMES]

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


def _check_host(value: str) -> str:
    """An IPv4/IPv6 address or a DNS name (RFC 1123, lower case)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if len(value) > 253 or not _HOSTNAME_RE.match(value):
            raise ValueError("must be an IP address or a lower-case DNS name such as 'naomi.lan'") from None
    return value


def _check_cron(value: str) -> str:
    """Five cron fields, each made of digits, '*', ',', '-', '/' (no macros, no seconds)."""
    fields = value.split()
    field_re = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
    if len(fields) != 5 or not all(field_re.match(f) for f in fields):
        raise ValueError("must be a five-field cron expression such as '0 3 * * *'")
    return value


def _check_pod_cidr(value: str) -> str:
    """An IPv4 network of at least /8 (MLflow's host validation matches pod IPs by octets)."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("must be an IPv4 network such as '10.1.0.0/16' (host bits zero)") from None
    if network.version != 4 or network.prefixlen < 8:
        raise ValueError("must be an IPv4 network with a prefix of at least /8, such as '10.1.0.0/16'")
    return value


PodCidr = Annotated[str, AfterValidator(_check_pod_cidr)]
"""The cluster's pod network, IPv4 CIDR."""


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("must be a network such as '10.152.183.0/24' (host bits zero)") from None
    return value


ServiceCidr = Annotated[str, AfterValidator(_check_cidr)]
"""An IPv4 or IPv6 network in CIDR notation."""

Host = Annotated[str, AfterValidator(_check_host)]
"""An address users and nodes can reach: IP address or DNS name."""

K8sName = Annotated[str, StringConstraints(pattern=rf"^{_DNS_LABEL}$", max_length=40)]
"""A DNS-1123 label short enough to prefix generated Kubernetes names."""

CpuQuantity = Annotated[str, StringConstraints(pattern=r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")]
"""Kubernetes CPU quantity: '500m', '2', '1.5'."""

MemoryQuantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$")]
"""Kubernetes memory or storage quantity in binary units: '512Mi', '4Gi'."""

KubernetesVersion = Annotated[str, StringConstraints(pattern=r"^1\.(2[5-9]|3[0-7])$")]
"""Kubernetes minor version, 1.25 to 1.37 (the range the bundled schemas cover)."""

SnapChannel = Annotated[
    str, StringConstraints(pattern=r"^1\.(2[5-9]|3[0-7])(-strict)?/(stable|candidate|beta|edge)$")
]
"""microk8s snap channel, e.g. '1.32/stable'."""

Duration = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*(s|m|h|d)$")]
"""Prometheus-style duration: '30s', '15m', '6h', '7d'."""

Cron = Annotated[str, AfterValidator(_check_cron)]

LabelKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    ),
]
LabelValue = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]
ImageReference = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9.\-/:_]+(:[A-Za-z0-9._-]+)?(@sha256:[a-f0-9]{64})?$", max_length=255),
]
"""A container image reference with a tag or digest."""

HostKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/=]{16,}$"
    ),
]
"""A pinned SSH host public key as `ssh-keyscan` prints it, without the host name."""

StackName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")]
"""A Pulumi stack reference: 'stack', 'project/stack' or 'org/project/stack'."""
