"""Where pods that keep data can land, judged against the node inventory.

microk8s' `hostpath-storage` addon provisions a volume on the node where its pod is first
scheduled and the PersistentVolume stays bound to that node (canonical/microk8s addons
`hostpath-storage`: the hostpath provisioner's volumes carry node affinity to the provisioning
node). So a stateful pod's first node decides where its data lives for good; a Raspberry Pi SD card
is the wrong place unless the config says so (`naomi.io/storage=true` on that Pi).

For each pod with a PVC (a `persistentVolumeClaim` volume or a StatefulSet's
`volumeClaimTemplates`), the nodes it may land on are those whose labels satisfy its `nodeSelector`
and required node affinity (`matchExpressions` In/NotIn/Exists/DoesNotExist, per the scheduler's
NodeAffinity plugin); none may be a Pi without the storage label, and at least one must exist.
Without an inventory (an existing cluster) the pod must at least be pinned by a selector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STORAGE_LABEL = "naomi.io/storage"
PI_BOARDS = ("rpi4", "rpi5")


@dataclass(frozen=True)
class InventoryNode:
    name: str
    labels: Mapping[str, str]  # as the node will carry them (kubelet's kubernetes.io/arch included)

    @property
    def is_pi(self) -> bool:
        return self.labels.get("naomi.io/board") in PI_BOARDS


def _matches_expression(labels: Mapping[str, str], expression: Mapping[str, Any]) -> bool:
    key, operator = str(expression["key"]), str(expression["operator"])
    values = {str(v) for v in expression.get("values") or []}
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt"):
        if key not in labels:
            return False
        value, bound = int(labels[key]), int(next(iter(values)))
        return value > bound if operator == "Gt" else value < bound
    raise ValueError(f"unknown node selector operator {operator!r}")


def schedulable_on(spec: Mapping[str, Any], node: InventoryNode) -> bool:
    """`nodeSelector` AND (any of the required nodeSelectorTerms), as the scheduler filters."""
    selector = spec.get("nodeSelector") or {}
    if any(node.labels.get(str(k)) != str(v) for k, v in selector.items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    if not required:
        return True
    return any(
        all(_matches_expression(node.labels, e) for e in term.get("matchExpressions") or [])
        for term in required
    )


def keeps_data(spec: Mapping[str, Any], claim_templates: bool) -> bool:
    return claim_templates or any("persistentVolumeClaim" in v for v in spec.get("volumes") or [])


def placement_problems(
    pods: Sequence[tuple[str, Mapping[str, Any], bool]], nodes: Sequence[InventoryNode] | None
) -> list[str]:
    """(owner, pod spec, has claim templates) for every pod -> where data would be misplaced."""
    problems = []
    for owner, spec, claim_templates in pods:
        if not keeps_data(spec, claim_templates):
            continue
        if nodes is None:
            pinned = spec.get("nodeSelector") or (spec.get("affinity") or {}).get("nodeAffinity")
            if not pinned:
                problems.append(f"{owner}: keeps data on a volume but may land on any node")
            continue
        candidates = [node for node in nodes if schedulable_on(spec, node)]
        if not candidates:
            problems.append(
                f"{owner}: keeps data on a volume but no node of the inventory matches its selector"
            )
        for node in candidates:
            if node.is_pi and node.labels.get(STORAGE_LABEL) != "true":
                problems.append(
                    f"{owner}: keeps data on a volume and may land on Raspberry Pi {node.name} "
                    f"(its SD card); label the node {STORAGE_LABEL}=true to allow it"
                )
    return problems
