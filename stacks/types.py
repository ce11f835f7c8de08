"""Domain types for stack configuration, defined once.

Every constrained string the stack files use (architectures, Kubernetes quantities, host
addresses, versions, names, durations, cron and PromQL expressions) is declared here with the
pattern that an error message quotes, so a user sees the allowed form next to the offending
key. Addresses, schedules and PromQL are checked as their consumers will parse them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal

import promql_parser
from croniter import CroniterBadCronError, croniter
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
    """An IPv4/IPv6 address or a DNS name (RFC 1123, lower case).

    RFC 1123 section 2.1: a host name never has the dotted-decimal form, since its top-level
    label is alphabetic; so a name whose last label is all digits is meant as an IPv4 address
    and must be a valid one (`192.168.50.999` is refused, not taken as a host name).
    """
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if ":" in value:
            raise ValueError("not a valid IPv6 address") from None
        if value.rsplit(".", 1)[-1].isdigit():
            raise ValueError("looks like an IPv4 address but is not one (four numbers 0-255)") from None
        if len(value) > 253 or not _HOSTNAME_RE.match(value):
            raise ValueError("must be an IP address or a lower-case DNS name such as 'naomi.lan'") from None
    return value


# What the consumers of a schedule accept: Kubernetes' CronJob controller and Flyte's scheduler
# both parse with robfig/cron v3.0.1 (`cron.ParseStandard`): five fields, these bounds
# (spec.go), a range's start not after its end and a positive step (parser.go, getRange).
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_FIELD_RE = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def _check_cron(value: str) -> str:
    """Five cron fields, each made of digits, '*', ',', '-', '/' (no macros, no seconds), in range."""
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD_RE.match(f) for f in fields):
        raise ValueError("must be a five-field cron expression such as '0 3 * * *'")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and int(step) == 0:
                raise ValueError(f"{name} step must be a positive number ({part})")
            if span == "*":
                continue
            start, _, end = span.partition("-")
            first, last = int(start), int(end or start)
            for number in (first, last):
                if not low <= number <= high:
                    raise ValueError(f"{name} {number} is out of range {low}-{high}")
            if first > last:
                raise ValueError(f"{name} range {span} runs backwards")
    try:
        croniter(value)  # the cron library's own parse, for anything the rules above miss
    except CroniterBadCronError as error:
        raise ValueError(f"not a valid cron expression: {error}") from None
    return value


def _check_promql(value: str) -> str:
    """A PromQL expression as Prometheus parses it (promql-parser, a port of its parser)."""
    try:
        promql_parser.parse(value)
    except ValueError as error:
        raise ValueError(f"not valid PromQL: {error}") from None
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
"""A schedule as Kubernetes CronJobs and Flyte launch plans take it: '30 2 * * *'."""

PromQL = Annotated[str, AfterValidator(_check_promql)]
"""A PromQL expression, e.g. 'naomi:qoe_abs_error:mean5m > 500'."""

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
