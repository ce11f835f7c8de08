"""Summing what the platform requests, over every pod that will run (benchmarks P1/P2; no asserts).

The pods come from the cluster model (`naomi.cluster.checks.cluster_model`): ours, the charts'
(sidecars and init containers included) and the operators' (KubeRay heads, prometheus-operator's
Prometheus and Alertmanager with their config reloaders). Two sums are kept per pod:

- `all_containers`: every container and init container, added up (the budget CHECKS P1 states);
- `scheduled`: what the scheduler reserves, max(sum of containers, largest init container)
  (kubernetes `pkg/api/v1/resource/helpers.go` PodRequests, without sidecar init containers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.quantities import cpu_cores, memory_bytes
from naomi.cluster.model import ModelPod

__all__ = ["PodRequests", "Requests", "cpu_cores", "memory_bytes", "platform_pods", "pod_requests", "totals"]


@dataclass
class Requests:
    cpu: float = 0.0
    memory: int = 0

    def add(self, resources: Mapping[str, Any], times: int = 1) -> None:
        requests = resources.get("requests") or {}
        self.cpu += cpu_cores(requests.get("cpu", 0)) * times
        self.memory += memory_bytes(requests.get("memory", 0)) * times

    def plus(self, other: Requests, times: int = 1) -> None:
        self.cpu += other.cpu * times
        self.memory += other.memory * times

    @property
    def memory_gib(self) -> float:
        return self.memory / 2**30


@dataclass
class PodRequests:
    owner: str
    origin: str
    replicas: int
    all_containers: Requests = field(default_factory=Requests)
    scheduled: Requests = field(default_factory=Requests)
    unrequested: list[str] = field(default_factory=list)  # containers without requests


def pod_requests(pod: ModelPod) -> PodRequests:
    result = PodRequests(pod.owner, pod.origin, pod.replicas)
    containers = Requests()
    largest_init = Requests()
    for container in pod.spec.get("containers") or []:
        containers.add(container.get("resources") or {})
        if not ((container.get("resources") or {}).get("requests")):
            result.unrequested.append(str(container.get("name")))
    for container in pod.spec.get("initContainers") or []:
        one = Requests()
        one.add(container.get("resources") or {})
        result.all_containers.plus(one)
        largest_init = Requests(max(largest_init.cpu, one.cpu), max(largest_init.memory, one.memory))
        if not ((container.get("resources") or {}).get("requests")):
            result.unrequested.append(str(container.get("name")))
    result.all_containers.plus(containers)
    result.scheduled = Requests(
        max(containers.cpu, largest_init.cpu), max(containers.memory, largest_init.memory)
    )
    return result


def is_ray_worker_or_job(pod: ModelPod) -> bool:
    """The Ray pools' workers and jobs (Flyte's task pods and RayJobs) scale with the work, not with
    the platform; a served model's Ray workers are its replicas and count."""
    labels = pod.labels
    return (
        (labels.get("ray.io/node-type") == "worker" and pod.origin.startswith("operator:RayCluster"))
        or "naomi.io/flyte-task" in labels
        or pod.origin.startswith("operator:flyte")
        or pod.origin.startswith("operator:RayJob")
    )


def platform_pods(pods: Iterable[ModelPod], served_models: Iterable[str] = ()) -> list[ModelPod]:
    """Long-running pods of the platform: no Ray workers or jobs, no run-to-completion pods, and of
    the served models only those named (P1 counts the platform with one served model)."""
    keep = set(served_models)
    chosen = []
    for pod in pods:
        if not pod.long_running or is_ray_worker_or_job(pod):
            continue
        model = pod.labels.get("naomi.io/rayservice") or (
            pod.labels.get("app.kubernetes.io/instance")
            if pod.labels.get("app.kubernetes.io/name") == "model-server"
            else None
        )
        if model is not None and model not in keep:
            continue
        chosen.append(pod)
    return chosen


def totals(pods: Iterable[ModelPod]) -> tuple[Requests, Requests, list[PodRequests]]:
    """(every container summed, scheduler's view, per pod) over `pods`, replicas counted."""
    every, scheduled = Requests(), Requests()
    rows = []
    for pod in pods:
        row = pod_requests(pod)
        every.plus(row.all_containers, pod.replicas)
        scheduled.plus(row.scheduled, pod.replicas)
        rows.append(row)
    return every, scheduled, rows
