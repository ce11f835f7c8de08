"""Security and scheduling invariants over rendered Kubernetes objects (CHECKS.md 1-4, 9).

Each check takes one object and returns human-readable violations naming the object and the
field. The test suite sweeps every rendered object of every example stack with them; the
same functions are meant to back the CrossGuard policy pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
FORBIDDEN_PASSWORDS = ("miniostorage", "minioadmin", "prom-operator", "password1234")
DEFAULT_USERNAME_PASSWORD = ("minio", "postgres", "admin")
GATEWAY_NAMESPACE = "naomi-gateway"


def object_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind')} {metadata.get('namespace') or '_cluster'}/{metadata.get('name')}"


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    spec: Mapping[str, Any] = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    found: Mapping[str, Any] | None = (spec.get("template") or {}).get("spec")
    return found


def pod_specs(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every pod template of an object: native workloads and KubeRay's RayCluster/RayJob/RayService."""
    native = pod_spec(obj)
    if native is not None:
        return [native]
    spec = obj.get("spec") or {}
    cluster = {
        "RayCluster": spec,
        "RayJob": spec.get("rayClusterSpec"),
        "RayService": spec.get("rayClusterConfig"),
    }.get(str(obj.get("kind")))
    if not cluster:
        return []
    groups = [cluster.get("headGroupSpec") or {}, *(cluster.get("workerGroupSpecs") or [])]
    return [group["template"]["spec"] for group in groups if (group.get("template") or {}).get("spec")]


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def restricted_pod_security(obj: Mapping[str, Any]) -> list[str]:
    """CHECKS 1: non-root, no escalation, capabilities dropped, RuntimeDefault seccomp, no host access."""
    return [problem for spec in pod_specs(obj) for problem in _restricted(object_name(obj), spec)]


def _restricted(name: str, spec: Mapping[str, Any]) -> list[str]:
    problems = []
    pod_context = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{name}: {flag} is on")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"{name}: volume {volume.get('name')} uses hostPath")
    for container in _containers(spec):
        context = container.get("securityContext") or {}
        where = f"{name} container {container.get('name')}"
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as user 0")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities.drop lacks ALL")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort {port['hostPort']}")
    return problems


def resources_probes_and_images(obj: Mapping[str, Any]) -> list[str]:
    """CHECKS 2: requests and limits everywhere, probes on long-running services, pinned images."""
    long_running = obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")
    return [problem for spec in pod_specs(obj) for problem in _sized(object_name(obj), spec, long_running)]


def _sized(name: str, spec: Mapping[str, Any], long_running: bool) -> list[str]:
    problems = []
    for container in _containers(spec):
        where = f"{name} container {container.get('name')}"
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    problems.append(f"{where}: no {resource} {section[:-1]}")
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
            problems.append(f"{where}: image {image!r} is not pinned to a tag or digest")
    if long_running:
        for container in spec.get("containers") or []:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{name} container {container.get('name')}: no {probe}")
    return problems


def no_hardcoded_credentials(obj: Mapping[str, Any]) -> list[str]:
    """CHECKS 3: no known default password anywhere; secret-bearing env vars use secret references."""
    problems = []
    name = object_name(obj)
    text = repr(obj)
    for password in FORBIDDEN_PASSWORDS:
        if password in text:
            problems.append(f"{name}: contains the default credential {password!r}")
    for spec in pod_specs(obj):
        for container in _containers(spec):
            for env in container.get("env") or []:
                key = str(env.get("name", "")).upper()
                if (
                    any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY"))
                    and "value" in env
                ):
                    problems.append(
                        f"{name} container {container.get('name')}: env {key} has a literal value"
                    )
    return problems


def exposure(obj: Mapping[str, Any]) -> list[str]:
    """CHECKS 4: only the gateway's Service may be reachable from outside the cluster."""
    if obj.get("kind") != "Service":
        return []
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    namespace = (obj.get("metadata") or {}).get("namespace")
    problems = []
    if kind in ("NodePort", "LoadBalancer") and namespace != GATEWAY_NAMESPACE:
        problems.append(f"{object_name(obj)}: type {kind} outside the gateway")
    if spec.get("externalIPs"):
        problems.append(f"{object_name(obj)}: externalIPs set")
    return problems


def namespace_pod_security(obj: Mapping[str, Any]) -> list[str]:
    if obj.get("kind") != "Namespace":
        return []
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if "pod-security.kubernetes.io/enforce" not in labels:
        return [f"{object_name(obj)}: no pod-security.kubernetes.io/enforce label"]
    return []


def arch_selection(obj: Mapping[str, Any], arm64_capable: Callable[[str], bool]) -> list[str]:
    """CHECKS 9: an image that is not known to be arm64-capable must be pinned to amd64 nodes."""
    problems = []
    for spec in pod_specs(obj):
        selector = (spec.get("nodeSelector") or {}).get("kubernetes.io/arch")
        for container in _containers(spec):
            image = str(container.get("image", ""))
            if selector != "amd64" and not arm64_capable(image):
                problems.append(
                    f"{object_name(obj)}: image {image} is amd64-only but the pod may land on arm64"
                )
            if selector == "arm64" and not arm64_capable(image):
                problems.append(
                    f"{object_name(obj)}: image {image} cannot run on the arm64 nodes it is pinned to"
                )
    return problems


CHECKS: tuple[Callable[[Mapping[str, Any]], list[str]], ...] = (
    restricted_pod_security,
    resources_probes_and_images,
    no_hardcoded_credentials,
    exposure,
    namespace_pod_security,
)


def violations(objects: list[Mapping[str, Any]]) -> list[str]:
    return [problem for obj in objects for check in CHECKS for problem in check(obj)]
