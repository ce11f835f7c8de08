"""The CrossGuard pack (policy/): its validators, through pulumi_policy's own types, pass on every
example stack and report each violation on deliberately broken resources."""

from __future__ import annotations

import copy
import importlib.util
import sys
from typing import Any

import pytest

from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS

pytest.importorskip("pulumi_policy")


@pytest.fixture(scope="module")
def pack() -> Any:
    spec = importlib.util.spec_from_file_location("naomi_pack", PROJECT_DIR / "policy" / "naomi_pack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["naomi_pack"] = module
    spec.loader.exec_module(module)
    return module


def _resource_type(obj: dict[str, Any]) -> str:
    group = obj.get("apiVersion", "v1")
    group = group if "/" in group else f"core/{group}"
    return f"kubernetes:{group}:{obj['kind']}"


def _run(pack: Any, obj: dict[str, Any]) -> list[tuple[str, str]]:
    from pulumi_policy import ResourceValidationArgs

    reported: list[tuple[str, str]] = []
    args = ResourceValidationArgs(_resource_type(obj), obj, "urn:pulumi:test::naomi::x::y", "y", None, None)  # type: ignore[arg-type]
    for policy in pack.policies():
        policy.validate(args, lambda message, urn=None, name=policy.name: reported.append((name, message)))
    return reported


def test_pack_has_one_mandatory_policy_per_check(pack: Any) -> None:
    from pulumi_policy import EnforcementLevel

    policies = pack.policies()
    assert len(policies) == 6 and {p.enforcement_level for p in policies} == {EnforcementLevel.MANDATORY}
    assert (PROJECT_DIR / "policy" / "PulumiPolicy.yaml").is_file()


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_pack_passes_on_every_example_stack(pack: Any, renders: dict[str, Rendered], stack: str) -> None:
    problems = [problem for obj in renders[stack].kubernetes for problem in _run(pack, obj)]
    assert problems == []


def _find(rendered: Rendered, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in rendered.kubernetes if o["kind"] == kind and o["metadata"]["name"] == name]
    return copy.deepcopy(found)


def test_pack_reports_each_violation_on_broken_resources(pack: Any, renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    mlflow = _find(rendered, "Deployment", "mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    container["image"] = "docker.io/library/nginx:latest"
    container.pop("resources")
    container["env"].append({"name": "MINIO_ROOT_PASSWORD", "value": "minioadmin"})
    mlflow["spec"]["template"]["spec"]["hostNetwork"] = True
    names = {name for name, _ in _run(pack, mlflow)}
    assert {
        "naomi-restricted-pods",
        "naomi-resources-probes-images",
        "naomi-no-hardcoded-credentials",
        "naomi-arch-selection",
    } <= names

    service = _find(rendered, "Service", "mlflow")
    service["spec"]["type"] = "NodePort"
    assert [name for name, _ in _run(pack, service)] == ["naomi-exposure"]

    namespace = _find(rendered, "Namespace", "naomi-platform")
    del namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    assert [name for name, _ in _run(pack, namespace)] == ["naomi-namespace-pod-security"]


def test_helm_releases_and_other_providers_are_out_of_scope(pack: Any) -> None:
    assert pack.kubernetes_object("kubernetes:helm.sh/v3:Release", {"chart": "x"}) is None
    assert pack.kubernetes_object("random:index/randomPassword:RandomPassword", {}) is None
