"""Upgrades that carry CRDs (issue 17, defect 4). By default (`naomi:charts.crds: program`) the
operator charts' CRDs are applied by the program, one ConfigGroup per chart holding the chart's
crds/ files as shipped, before their release (whose `skipCrds` is set), updated in place by a
version bump and never deleted. `crds: helm` leaves them to Helm. The releases wait as long as
the profile says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pulumi
import pytest
import yaml

from infra.charts import CONFIG_GROUP_TYPE, CRD_TYPE, chart_crd_text, keep_crds
from infra.profiles import PROFILES
from naomi.cluster import charts
from naomi.render import engine
from naomi.render.diff import diff_files
from naomi.render.engine import Evaluation, Record
from naomi.render.tree import Rendered
from tests import chart_bump
from tests.conftest import EXAMPLE_STACKS, require_shared
from tests.local_cluster import evaluate_stack_with

HELM_CRDS = {"charts": {"crds": "helm"}}

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


def test_with_crds_helm_each_release_installs_its_crds(archives: Path) -> None:
    evaluation = evaluate_stack_with("dev", HELM_CRDS)
    assert _records(evaluation, CONFIG_GROUP_TYPE) == [] and _records(evaluation, CRD_TYPE) == []
    assert not any(r.inputs.get("skipCrds") for r in _records(evaluation, RELEASE_TYPE))


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_operator_crds_are_applied_before_their_release(
    evaluations: dict[str, Evaluation], archives: Path, stack: str
) -> None:
    evaluation = evaluations[stack]
    groups = {r.name: r for r in _records(evaluation, CONFIG_GROUP_TYPE)}
    releases = {str(r.inputs["name"]): r for r in _records(evaluation, RELEASE_TYPE)}
    expected = {*OPERATOR_CHARTS} - ({"monitoring"} if stack == "dev" else set())
    assert set(releases) == {*expected, "flyte-binary"}
    assert sorted(groups) == sorted(r.name + "-crds" for n, r in releases.items() if n in expected)
    for release, chart in OPERATOR_CHARTS.items():
        if release not in releases:
            continue  # dev runs without monitoring
        group = groups[releases[release].name + "-crds"]
        # The chart's crds/ files (subcharts included) as the chart ships them, nothing else.
        assert group.inputs == {"yaml": chart_crd_text(archives / f"{chart}.tgz")}
        # A component the CRD provider constructs (and whose children it applies).
        assert group.provider == "kubernetes-crds" and group.custom is False
        assert releases[release].inputs["skipCrds"] is True
        assert group.urn in releases[release].dependencies
    # flyte-binary's chart has no crds/ (Flyte creates its CRD at start-up): nothing to apply.
    assert not releases["flyte-binary"].inputs.get("skipCrds")
    assert not _records(evaluation, CRD_TYPE)  # no CRD as a typed resource


def test_the_group_texts_are_the_charts_crds_byte_for_byte(archives: Path) -> None:
    for chart in OPERATOR_CHARTS.values():
        text = chart_crd_text(archives / f"{chart}.tgz")
        shipped = charts.chart_crds(archives / f"{chart}.tgz")
        documents = charts.stream_documents(text, chart)
        assert [obj for _, obj in documents] == [m.object for m in shipped]
        assert all(m.text in text for m in shipped)
    assert sum(len(charts.chart_crds(archives / f"{c}.tgz")) for c in OPERATOR_CHARTS.values()) == 39


class _OptionsMonitor(engine._RecordingMonitor):
    """The recording monitor, also keeping each registration's options."""

    seen: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        type(self).seen[f"{request.type}::{request.name}"] = {
            "retain": bool(request.retainOnDelete),
            "transforms": len(request.transforms),
            "providers": dict(request.providers),
            "remote": bool(request.remote),
        }
        return super().RegisterResource(request)


def test_crds_are_never_deleted_and_adopt_what_helm_installed(
    monkeypatch: pytest.MonkeyPatch, archives: Path
) -> None:
    monkeypatch.setattr(engine, "_RecordingMonitor", _OptionsMonitor)
    _OptionsMonitor.seen = {}
    evaluation = evaluate_stack_with("edge-lab")
    groups = {k: v for k, v in _OptionsMonitor.seen.items() if k.startswith(CONFIG_GROUP_TYPE)}
    assert len(groups) == 3
    (provider,) = [
        r
        for r in evaluation.records
        if r.type == "pulumi:providers:kubernetes" and r.name == "kubernetes-crds"
    ]
    for options in groups.values():
        # A packaged component (the provider registers its children), with our one transform,
        # its children applied by the CRD provider.
        assert options["remote"] and options["transforms"] == 1
        assert list(options["providers"]) == ["kubernetes"]
        assert options["providers"]["kubernetes"].split("::")[-2] == "kubernetes-crds"
    assert [k for k, v in _OptionsMonitor.seen.items() if v["retain"]] == []  # retained: only the CRDs
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


