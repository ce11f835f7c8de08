"""Chart objects: the chart cache and digest-checked pulls (against a chart repository on
127.0.0.1), the offline render of a release as Helm installs it, and the render tree with the
four upstream charts' objects (counts, origins, CRDs, missing charts, diffs)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from typer.testing import CliRunner

from infra.versions import Chart
from naomi.cluster import charts
from naomi.render.diff import diff_files, render_source
from naomi.render.engine import Evaluation, RenderError, evaluate
from naomi.render.tree import Rendered, render
from tests.conftest import require_shared
from tests.project_copy import copy_project


@pytest.fixture(scope="module")
def archives() -> Path:
    return require_shared("reference/chart-archives")


# --- pull ----------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def chart_repository(tmp_path: Path, archives: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving the kuberay-operator archive."""
    folder = tmp_path / "repository"
    folder.mkdir()
    shutil.copy(archives / "kuberay-operator-1.7.0.tgz", folder)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(folder, base_url=url)
    yield url
    server.shutdown()
    thread.join()


KUBERAY_SHA256 = "5dafd408f2f9b2ead033e855edfe268898b9d1332a573337ed1f84e5a8ddf57a"  # chart-archives README


def test_pull_caches_the_pinned_version_and_checks_its_digest(chart_repository: str, tmp_path: Path) -> None:
    chart = Chart(
        name="kuberay-operator", repository=chart_repository, version="1.7.0", digest=KUBERAY_SHA256
    )
    archive = charts.pull(chart, tmp_path / "cache")
    assert archive == tmp_path / "cache" / "kuberay-operator-1.7.0.tgz"
    assert charts.sha256_of(archive) == KUBERAY_SHA256
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["kuberay-operator-1.7.0.tgz"]


def test_pull_refuses_an_archive_with_another_digest(chart_repository: str, tmp_path: Path) -> None:
    chart = Chart(name="kuberay-operator", repository=chart_repository, version="1.7.0", digest="0" * 64)
    with pytest.raises(charts.ChartError) as raised:
        charts.pull(chart, tmp_path / "cache")
    assert str(raised.value) == (
        f"kuberay-operator 1.7.0: kuberay-operator-1.7.0.tgz has sha256 {KUBERAY_SHA256}, but "
        f"infra/versions.py pins {'0' * 64}; not cached (a changed upstream archive, or a wrong pin)"
    )
    assert list((tmp_path / "cache").iterdir()) == []


def test_pull_of_a_version_the_repository_lacks_names_chart_and_repository(
    chart_repository: str, tmp_path: Path
) -> None:
    chart = Chart(name="kuberay-operator", repository=chart_repository, version="9.9.9")
    with pytest.raises(charts.ChartError) as raised:
        charts.pull(chart, tmp_path / "cache")
    assert str(raised.value) == (
        f'cannot pull kuberay-operator 9.9.9 from {chart_repository}: chart "kuberay-operator" '
        f'version "9.9.9" not found in {chart_repository} repository'
    )


