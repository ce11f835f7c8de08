"""The CrossGuard policies: naomi.policy's checks, applied to every Kubernetes resource a stack plans.

`policies()` builds the ResourceValidationPolicy list that `__main__.py` serves to the Pulumi engine
(`pulumi preview --policy-pack policy/`); tests call the same validators with rendered objects,
so the pack is known to pass on the example stacks and to report a broken one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project: naomi.policy, infra.versions

from infra.versions import arm64_capable
from naomi import policy

Check = Callable[[Mapping[str, Any]], list[str]]

CHECKS: tuple[tuple[str, str, Check], ...] = (
    (
        "naomi-restricted-pods",
        "Pods run non-root, without privilege escalation or capabilities, with RuntimeDefault seccomp and no host access (CHECKS 1).",
        policy.restricted_pod_security,
    ),
    (
        "naomi-resources-probes-images",
        "Containers have CPU/memory requests and limits, services have probes, images are pinned (CHECKS 2).",
        policy.resources_probes_and_images,
    ),
    (
        "naomi-no-hardcoded-credentials",
        "No default or literal credential; secret-bearing env vars use secret references (CHECKS 3).",
        policy.no_hardcoded_credentials,
    ),
    (
        "naomi-exposure",
        "Only the gateway is reachable from outside the cluster (CHECKS 4).",
        policy.exposure,
    ),
    (
        "naomi-namespace-pod-security",
        "Platform namespaces carry Pod Security labels (CHECKS 1).",
        policy.namespace_pod_security,
    ),
    (
        "naomi-arch-selection",
        "A pod that can land on arm64 uses an arm64-capable image; amd64-only images carry an arch selector (CHECKS 9).",
        lambda obj: policy.arch_selection(obj, arm64_capable),
    ),
)


def kubernetes_object(resource_type: str, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest of a pulumi-kubernetes resource (None for Helm releases and other providers)."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm"):
        return None
    kind = props.get("kind") or resource_type.rsplit(":", 1)[-1]
    return {**props, "kind": kind}


def violations(check: Check, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    obj = kubernetes_object(resource_type, props)
    return check(obj) if obj is not None else []


def policies() -> list[Any]:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

    def validator(check: Check) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report_violation: Callable[..., None]) -> None:
            for problem in violations(check, args.resource_type, args.props):
                report_violation(problem)

        return validate

    return [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=validator(check),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, description, check in CHECKS
    ]
