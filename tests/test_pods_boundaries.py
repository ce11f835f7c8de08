"""The pod and container building blocks, field by field (issue 17, mutation testing): the
`restricted` Pod Security Standard's fields (non-root, no escalation, ALL capabilities dropped,
RuntimeDefault seccomp), no service-account token, Secrets by reference. Exact dicts, so a flipped
boolean or a dropped field fails; the StatefulSet is captured instead of registered with Pulumi."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra import pods
from infra.pods import (
    container,
    container_security_context,
    exec_probe,
    http_probe,
    job_pod_template,
    pod_security_context,
    secret_env,
)
from infra.profiles import Resources

RESOURCES = Resources(cpu_request="100m", memory_request="128Mi", cpu_limit="1", memory_limit="1Gi")
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_pod_security_context_runs_as_the_user_and_its_group() -> None:
    assert pod_security_context(1001) == {
        "runAsNonRoot": True,
        "runAsUser": 1001,
        "runAsGroup": 1001,
        "fsGroup": 1001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    with_group = pod_security_context(999, group=0)
    assert (with_group["runAsUser"], with_group["runAsGroup"], with_group["fsGroup"]) == (999, 0, 0)


def test_container_security_context_is_restricted() -> None:
    assert container_security_context() == RESTRICTED_CONTAINER
    assert container_security_context(read_only_root=False) == {
        **RESTRICTED_CONTAINER,
        "readOnlyRootFilesystem": False,
    }


def test_secret_env_is_a_reference() -> None:
    assert secret_env("PGPASSWORD", "postgres-mlflow", "password") == {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "postgres-mlflow", "key": "password"}},
    }


def test_probes() -> None:
    assert http_probe("/healthz", 8080) == {
        "httpGet": {"path": "/healthz", "port": 8080},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }
    assert http_probe("/ready", "http", period=2, initial_delay=1) == {
        "httpGet": {"path": "/ready", "port": "http"},
        "initialDelaySeconds": 1,
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }
    assert exec_probe(["pg_isready"]) == {
        "exec": {"command": ["pg_isready"]},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }
    assert exec_probe(["true"], period=3, initial_delay=7)["periodSeconds"] == 3
    assert exec_probe(["true"], period=3, initial_delay=7)["initialDelaySeconds"] == 7


def test_container_fills_in_resources_and_the_restricted_context() -> None:
    assert container("app", "naomi/app:1", RESOURCES) == {
        "name": "app",
        "image": "naomi/app:1",
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": RESTRICTED_CONTAINER,
    }
    writable = container("db", "postgres:15", RESOURCES, read_only_root=False, args=["-c", "x"])
    assert writable["securityContext"]["readOnlyRootFilesystem"] is False
    assert writable["args"] == ["-c", "x"]


def test_job_pod_template() -> None:
    main = {"name": "main"}
    assert job_pod_template("backup", "postgres-backup", 70, [main]) == {
        "metadata": {
            "labels": {
                "app.kubernetes.io/name": "backup",
                "app.kubernetes.io/instance": "postgres-backup",
                "app.kubernetes.io/part-of": "naomi",
                "app.kubernetes.io/managed-by": "pulumi",
            }
        },
        "spec": {
            "restartPolicy": "OnFailure",
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(70),
            "containers": [main],
        },
    }
    init, volume = {"name": "init"}, {"name": "v", "emptyDir": {}}
    spec = job_pod_template("c", "i", 1, [main], init_containers=[init], volumes=[volume])["spec"]
    assert list(spec) == [
        "restartPolicy",
        "automountServiceAccountToken",
        "securityContext",
        "initContainers",
        "containers",
        "volumes",
    ]
    assert (spec["initContainers"], spec["volumes"]) == ([init], [volume])
    empty = job_pod_template("c", "i", 1, [main], init_containers=[], volumes=[])["spec"]
    assert "initContainers" not in empty and "volumes" not in empty


class Captured:
    instances: list[Captured] = []

    def __init__(self, resource_name: str, **kwargs: Any) -> None:
        self.resource_name = resource_name
        self.kwargs = kwargs
        Captured.instances.append(self)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Captured]:
    Captured.instances = []
    monkeypatch.setattr(pods.k8s.apps.v1, "StatefulSet", Captured)
    return Captured.instances


def _stateful_set(**overrides: Any) -> Captured:
    arguments: dict[str, Any] = {
        "component": "postgres",
        "instance": "postgres",
        "namespace": "naomi-data",
        "version": "docker.io/library/postgres:15.8@sha256:abc",
        "uid": 999,
        "container": {"name": "postgres"},
        "volume_size": "40Gi",
        "node_selector": {"kubernetes.io/arch": "amd64"},
        "opts": pulumi.ResourceOptions(),
    }
    arguments.update(overrides)
    result = pods.stateful_set("postgres", **arguments)
    assert isinstance(result, Captured)
    return result


def test_stateful_set(captured: list[Captured]) -> None:
    selector = _stateful_set().kwargs
    opts = selector.pop("opts")
    assert isinstance(opts, pulumi.ResourceOptions)
    pod_labels = {
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/instance": "postgres",
        "app.kubernetes.io/part-of": "naomi",
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/version": "15.8",
    }
    assert selector == {
        "metadata": {"name": "postgres", "namespace": "naomi-data", "labels": pod_labels},
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "postgres",
                    "app.kubernetes.io/instance": "postgres",
                }
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "nodeSelector": {"kubernetes.io/arch": "amd64"},
                    "securityContext": pod_security_context(999),
                    "containers": [{"name": "postgres"}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "40Gi"}},
                    },
                }
            ],
        },
    }
    assert [c.resource_name for c in captured] == ["postgres"]


def test_stateful_set_volumes_and_annotations(captured: list[Captured]) -> None:
    volume = {"name": "config", "secret": {"secretName": "x"}}
    spec = _stateful_set(volumes=[volume], pod_annotations={"naomi.io/generation": "2"}).kwargs["spec"]
    assert spec["template"]["metadata"]["annotations"] == {"naomi.io/generation": "2"}
    assert spec["template"]["spec"]["volumes"] == [volume]
    plain = _stateful_set(volumes=[], pod_annotations={}).kwargs["spec"]
    assert "annotations" not in plain["template"]["metadata"]
    assert "volumes" not in plain["template"]["spec"]


def test_stateful_set_copies_the_node_selector(captured: list[Captured]) -> None:
    selector = {"disk": "ssd"}
    spec = _stateful_set(node_selector=selector).kwargs["spec"]
    assert spec["template"]["spec"]["nodeSelector"] == selector
    assert spec["template"]["spec"]["nodeSelector"] is not selector