def test_charts_pull_command_prints_digests_and_pin_lines(
    chart_repository: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naomi.cli import app

    local = Chart(name="kuberay-operator", repository=chart_repository, version="1.7.0")
    monkeypatch.setattr(charts, "PINNED_CHARTS", (local,))
    monkeypatch.setattr(charts, "pinned_name", lambda chart: "KUBERAY_OPERATOR")
    result = CliRunner().invoke(app, ["charts", "pull", "--cache", str(tmp_path / "c"), "--pin"])
    assert result.exit_code == 0, result.output
    archive = tmp_path / "c" / "kuberay-operator-1.7.0.tgz"
    assert result.output.splitlines() == [
        f"kuberay-operator 1.7.0 sha256 {KUBERAY_SHA256} -> {archive}",
        "# infra/versions.py: replace digest=None in each Chart(...)",
        f'digest="{KUBERAY_SHA256}",  # KUBERAY_OPERATOR (kuberay-operator 1.7.0)',
    ]


def test_cache_location_argument_then_environment_then_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAOMI_CHARTS", "/srv/charts")
    assert charts.cache_dir(Path("/x")) == Path("/x")
    assert charts.cache_dir() == Path("/srv/charts")
    monkeypatch.delenv("NAOMI_CHARTS")
    monkeypatch.setenv("HOME", "/home/u")
    assert charts.cache_dir() == Path("/home/u/.cache/naomi/charts")


def test_the_pins_are_unset_until_the_first_online_pull() -> None:
    # The shared archives are repackaged from source: their digests are not the repositories'.
    assert [c.digest for c in charts.PINNED_CHARTS] == [None, None, None, None]
    assert [charts.pinned_name(c) for c in charts.PINNED_CHARTS] == [
        "TRAEFIK",
        "KUBERAY_OPERATOR",
        "FLYTE_BINARY",
        "KUBE_PROMETHEUS_STACK",
    ]


# --- render_release on a chart written for the test -----------------------------------------------

PROBE_TEMPLATES = {
    # Capabilities as the templates see them.
    "capabilities.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: capabilities
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  pdb: {{ .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" | quote }}
  psp: {{ .Capabilities.APIVersions.Has "policy/v1beta1/PodSecurityPolicy" | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.io/v1/Widget" | quote }}
  install: {{ .Release.IsInstall | quote }}
""",
    # Two documents, an empty one, a cluster-scoped kind carrying a namespace, a custom kind.
    "many.yaml": """---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: plain
---
# only a comment
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cluster-wide
  namespace: ignored
rules: []
---
apiVersion: example.io/v1
kind: Widget
metadata:
  name: w
  namespace: elsewhere
""",
    "hooks.yaml": """apiVersion: batch/v1
kind: Job
metadata:
  name: setup
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: hook-succeeded
    helm.sh/hook-weight: "-5"
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1.36"}]
---
apiVersion: v1
kind: Pod
metadata:
  name: smoke-test
  annotations:
    helm.sh/hook: test
spec:
  containers: [{name: c, image: "busybox:1.36"}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cleanup
  annotations:
    helm.sh/hook: post-delete
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: odd
  annotations:
    helm.sh/hook: pre-install,on-a-whim
""",
    "NOTES.txt": "Thanks for installing {{ .Release.Name }}.\n",
    "_helpers.tpl": '{{- define "probe.name" -}}probe{{- end -}}\n',
}
PROBE_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object}
"""


@pytest.fixture(scope="module")
def probe_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("probe") / "probe"
    (source / "templates").mkdir(parents=True)
    (source / "crds").mkdir()
    (source / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (source / "values.yaml").write_text("{}\n")
    for name, text in PROBE_TEMPLATES.items():
        (source / "templates" / name).write_text(text)
    (source / "crds" / "widgets.yaml").write_text(PROBE_CRD)
    return Path(helm_python.package(source, destination=source.parent))


def _by_name(render: charts.ReleaseRender) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in render.objects}


def test_capabilities_are_the_target_kubernetes_version_and_the_charts_crds(probe_chart: Path) -> None:
    rendered = charts.render_release(probe_chart, {}, release="r", namespace="ns", kubernetes_version="1.32")
    assert _by_name(rendered)["capabilities"]["data"] == {
        "kubeVersion": "v1.32.0",
        "pdb": "true",  # a 1.32 API server lists policy/v1 PodDisruptionBudget
        "psp": "false",  # removed in 1.25
        "widgets": "true",  # the chart's own CRD, installed before the templates render
        "install": "true",
    }
    skipped = charts.render_release(
        probe_chart, {}, release="r", namespace="ns", kubernetes_version="1.32", include_crds=False
    )
    assert _by_name(skipped)["capabilities"]["data"]["widgets"] == "false"  # skipCrds: never installed


def test_objects_are_placed_as_the_api_server_stores_them(probe_chart: Path) -> None:
    rendered = charts.render_release(probe_chart, {}, release="r", namespace="ns", kubernetes_version="1.32")
    objects = _by_name(rendered)
    assert objects["plain"]["metadata"] == {"name": "plain", "namespace": "ns"}
    assert objects["cluster-wide"]["metadata"] == {"name": "cluster-wide"}
    assert objects["w"]["metadata"]["namespace"] == "elsewhere"
    assert "probe" not in str(rendered.objects)  # neither NOTES.txt nor the partial is an object
    assert (rendered.chart, rendered.chart_version, rendered.sha256) == (
        "probe",
        "0.1.0",
        charts.sha256_of(probe_chart),
    )
    assert [crd["metadata"]["name"] for crd in rendered.crds] == ["widgets.example.io"]


def test_install_hooks_are_created_and_the_others_dropped_with_the_reason(probe_chart: Path) -> None:
    rendered = charts.render_release(probe_chart, {}, release="r", namespace="ns")
    assert [(m.object["metadata"]["name"], m.hook) for m in rendered.hooks] == [
        (
            "setup",
            charts.Hook(
                events=("pre-install", "pre-upgrade"), delete_policies=("hook-succeeded",), weight=-5
            ),
        )
    ]
    assert list(rendered.dropped) == [
        "Pod ns/smoke-test (probe/templates/hooks.yaml): test hook, created only by `helm test`",
        "ConfigMap ns/cleanup (probe/templates/hooks.yaml): delete hook, created only on uninstall",
        "ConfigMap ns/odd (probe/templates/hooks.yaml): unknown hook type on-a-whim: Helm skips the object",
    ]
    without_hooks = charts.render_release(probe_chart, {}, release="r", namespace="ns", run_hooks=False)
    assert "setup" not in _by_name(without_hooks)
    assert (
        without_hooks.crds
        and not charts.render_release(probe_chart, {}, release="r", namespace="ns", include_crds=False).crds
    )


def test_values_outside_the_charts_schema_are_one_line_naming_release_and_path(archives: Path) -> None:
    with pytest.raises(charts.ChartError) as raised:
        charts.render_release(
            archives / "traefik-41.3.0.tgz",
            {"ports": {"web": {"port": "eighty"}}},
            release="traefik",
            namespace="naomi-gateway",
        )
    assert str(raised.value) == (
        "helm release naomi-gateway/traefik (traefik 41.3.0): values.ports.web.port: got string, want integer"
    )


def test_kubernetes_api_versions_are_the_ga_resources_of_that_version() -> None:
    apis = charts.kubernetes_api_versions("1.32")
    assert {"v1", "v1/Pod", "apps/v1/Deployment", "policy/v1/PodDisruptionBudget", "autoscaling/v2"} <= apis
    assert {
        "batch/v1beta1/CronJob",
        "policy/v1beta1/PodSecurityPolicy",
        "v1/PodList",
        "v1/DeleteOptions",
    }.isdisjoint(apis)
    assert not any("alpha" in api or "beta" in api for api in apis)
    with pytest.raises(
        charts.ChartError, match=r"^no Kubernetes 1\.99 OpenAPI schema in kubernetes-validate$"
    ):
        charts.kubernetes_api_versions("1.99")


@pytest.mark.parametrize(
    ("path", "rules", "ignored"),
    [
        ("crds/kustomization.yaml", ["tests/", "crds/kustomization.yaml"], True),  # traefik's
        ("crds/traefik.io_tlsoptions.yaml", ["tests/", "crds/kustomization.yaml"], False),
        ("crds/x/y.yaml", ["crds/*.yaml"], False),  # Go's `*` does not cross "/"
        ("crds/old.yaml.bak", ["*.bak"], True),  # no "/": the base name
        ("ci/values.yaml", ["ci/"], True),  # a folder excludes what is in it
        ("crds/ci", ["ci/"], False),  # a trailing "/" matches folders only
    ],
)
def test_helmignore_rules_as_helm_package_applies_them(path: str, rules: list[str], ignored: bool) -> None:
    assert charts._helmignored(path, rules) is ignored


# --- the four upstream charts with our values --------------------------------------------------------


def _release_counts(rendered: Rendered) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for item in rendered.chart_objects:
        counts.setdefault(item.origin, Counter())["CRD (crds/)" if item.crd else item.object["kind"]] += 1
    return {origin: dict(sorted(c.items())) for origin, c in sorted(counts.items())}


def test_edge_lab_renders_every_releases_objects(renders: dict[str, Rendered], archives: Path) -> None:
    rendered = renders["edge-lab"]
    assert rendered.charts_missing == []
    counts = _release_counts(rendered)
    print(counts)  # the figures the report quotes
    assert set(counts) == {
        "helm:naomi-gateway/traefik",
        "helm:naomi-monitoring/monitoring",
        "helm:naomi-platform/flyte-binary",
        "helm:naomi-ray/kuberay-operator",
    }
    # The charts' CRDs are applied by the program (one ConfigGroup per chart), not by the releases.
    assert not any("CRD (crds/)" in c for c in counts.values())
    applied = Counter(path.split(".", 1)[1] for path, _ in rendered.crds())
    assert applied["traefik.io.yaml"] + applied["hub.traefik.io.yaml"] == 25  # kustomization.yaml left out
    assert applied["monitoring.coreos.com.yaml"] == 10 and applied["ray.io.yaml"] == 4
    assert counts["helm:naomi-monitoring/monitoring"]["Prometheus"] == 1
    assert counts["helm:naomi-monitoring/monitoring"]["Job"] == 2  # the admission hooks
    grafana = rendered.files["k8s/naomi-monitoring/Deployment-monitoring-grafana.yaml"]
    sha = charts.sha256_of(archives / "kube-prometheus-stack-88.5.3.tgz")
    assert grafana.splitlines()[:2] == [
        f"# helm release naomi-monitoring/monitoring: kube-prometheus-stack 88.5.3 (sha256 {sha[:12]})",
        "# source: kube-prometheus-stack/charts/grafana/templates/deployment.yaml",
    ]
    job = rendered.files["k8s/naomi-monitoring/Job-monitoring-kube-prometheus-admission-create.yaml"]
    assert job.splitlines()[2] == (
        "# helm hook: pre-install,pre-upgrade (delete policy: before-hook-creation,hook-succeeded)"
    )
    assert "crds/prometheuses.monitoring.coreos.com.yaml" in rendered.files
    assert "k8s/kube-system/Service-monitoring-kube-prometheus-coredns.yaml" in rendered.files


def test_helm_documents_carry_the_archive_digest_and_what_was_not_created(
    renders: dict[str, Rendered],
) -> None:
    monitoring = yaml.safe_load(renders["edge-lab"].files["helm/naomi-monitoring-monitoring.yaml"])
    assert monitoring["sha256"] == "e2119ec5cae0eb5e4c21ad957deb0bef1eaf5bfe8b264de67564a22d60fd88d0"
    assert [line.split(" (")[0] for line in monitoring["notCreated"]] == [
        "ConfigMap naomi-monitoring/monitoring-grafana-test",
        "Pod naomi-monitoring/monitoring-grafana-test",
        "ServiceAccount naomi-monitoring/monitoring-grafana-test",
    ]
    traefik = yaml.safe_load(renders["edge-lab"].files["helm/naomi-gateway-traefik.yaml"])
    assert traefik["notCreated"] == [
        "traefik/crds/kustomization.yaml: excluded by traefik/.helmignore, so not in a packaged chart"
    ]


def test_lab_ha_renders_the_same_releases(renders: dict[str, Rendered]) -> None:
    counts = _release_counts(renders["lab-ha"])
    print(counts)
    assert len(counts) == 4 and sum(sum(c.values()) for c in counts.values()) >= 120
    assert len(list(renders["lab-ha"].crds())) == 39


def test_all_objects_yields_ours_then_the_charts_with_their_origin(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    everything = list(rendered.all_objects())
    assert len(everything) == len(rendered.kubernetes) + len(rendered.chart_objects)
    origins = Counter(origin for origin, _ in everything)
    assert origins["pulumi"] == len(rendered.kubernetes)
    assert origins["helm:naomi-platform/flyte-binary"] == 10
    assert rendered.kubernetes and all(item.origin != "pulumi" for item in rendered.chart_objects)


def test_chart_render_is_byte_identical(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered], archives: Path
) -> None:
    again = render(evaluations["lab-ha"], charts_cache=archives)
    assert again.files == renders["lab-ha"].files
    assert sum(path.startswith("crds/") for path in again.files) == 39


def _collision_program() -> None:
    import pulumi_kubernetes as k8s

    k8s.helm.v3.Release(
        "gateway",
        name="traefik",
        namespace="naomi-gateway",
        chart="traefik",
        version="41.3.0",
        repository_opts={"repo": "https://traefik.github.io/charts"},
    )
    k8s.core.v1.ServiceAccount("mine", metadata={"name": "traefik", "namespace": "naomi-gateway"})


def test_two_objects_on_one_path_name_both_origins(archives: Path) -> None:
    evaluation = evaluate(_collision_program, "collide", {"naomi:kubernetesVersion": "1.32"}, [])
    with pytest.raises(RenderError) as raised:
        render(evaluation, charts_cache=archives)
    assert str(raised.value) == (
        "two objects render to k8s/naomi-gateway/ServiceAccount-traefik.yaml: "
        "pulumi pulumi:pulumi:Stack$kubernetes:core/v1:ServiceAccount::mine and "
        "helm:naomi-gateway/traefik (traefik/templates/rbac/serviceaccount.yaml)"
    )


def _naomi(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naomi.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "300", **({"PYTHONPATH": str(cwd)} if cwd else {}), **env},
        check=False,
    )


def test_missing_charts_are_reported_and_fail_in_ci(tmp_path: Path) -> None:
    """With `crds: helm` the program needs no archive: the render says what it could not render
    (and fails in CI); by default the program itself stops (test_airgap.py)."""
    from tests import chart_bump

    project = copy_project(tmp_path / "project")
    chart_bump.set_crds(project, "dev", "helm")
    empty = tmp_path / "no-charts"
    empty.mkdir()
    line = "charts missing from the cache: flyte-binary v1.16.8, kuberay-operator 1.7.0, traefik 41.3.0 (run: naomi charts pull)"
    render_args = ("render", "--stack", "dev", "--charts", str(empty), "--out")
    result = _naomi(*render_args, str(tmp_path / "a"), cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == line
    assert "sha256: null" in (tmp_path / "a" / "helm" / "naomi-gateway-traefik.yaml").read_text()
    strict = _naomi(*render_args, str(tmp_path / "b"), cwd=project, NAOMI_REQUIRE_CHARTS="1")
    assert (strict.returncode, strict.stderr.strip()) == (2, f"error: {line}")
    assert not (tmp_path / "b").exists()


def test_a_grafana_value_edit_shows_as_the_changed_chart_object(
    tmp_path: Path, renders: dict[str, Rendered], archives: Path
) -> None:
    """--diff inside charts: a value edit in infra/monitoring.py (a scratch copy) changes the
    Deployment the chart renders, not only the release's values."""
    project = copy_project(tmp_path / "project")
    monitoring = project / "infra" / "monitoring.py"
    source = monitoring.read_text()
    edited = source.replace(
        '"grafana": {\n            "admin": {',
        '"grafana": {\n            "replicas": 2,\n            "admin": {',
    )
    assert edited != source
    monitoring.write_text(edited)
    assert renders["edge-lab"].charts_missing == []  # the subprocess renders from the same $NAOMI_CHARTS
    delta = diff_files(renders["edge-lab"].files, render_source(project, "edge-lab", tmp_path / "out"))
    assert (delta.added, delta.removed) == ([], [])
    assert "k8s/naomi-monitoring/Deployment-monitoring-grafana.yaml" in delta.changed
    patch = delta.changed["k8s/naomi-monitoring/Deployment-monitoring-grafana.yaml"]
    assert "-  replicas: 1\n+  replicas: 2\n" in patch
    assert set(delta.changed) == {
        "helm/naomi-monitoring-monitoring.yaml",
        "k8s/naomi-monitoring/Deployment-monitoring-grafana.yaml",
    }


def test_render_benchmark_smoke_run(archives: Path) -> None:
    from naomi.paths import PROJECT_DIR

    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "render.py"), "--smoke"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    lines = result.stdout.splitlines()
    for stack in ("edge-lab", "lab-ha"):
        (timing,) = [line for line in lines if line.startswith(stack)]
        assert (
            "evaluation" in timing
            and "chart render" in timing
            and "expansion" in timing
            and "checks" in timing
        )
    counts = [line for line in lines if "objects: ours" in line]
    assert len(counts) == 2 and all("chart CRDs 39" in line and "missing: none" in line for line in counts)


def _gateway_program() -> None:
    import pulumi_kubernetes as k8s

    k8s.helm.v3.Release(
        "gateway",
        name="traefik",
        namespace="naomi-gateway",
        chart="traefik",
        version="41.3.0",
        repository_opts={"repo": "https://traefik.github.io/charts"},
    )


def test_the_render_refuses_a_cached_archive_that_does_not_match_its_pin(
    archives: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = Chart(
        name="traefik", repository="https://traefik.github.io/charts", version="41.3.0", digest="f" * 64
    )
    monkeypatch.setattr(charts, "PINNED_CHARTS", (pinned,))
    evaluation = evaluate(_gateway_program, "pinned", {}, [])
    with pytest.raises(RenderError) as raised:
        render(evaluation, charts_cache=archives)
    actual = charts.sha256_of(archives / "traefik-41.3.0.tgz")
    assert str(raised.value) == (
        f"traefik 41.3.0: traefik-41.3.0.tgz has sha256 {actual}, but infra/versions.py pins {'f' * 64}"
    )
    monkeypatch.setattr(charts, "PINNED_CHARTS", (Chart(**{**vars(pinned), "digest": actual}),))
    assert render(evaluation, charts_cache=archives).charts_missing == []
