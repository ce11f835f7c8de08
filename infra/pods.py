"""Pod and container building blocks shared by the project's own workloads.

Every pod the project renders runs under the `restricted` Pod Security Standard: non-root,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, no service-account
token unless the pod talks to the API server.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.naming import labels, selector_labels
from infra.profiles import Resources


def pod_security_context(user: int, *, group: int | None = None) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": group if group is not None else user,
        "fsGroup": group if group is not None else user,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(*, read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def secret_env(name: str, secret: Any, key: str) -> dict[str, Any]:
    """An environment variable read from a Secret (never a literal value)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def http_probe(path: str, port: int | str, *, period: int = 10, initial_delay: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }


def exec_probe(command: list[str], *, period: int = 10, initial_delay: int = 5) -> dict[str, Any]:
    return {
        "exec": {"command": command},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }


def container(
    name: str,
    image: Any,  # a tag, or a Pulumi Output of a built image's digest reference
    resources: Resources,
    *,
    read_only_root: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A container with resources and the restricted security context filled in."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources.spec(),
        "securityContext": container_security_context(read_only_root=read_only_root),
        **fields,
    }


def job_pod_template(
    component: str,
    instance: str,
    uid: int,
    containers: list[dict[str, Any]],
    *,
    init_containers: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pod template of a run-to-completion Job or CronJob: restarts on failure, no token."""
    spec: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(uid),
    }
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"labels": labels(component, instance)}, "spec": spec}


def stateful_set(
    resource_name: str,
    *,
    component: str,
    instance: str,
    namespace: pulumi.Input[str],
    version: str,  # the `app.kubernetes.io/version` label: an image tag or the release
    uid: int,
    container: dict[str, Any],
    volume_size: str,
    node_selector: dict[str, str],
    volumes: list[dict[str, Any]] | None = None,
    pod_annotations: dict[str, str] | None = None,
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.StatefulSet:
    """A single-replica stateful service with its data on a PVC named `data`, on data nodes.

    `pod_annotations` go on the pod template: a change rolls the pod (credential generations).
    """
    pod_labels = labels(component, instance, version=version)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "nodeSelector": dict(node_selector),
        "securityContext": pod_security_context(uid),
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return k8s.apps.v1.StatefulSet(
        resource_name,
        metadata={"name": instance, "namespace": namespace, "labels": pod_labels},
        spec={
            "serviceName": instance,
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(component, instance)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    **({"annotations": pod_annotations} if pod_annotations else {}),
                },
                "spec": spec,
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": volume_size}},
                    },
                }
            ],
        },
        opts=opts,
    )
