"""Upgrades that carry CRDs (issue 17, defect 4). With `naomi:charts.crds: program` the operator
charts' CRDs are resources of the program, taken from the chart archive, applied before their
release (whose `skipCrds` is set), updated in place by a version bump and never deleted. The
default (`helm`) leaves them to Helm, as before. The releases wait as long as the profile says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from infra.charts import CHART_LABEL, chart_crds
from infra.profiles import PROFILES
from naomi.cluster import charts
from naomi.render import engine
from naomi.render.diff import diff_files
from naomi.render.engine import Evaluation, Record
from naomi.render.tree import Rendered, render
from tests import chart_bump
from tests.conftest import EXAMPLE_STACKS, require_shared
from tests.local_cluster import evaluate_stack_with

PROGRAM_CRDS = {"charts": {"crds": "program"}}

CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
OPERATOR_CHARTS = {
    "traefik": "traefik-41.3.0",
    "kuberay-operator": "kuberay-operator-1.7.0",
    "monitoring": "kube-prometheus-stack-88.5.3",
}


@pytest.fixture(scope="module")
def archives() -> Path:
    return require_shared("reference/chart-archives")


def _records(evaluation: Evaluation, type_: str) -> list[Record]:
    return [r for r in evaluation.records if r.type == type_]


@pytest.fixture(scope="module")
def program(archives: Path) -> dict[str, Evaluation]:
    """edge-lab and dev (no monitoring) with the CRDs as the program's resources."""
    return {stack: evaluate_stack_with(stack, PROGRAM_CRDS) for stack in ("edge-lab", "dev")}


@pytest.fixture(scope="module")
def program_render(program: dict[str, Evaluation], archives: Path) -> Rendered:
    return render(program["edge-lab"], charts_cache=archives)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_by_default_helm_installs_the_crds(evaluations: dict[str, Evaluation], stack: str) -> None:
    evaluation = evaluations[stack]
    assert _records(evaluation, CRD_TYPE) == []
    assert not any(r.inputs.get("skipCrds") for r in _records(evaluation, RELEASE_TYPE))


@pytest.mark.parametrize("stack", ["edge-lab", "dev"])
def test_operator_crds_are_resources_applied_before_their_release(
    program: dict[str, Evaluation], archives: Path, stack: str
) -> None:
    evaluation = program[stack]
    crds = _records(evaluation, CRD_TYPE)
    releases = {str(r.inputs["name"]): r for r in _records(evaluation, RELEASE_TYPE)}
    assert set(releases) == {*OPERATOR_CHARTS, "flyte-binary"} - ({"monitoring"} if stack == "dev" else set())
    for release, chart in OPERATOR_CHARTS.items():
        if release not in releases:
            continue  # dev runs without monitoring
        own = [r for r in crds if r.inputs["metadata"]["labels"][CHART_LABEL] == chart]
        # Every CRD of the archive's crds/ folders (subcharts included), named by the CRD itself.
        assert sorted(r.name for r in own) == sorted(
            c["metadata"]["name"] for c in chart_crds(archives / f"{chart}.tgz")
        )
        assert all(r.name == r.inputs["metadata"]["name"] and r.provider == "kubernetes-crds" for r in own)
        assert releases[release].inputs["skipCrds"] is True
        assert {r.urn for r in own} <= set(releases[release].dependencies)
    # flyte-binary's chart has no crds/ (Flyte creates its CRD at start-up): nothing to apply.
    assert (
        "skipCrds" not in releases["flyte-binary"].inputs or not releases["flyte-binary"].inputs["skipCrds"]
    )
    assert len(crds) == (29 if stack == "dev" else 39)


def test_crds_are_applied_as_the_chart_ships_them_plus_our_labels(
    program: dict[str, Evaluation], archives: Path
) -> None:
    (podmonitor,) = [
        r for r in _records(program["edge-lab"], CRD_TYPE) if r.name == "podmonitors.monitoring.coreos.com"
    ]
    (shipped,) = [
        c
        for c in chart_crds(archives / "kube-prometheus-stack-88.5.3.tgz")
        if c["metadata"]["name"] == podmonitor.name
    ]
    assert podmonitor.inputs["spec"] == shipped["spec"]
    assert podmonitor.inputs["metadata"]["annotations"] == shipped["metadata"]["annotations"]
    assert podmonitor.inputs["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "naomi",
        "naomi.io/chart": "kube-prometheus-stack-88.5.3",
    }


class _OptionsMonitor(engine._RecordingMonitor):
    """The recording monitor, also keeping each registration's retainOnDelete."""

    retained: dict[str, bool] = {}

    def RegisterResource(self, request: Any) -> Any:
        type(self).retained[f"{request.type}::{request.name}"] = bool(request.retainOnDelete)
        return super().RegisterResource(request)


def test_crds_are_never_deleted_and_adopt_what_helm_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_RecordingMonitor", _OptionsMonitor)
    _OptionsMonitor.retained = {}
    evaluation = evaluate_stack_with("edge-lab", PROGRAM_CRDS)
    crds = {key: retained for key, retained in _OptionsMonitor.retained.items() if key.startswith(CRD_TYPE)}
    assert len(crds) == 39 and all(crds.values())
    others = [
        key for key, retained in _OptionsMonitor.retained.items() if retained and not key.startswith(CRD_TYPE)
    ]
    assert others == []  # nothing else is kept on delete
    (provider,) = [
        r
        for r in evaluation.records
        if r.type == "pulumi:providers:kubernetes" and r.name == "kubernetes-crds"
    ]
    settings = {
        k: provider.inputs[k] for k in ("enableServerSideApply", "upsertExistingObjects", "enablePatchForce")
    }
    assert settings == {
        "enableServerSideApply": "true",
        "upsertExistingObjects": "true",
        "enablePatchForce": "true",
    }
    (main,) = [
        r for r in evaluation.records if r.type == "pulumi:providers:kubernetes" and r.name == "kubernetes"
    ]
    assert "upsertExistingObjects" not in main.inputs and "enablePatchForce" not in main.inputs


