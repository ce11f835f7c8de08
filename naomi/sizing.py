"""Summing the resources a render requests (benchmarks P1/P2; no asserts here)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.quantities import cpu_cores, memory_bytes
from naomi.policy import pod_spec

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}


@dataclass
class Requests:
    cpu: float = 0.0
    memory: int = 0

    def add(self, resources: Mapping[str, Any], times: int = 1) -> None:
        requests = resources.get("requests") or {}
        self.cpu += cpu_cores(requests.get("cpu", 0)) * times
        self.memory += memory_bytes(requests.get("memory", 0)) * times

    @property
    def memory_gib(self) -> float:
        return self.memory / 2**30


def long_running_requests(
    objects: Iterable[Mapping[str, Any]], helm: Iterable[Mapping[str, Any]]
) -> dict[str, Requests]:
    """Requests of long-running pods by owner (`Kind/name`), replicas counted; Helm values included."""
    totals: dict[str, Requests] = {}
    for obj in objects:
        if obj.get("kind") == "RayCluster":
            head = (obj["spec"].get("headGroupSpec") or {})["template"]["spec"]
            total = totals.setdefault(f"RayCluster/{obj['metadata']['name']} head", Requests())
            for container in head.get("containers") or []:
                total.add(container.get("resources") or {})
            total.add((obj["spec"].get("autoscalerOptions") or {}).get("resources") or {})
        if obj.get("kind") not in LONG_RUNNING:
            continue
        spec = pod_spec(obj) or {}
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        total = totals.setdefault(f"{obj['kind']}/{obj['metadata']['name']}", Requests())
        for container in spec.get("containers") or []:
            total.add(container.get("resources") or {}, replicas)
    for release in helm:
        values = release.get("values") or {}
        replicas = int((values.get("deployment") or {}).get("replicas", 1))
        total = totals.setdefault(f"helm/{release['release']}", Requests())
        for resources in _resource_blocks(values):
            total.add(resources, replicas)
    return totals


def ray_pool_requests(objects: Iterable[Mapping[str, Any]]) -> dict[str, Requests]:
    """Requests of one worker of each Ray pool (what a node of that pool must fit)."""
    pools: dict[str, Requests] = {}
    for obj in objects:
        if obj.get("kind") != "RayCluster":
            continue
        for group in obj["spec"].get("workerGroupSpecs") or []:
            total = pools.setdefault(group["groupName"], Requests())
            for container in group["template"]["spec"].get("containers") or []:
                total.add(container.get("resources") or {})
    return pools


def _resource_blocks(values: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every `resources: {requests: ...}` block set in Helm values (one per component)."""
    for key, value in values.items():
        if not isinstance(value, Mapping):
            continue
        if key == "resources" and "requests" in value:
            yield value
        else:
            yield from _resource_blocks(value)
