"""Every rendered object validates against real schemas; the validators catch broken input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from naomi.render.tree import Rendered
from naomi.validate import (
    Reference,
    ValidationFailure,
    unknown_value_keys,
    validate_helm_values,
    validate_object,
)
from stacks.config import load_stack_config
from tests.conftest import EXAMPLE_STACKS, require_shared


def _kubernetes_version(stack: str, project_dir) -> str:  # type: ignore[no-untyped-def]
    from naomi.render.engine import load_stack_file

    values, secrets = load_stack_file(project_dir / "stacks" / f"Pulumi.{stack}.yaml")
    return load_stack_config(values, set(secrets)).kubernetes_version


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_rendered_objects_validate_against_kubernetes_and_crd_schemas(
    renders: dict[str, Rendered],
    reference: Reference,
    project_dir,
    stack: str,  # type: ignore[no-untyped-def]
) -> None:
    version = _kubernetes_version(stack, project_dir)
    for obj in renders[stack].kubernetes:
        validate_object(obj, version, reference)


@pytest.fixture(scope="module")
def chart_crds(
    renders: dict[str, Rendered], reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    """The CRDs the charts apply for custom kinds the shared reference lacks (kube-prometheus-stack's
    Prometheus and Alertmanager), as a Reference folder of their own; only the kinds chart objects
    use, since parsing a CRD is slow."""
    require_shared("reference/chart-archives")
    root = tmp_path_factory.mktemp("chart-crds")
    (root / "crds").mkdir()
    shared_kinds = {kind for _, kind in reference.crd_schemas}
    used_kinds = {item.object["kind"] for r in renders.values() for item in r.chart_objects if not item.crd}
    for rendered in renders.values():
        for path, crd in rendered.crds():
            if crd["spec"]["names"]["kind"] in used_kinds - shared_kinds:
                # The chart's own bytes (after the render's first line, a comment).
                (root / "crds" / f"{crd['metadata']['name']}.yaml").write_text(rendered.files[path])
    return Reference(root)


_VALIDATED_CHART_OBJECTS: set[tuple[str, str]] = set()


def _validate_chart_object(obj: dict[str, Any], version: str, shared: Reference, charts: Reference) -> None:
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    validate_object(obj, version, charts if key in charts.crd_schemas else shared)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_chart_objects_validate_against_kubernetes_and_crd_schemas(
    renders: dict[str, Rendered],
    reference: Reference,
    chart_crds: Reference,
    project_dir: Path,
    stack: str,
) -> None:
    """Everything a release creates (its CRDs are checked once, below), custom resources
    against the shared CRDs or the chart's own (Prometheus, Alertmanager)."""
    version = _kubernetes_version(stack, project_dir)
    objects = [item.object for item in renders[stack].chart_objects if not item.crd]
    assert len(objects) >= 30, "chart objects missing: the sweep would be vacuous"
    for obj in objects:
        # Most chart objects are the same in every stack; each distinct one is validated once.
        key = (version, json.dumps(obj, sort_keys=True))
        if key not in _VALIDATED_CHART_OBJECTS:
            _validate_chart_object(obj, version, reference, chart_crds)
            _VALIDATED_CHART_OBJECTS.add(key)


def test_chart_crds_validate_against_kubernetes(renders: dict[str, Rendered], project_dir: Path) -> None:
    """Each CRD of the charts, once (the same chart bytes render the same CRDs in every stack)."""
    versions = {_kubernetes_version(stack, project_dir) for stack in renders}
    crds = {crd["metadata"]["name"]: crd for rendered in renders.values() for _, crd in rendered.crds()}
    assert len(crds) == 39
    assert {"prometheuses.monitoring.coreos.com", "rayclusters.ray.io", "ingressroutes.traefik.io"} <= set(
        crds
    )
    for version in versions:
        for crd in crds.values():
            validate_object(crd, version, None)


def test_chart_custom_resources_use_the_charts_own_crds(
    renders: dict[str, Rendered], reference: Reference, chart_crds: Reference
) -> None:
    """Prometheus and Alertmanager are not in the shared reference; the chart's CRD catches a
    wrong field in them."""
    assert {kind for _, kind in chart_crds.crd_schemas} >= {"Prometheus", "Alertmanager"}
    prometheus = next(
        item.object for item in renders["edge-lab"].chart_objects if item.object["kind"] == "Prometheus"
    )
    broken = copy.deepcopy(prometheus)
    broken["spec"]["retentionDays"] = 7
    with pytest.raises(
        ValidationFailure,
        match=r"^Prometheus naomi-monitoring/monitoring-kube-prometheus-prometheus \(monitoring.coreos.com/v1\): "
        r"spec: Additional properties are not allowed \('retentionDays' was unexpected\)",
    ):
        _validate_chart_object(broken, "1.32", reference, chart_crds)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_helm_values_exist_in_chart_defaults(
    renders: dict[str, Rendered], reference: Reference, stack: str
) -> None:
    for release in renders[stack].helm:
        validate_helm_values(release, reference)


