"""Security invariants swept over every rendered object of every example stack (CHECKS 1-4)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from naomi import policy
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_policy_violations(renders: dict[str, Rendered], stack: str) -> None:
    objects = renders[stack].kubernetes
    assert any(policy.pod_spec(obj) for obj in objects), "no workload rendered: the sweep would be vacuous"
    assert policy.violations(objects) == []


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_render_file_is_free_of_default_credentials(renders: dict[str, Rendered], stack: str) -> None:
    for path, text in renders[stack].files.items():
        for password in policy.FORBIDDEN_PASSWORDS:
            assert password not in text, (path, password)


def _first_workload(renders: dict[str, Rendered]) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in renders["edge-lab"].kubernetes if o["kind"] == "StatefulSet"))


def test_policy_catches_root_and_missing_limits_and_latest(renders: dict[str, Rendered]) -> None:
    broken = _first_workload(renders)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"runAsUser": 0}
    broken["spec"]["template"]["spec"]["securityContext"] = {}
    del container["resources"]["limits"]
    container["image"] = "docker.io/library/postgres:latest"
    del container["readinessProbe"]
    problems = policy.violations([broken])
    where = "StatefulSet naomi-platform/object-store container minio"
    for expected in (
        f"{where}: runAsNonRoot is not set",
        f"{where}: runs as user 0",
        f"{where}: allowPrivilegeEscalation is not false",
        f"{where}: capabilities.drop lacks ALL",
        f"{where}: seccompProfile is not RuntimeDefault",
        f"{where}: no cpu limit",
        f"{where}: image 'docker.io/library/postgres:latest' is not pinned to a tag or digest",
        f"{where}: no readinessProbe",
    ):
        assert expected in problems


def test_policy_catches_exposure_and_literal_secrets(renders: dict[str, Rendered]) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "pg", "namespace": "naomi-platform"},
        "spec": {"type": "NodePort", "ports": [{"port": 5432}]},
    }
    assert policy.exposure(service) == ["Service naomi-platform/pg: type NodePort outside the gateway"]
    workload = _first_workload(renders)
    workload["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "POSTGRES_PASSWORD", "value": "postgres"}
    )
    assert policy.no_hardcoded_credentials(workload) == [
        "StatefulSet naomi-platform/object-store container minio: env POSTGRES_PASSWORD has a literal value"
    ]
    config = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "user=minio pass=miniostorage"}}
    assert policy.no_hardcoded_credentials(config) == [
        "ConfigMap _cluster/c: contains the default credential 'miniostorage'"
    ]


def test_policy_catches_host_access(renders: dict[str, Rendered]) -> None:
    broken = _first_workload(renders)
    spec = broken["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    spec["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    problems = policy.restricted_pod_security(broken)
    assert "StatefulSet naomi-platform/object-store: hostNetwork is on" in problems
    assert "StatefulSet naomi-platform/object-store: volume root uses hostPath" in problems


def test_namespaces_carry_pod_security_labels(renders: dict[str, Rendered]) -> None:
    namespaces = [o for o in renders["lab-ha"].kubernetes if o["kind"] == "Namespace"]
    assert namespaces
    assert all(
        o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted" for o in namespaces
    )
    assert policy.namespace_pod_security({"kind": "Namespace", "metadata": {"name": "x"}}) == [
        "Namespace _cluster/x: no pod-security.kubernetes.io/enforce label"
    ]