def _transform_args(type_: str) -> pulumi.ResourceTransformArgs:
    return pulumi.ResourceTransformArgs(
        custom=True,
        type_=type_,
        name="traefik-crds:ingressroutes.traefik.io",
        props={"metadata": {"name": "ingressroutes.traefik.io"}},
        opts=pulumi.ResourceOptions(),
    )


def test_the_groups_transform_awaits_and_retains_each_crd_and_touches_nothing_else() -> None:
    """What the engine runs for each child the provider registers (offline, no transform runs)."""
    args = _transform_args(CRD_TYPE)
    args.props["metadata"]["annotations"] = {"controller-gen.kubebuilder.io/version": "v0.16.1"}
    result = keep_crds(args)
    assert result is not None and result.opts.retain_on_delete is True
    assert result.props == {
        "metadata": {
            "name": "ingressroutes.traefik.io",
            "annotations": {
                "controller-gen.kubebuilder.io/version": "v0.16.1",
                "pulumi.com/waitFor": "condition=Established",  # the release needs the CRD served
            },
        }
    }
    assert args.props["metadata"]["annotations"] == {"controller-gen.kubebuilder.io/version": "v0.16.1"}
    assert keep_crds(_transform_args("kubernetes:core/v1:ConfigMap")) is None


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


def test_the_render_gives_each_release_the_crds_it_depends_on(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    assert not any(item.crd for item in rendered.chart_objects)  # no release applies CRDs itself
    files = [path for path in rendered.files if path.startswith("crds/")]
    assert len(files) == 39 and "crds/rayclusters.ray.io.yaml" in files
    text = rendered.files["crds/rayclusters.ray.io.yaml"]
    first, rest = text.split("\n", 1)
    assert first.startswith("# applied by ") and CONFIG_GROUP_TYPE in first
    assert rest.startswith("apiVersion: apiextensions.k8s.io/v1\n")
    crds = [o for o in rendered.kubernetes if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 39
    # The releases were rendered seeing those APIs (the ServiceMonitors etc. they create exist).
    kinds = {o["kind"] for o in (item.object for item in rendered.chart_objects)}
    assert {"ServiceMonitor", "PrometheusRule", "Prometheus"} <= kinds


# --- a version bump ------------------------------------------------------------------------------


def test_a_version_bump_updates_the_crds_in_place(renders: dict[str, Rendered], archives: Path) -> None:
    bump = chart_bump.bumped()
    delta = diff_files(renders["edge-lab"].files, bump.files)
    assert (delta.added, delta.removed) == ([], [])
    # The same resources with the same identities and order: every change is an update.
    assert "plan.yaml" not in delta.changed
    crds = sorted(path for path in delta.changed if path.startswith("crds/"))
    # Only the CRD the new chart version changed: the chart's own bytes, nothing of ours varies.
    assert crds == ["crds/podmonitors.monitoring.coreos.com.yaml"]
    assert (
        "+  - additionalPrinterColumns:\n+    - jsonPath: .metadata.creationTimestamp\n"
        in delta.changed[crds[0]]
    )
    release = yaml.safe_load(bump.files["helm/naomi-monitoring-monitoring.yaml"])
    assert (release["version"], release["skipCrds"], release["timeout"]) == ("88.6.0", True, 900)
    assert release["sha256"] == charts.sha256_of(bump.cache / "kube-prometheus-stack-88.6.0.tgz")


def test_a_bump_without_its_archive_stops_with_the_fix(archives: Path, tmp_path: Path) -> None:
    bump = chart_bump.bumped()
    result = chart_bump.render(bump.project, "edge-lab", archives, tmp_path / "out")
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (
        2,
        f"error: naomi:charts: kube-prometheus-stack 88.6.0 is not in the chart cache {archives} (its CRDs "
        f"are applied from the archive before the release): run naomi charts pull --cache {archives}",
    )
