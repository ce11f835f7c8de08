"""A platform namespace: Pod Security labels and a default-deny network baseline.

Each namespace enforces a Pod Security Standard level (`restricted` unless a component's
upstream images need less) and starts from deny-all ingress and egress; components add the
explicit allows they need. DNS egress and traffic inside the namespace are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.naming import PART_OF

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]


@dataclass(frozen=True, kw_only=True)
class PlatformNamespaceArgs:
    name: str
    pod_security: PodSecurityLevel = "restricted"
    default_deny: bool = True
    # Controllers (operators, Flyte, Prometheus) talk to the Kubernetes API server.
    api_server_egress: bool = False
    # Prometheus' namespace, allowed to scrape every pod here (None: no monitoring).
    scrape_from_namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.name.startswith(f"{PART_OF}-"):
            raise ValueError(f"PlatformNamespaceArgs.name must start with '{PART_OF}-' (got {self.name!r})")


class PlatformNamespace(pulumi.ComponentResource):
    """A namespace with Pod Security labels and a default-deny NetworkPolicy baseline."""

    name: pulumi.Output[str]

    def __init__(
        self, name: str, args: PlatformNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:platform:Namespace", name, None, opts)
        level = args.pod_security
        namespace = k8s.core.v1.Namespace(
            name,
            metadata={
                "name": args.name,
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = namespace.metadata.name
        if args.default_deny:
            child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
            k8s.networking.v1.NetworkPolicy(
                f"{name}-default-deny",
                metadata={"name": "default-deny", "namespace": args.name},
                spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                opts=child,
            )
            k8s.networking.v1.NetworkPolicy(
                f"{name}-allow-dns-and-same-namespace",
                metadata={"name": "allow-dns-and-same-namespace", "namespace": args.name},
                spec={
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                    "egress": [
                        {"to": [{"podSelector": {}}]},
                        # Within the platform, egress is open and each service's ingress allows
                        # decide (object store, MLflow, ...): one place to read who may connect.
                        {
                            "to": [
                                {"namespaceSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}
                            ]
                        },
                        {
                            "to": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                    },
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                                }
                            ],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                        },
                    ],
                },
                opts=child,
            )
            if args.api_server_egress:
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-allow-api-server",
                    metadata={"name": "allow-api-server", "namespace": args.name},
                    spec={
                        "podSelector": {},
                        "policyTypes": ["Egress"],
                        "egress": [
                            {"ports": [{"protocol": "TCP", "port": port} for port in (443, 6443, 16443)]}
                        ],
                    },
                    opts=child,
                )
            if args.scrape_from_namespace is not None:
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-allow-prometheus",
                    metadata={"name": "allow-prometheus-scrape", "namespace": args.name},
                    spec={
                        "podSelector": {},
                        "policyTypes": ["Ingress"],
                        "ingress": [
                            {
                                "from": [
                                    {
                                        "namespaceSelector": {
                                            "matchLabels": {
                                                "kubernetes.io/metadata.name": args.scrape_from_namespace
                                            }
                                        },
                                        "podSelector": {
                                            "matchLabels": {"app.kubernetes.io/name": "prometheus"}
                                        },
                                    }
                                ]
                            }
                        ],
                    },
                    opts=child,
                )
        self.register_outputs({"name": self.name})


def allow_from_platform(
    name: str,
    namespace: pulumi.Input[str],
    pod_selector: dict[str, str],
    port: int,
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """Let pods of every platform namespace reach `port` of the selected pods (e.g. S3, MLflow)."""
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-from-platform",
        metadata={"name": f"allow-platform-to-{name}", "namespace": namespace},
        spec={
            "podSelector": {"matchLabels": pod_selector},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ],
        },
        opts=opts,
    )