GOOD_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "naomi-platform"},
    "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "web"}},
}


def test_valid_object_passes(reference: Reference) -> None:
    validate_object(GOOD_SERVICE, "1.32", reference)


def test_wrong_field_type_fails(reference: Reference) -> None:
    broken = {**GOOD_SERVICE, "spec": {"ports": [{"name": "http", "port": "eighty"}]}}
    with pytest.raises(
        ValidationFailure, match=r"Service naomi-platform/web .*'eighty' is not of type 'integer'"
    ):
        validate_object(broken, "1.32", reference)


def test_unknown_field_fails(reference: Reference) -> None:
    broken = {**GOOD_SERVICE, "spec": {**GOOD_SERVICE["spec"], "clusterIp": "None"}}
    with pytest.raises(ValidationFailure, match="clusterIp"):
        validate_object(broken, "1.32", reference)


def test_removed_api_version_fails(reference: Reference) -> None:
    removed = {
        "apiVersion": "policy/v1beta1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb"},
        "spec": {"maxUnavailable": 1},
    }
    with pytest.raises(ValidationFailure, match="unknown kind or removed API version"):
        validate_object(removed, "1.32", reference)


def test_custom_resource_checked_against_its_crd(reference: Reference) -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "m", "namespace": "naomi-monitoring"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "metrics"}]},
    }
    validate_object(monitor, "1.32", reference)
    broken = {
        **monitor,
        "spec": {**monitor["spec"], "endpoints": [{"port": "metrics", "intervalSeconds": 30}]},
    }
    with pytest.raises(ValidationFailure, match=r"endpoints\.0: Additional properties are not allowed"):
        validate_object(broken, "1.32", reference)
    wrong_type = {**monitor, "spec": {**monitor["spec"], "endpoints": "metrics"}}
    with pytest.raises(ValidationFailure, match="is not of type 'array'"):
        validate_object(wrong_type, "1.32", reference)


def test_custom_resource_without_schema_fails(reference: Reference) -> None:
    unknown = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    with pytest.raises(ValidationFailure, match="without a CRD schema"):
        validate_object(unknown, "1.32", reference)


def test_unknown_chart_value_key_is_reported(reference: Reference) -> None:
    release = {
        "release": "kuberay-operator",
        "chart": "kuberay-operator",
        "version": "1.7.0",
        "values": {"image": {"tag": "v1.7.0"}, "resources": {"limits": {"cpu": "1"}}, "nodeSelctor": {}},
    }
    with pytest.raises(ValidationFailure, match=r"keys not in the chart's values.yaml: nodeSelctor"):
        validate_helm_values(release, reference)


def test_naomis_misplaced_mlflow_key_would_have_been_caught() -> None:
    # NAOMI set mlflow.tracking.externalS3.*, which the Bitnami chart reads at mlflow.externalS3.
    defaults = {
        "tracking": {"auth": {"enabled": True}, "service": {"type": "ClusterIP"}},
        "externalS3": {"host": ""},
    }
    values = {"tracking": {"externalS3": {"host": "minio"}}}
    assert unknown_value_keys(values, defaults) == ["tracking.externalS3"]


def test_empty_default_maps_and_free_form_paths_take_any_key() -> None:
    defaults = {"podAnnotations": {}, "grafana": {"enabled": True}, "image": {"tag": "1"}}
    values = {"podAnnotations": {"a": "b"}, "grafana": {"grafana.ini": {"x": 1}}, "image": {"tga": "2"}}
    assert unknown_value_keys(values, defaults, ("grafana",)) == ["image.tga"]


def test_traefik_values_schema_is_enforced(reference: Reference) -> None:
    release = {
        "release": "gw",
        "chart": "traefik",
        "version": "41.3.0",
        "values": {"ports": {"web": {"port": "x"}}},
    }
    with pytest.raises(ValidationFailure, match=r"ports\.web\.port"):
        validate_helm_values(release, reference)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_operator_created_objects_validate_against_kubernetes_schemas(
    renders: dict[str, Rendered], reference: Reference, project_dir: Path, stack: str
) -> None:
    """The pods, StatefulSets, Services, RBAC and Jobs KubeRay, prometheus-operator and Flyte will
    create from our resources are objects the API server must accept too."""
    from naomi.cluster.checks import cluster_model

    version = _kubernetes_version(stack, project_dir)
    created = [
        item.obj for item in cluster_model(renders[stack]).objects if item.origin.startswith("operator:")
    ]
    assert {obj["kind"] for obj in created} >= {"Pod", "Service"}, (
        "no operator objects: the sweep would be vacuous"
    )
    for obj in created:
        validate_object(obj, version, reference)  # ray.io RayClusters against the shared CRD
