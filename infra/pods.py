"""Pod and container building blocks shared by the project's own workloads.

Every pod the project renders runs under the `restricted` Pod Security Standard: non-root,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, no service-account
token unless the pod talks to the API server.
"""

from __future__ import annotations

from typing import Any

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
    image: str,
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