@pytest.mark.parametrize(("stack", "seconds"), [("edge-lab", 900), ("lab-ha", 600), ("dev", 900)])
def test_release_timeouts_follow_the_profile(
    evaluations: dict[str, Evaluation], stack: str, seconds: int
) -> None:
    releases = _records(evaluations[stack], RELEASE_TYPE)
    assert len(releases) == (3 if stack == "dev" else 4)
    assert {r.inputs["timeout"] for r in releases} == {seconds}
    assert seconds == PROFILES[evaluations[stack].config["naomi:profile"]].release_timeout_seconds  # type: ignore[index]


def test_edge_waits_longer_than_lab_and_every_profile_beyond_the_default() -> None:
    timeouts = {name: profile.release_timeout_seconds for name, profile in PROFILES.items()}
    assert timeouts["edge"] > timeouts["lab"] and min(timeouts.values()) > 300  # the provider's default


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.io"},
    "spec": {
        "group": "example.io",
        "scope": "Cluster",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
        ],
    },
}


@pytest.fixture(scope="module")
def widget_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chart whose template asks for its own CRD's API and creates one of its objects."""
    source = tmp_path_factory.mktemp("widget") / "widget"
    (source / "templates").mkdir(parents=True)
    (source / "crds").mkdir()
    (source / "Chart.yaml").write_text("apiVersion: v2\nname: widget\nversion: 0.1.0\n")
    (source / "values.yaml").write_text("{}\n")
    (source / "crds" / "widgets.yaml").write_text(yaml.safe_dump(WIDGET_CRD))
    (source / "templates" / "probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        'data: {widgets: "{{ .Capabilities.APIVersions.Has "example.io/v1/Widget" }}"}\n'
        "---\napiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w, namespace: ignored}\n"
    )
    return Path(helm_python.package(source, destination=source.parent))


def test_a_skipcrds_release_sees_the_apis_of_the_crds_applied_before_it(widget_chart: Path) -> None:
    def render(**options: Any) -> dict[str, Any]:
        found = charts.render_release(
            widget_chart,
            {},
            release="r",
            namespace="ns",
            kubernetes_version="1.32",
            include_crds=False,
            **options,
        )
        assert found.crds == []  # skipCrds: Helm applies none of them
        return {obj["kind"]: obj for obj in found.objects}

    assert render()["ConfigMap"]["data"]["widgets"] == "false"
    applied = render(installed_crds=[WIDGET_CRD])
    assert applied["ConfigMap"]["data"]["widgets"] == "true"
    assert "namespace" not in applied["Widget"]["metadata"]  # cluster-scoped, by the applied CRD's scope


def test_the_render_gives_each_release_the_crds_it_depends_on(program_render: Rendered) -> None:
    rendered = program_render
    assert not any(item.crd for item in rendered.chart_objects)  # no release applies CRDs itself
    files = [path for path in rendered.files if path.startswith("crds/")]
    assert len(files) == 39 and "crds/rayclusters.ray.io.yaml" in files
    assert rendered.files["crds/rayclusters.ray.io.yaml"].startswith("apiVersion: apiextensions.k8s.io/v1\n")


# --- a version bump ------------------------------------------------------------------------------


def test_a_version_bump_updates_the_crds_in_place(program_render: Rendered, archives: Path) -> None:
    bump = chart_bump.bumped("program")
    delta = diff_files(program_render.files, bump.files)
    assert (delta.added, delta.removed) == ([], [])
    # The same resources with the same identities and order: every change is an update.
    assert "plan.yaml" not in delta.changed
    podmonitor = delta.changed["crds/podmonitors.monitoring.coreos.com.yaml"]
    assert "+  - additionalPrinterColumns:\n+    - jsonPath: .metadata.creationTimestamp\n" in podmonitor
    for name in ("prometheuses", "servicemonitors", "alertmanagers"):
        patch = delta.changed[f"crds/{name}.monitoring.coreos.com.yaml"]
        changed = [line for line in patch.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        assert changed == [
            "-    naomi.io/chart: kube-prometheus-stack-88.5.3",
            "+    naomi.io/chart: kube-prometheus-stack-88.6.0",
        ]
    # Other charts' CRDs stay as they are.
    assert not any(
        path.startswith("crds/") and ".monitoring.coreos.com" not in path for path in delta.changed
    )
    release = yaml.safe_load(bump.files["helm/naomi-monitoring-monitoring.yaml"])
    assert (release["version"], release["skipCrds"], release["timeout"]) == ("88.6.0", True, 900)
    assert release["sha256"] == charts.sha256_of(bump.cache / "kube-prometheus-stack-88.6.0.tgz")


def test_a_bump_without_its_archive_stops_with_the_fix(archives: Path, tmp_path: Path) -> None:
    bump = chart_bump.bumped("program")
    result = chart_bump.render(bump.project, "edge-lab", archives, tmp_path / "out")
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (
        2,
        f"error: naomi:charts: kube-prometheus-stack 88.6.0 is not in the chart cache {archives} (its CRDs "
        f"are applied from the archive before the release): run naomi charts pull --cache {archives}",
    )
