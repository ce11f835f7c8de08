"""Summing the resources a render requests (benchmarks P1/P2; no asserts here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from naomi.policy import pod_spec

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
_MEMORY = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    text = str(quantity)
    for suffix in sorted(_MEMORY, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * _MEMORY[suffix])
    return int(text)


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
        total.add(values.get("resources") or {}, replicas)
    return totals
