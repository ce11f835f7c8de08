"""Kubernetes names and labels for everything the project renders, from one helper."""

from __future__ import annotations

PART_OF = "naomi"
MANAGED_BY = "pulumi"


def labels(component: str, instance: str, *, version: str | None = None) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels; selectors use `selector_labels` (stable across upgrades)."""
    result = {
        **selector_labels(component, instance),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version is not None:
        result["app.kubernetes.io/version"] = version.split("@")[0].rsplit(":", 1)[-1][:63]
    return result


def selector_labels(component: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance}
