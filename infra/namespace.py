"""A platform namespace with its Pod Security labels.

Each namespace enforces a Pod Security Standard level (`restricted` unless a component's upstream
images need less; the cluster model admits every pod that will exist against it, see
`naomi.cluster.admission`). Its NetworkPolicies (default deny, then the declared flows) come from
`infra.network`, not from here.
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

    def __post_init__(self) -> None:
        if not self.name.startswith(f"{PART_OF}-"):
            raise ValueError(f"PlatformNamespaceArgs.name must start with '{PART_OF}-' (got {self.name!r})")


class PlatformNamespace(pulumi.ComponentResource):
    """A namespace labelled for Pod Security admission (enforce, audit and warn)."""

    name: pulumi.Output[str]

    def __init__(
        self, name: str, args: PlatformNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:platform:Namespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            name,
            metadata={
                "name": args.name,
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    "pod-security.kubernetes.io/enforce": args.pod_security,
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})
