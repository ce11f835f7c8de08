"""Air-gapped installs: `naomi:images.mirror` rewrites every image that will run (ours, the charts',
the operators' pods) to the mirror; `naomi:charts.source: cache` gives each Helm release its
local archive; a missing archive stops the program with one line and the fix; `naomi images
list` prints what to mirror, with the architectures each image needs."""

from __future__ import annotations

import dataclasses
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from typer.testing import CliRunner

from infra.charts import ChartSource
from infra.images import CHART_IMAGES, ImageMirror, mirror_chart_values, mirror_transformation, qualified
from infra.versions import TRAEFIK, image_evidence
from naomi.cli import app
from naomi.cluster.checks import cluster_model, inventory
from naomi.images import image_uses, mirror_list, mirror_of, mirror_table
from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation, evaluate, stack_config, stack_program
from naomi.render.tree import Rendered, render
from stacks.config import ConfigError, load_stack_config
from tests.conftest import require_shared

MIRROR = "mirror.lan:5000/naomi"
RELEASES = ("traefik", "kuberay-operator", "flyte-binary", "kube-prometheus-stack")


@pytest.fixture(scope="module")
def archives() -> Path:
    return require_shared("reference/chart-archives")


def _evaluate(stack: str, edit: Callable[[dict[str, Any]], None], *, preview: bool = False) -> Evaluation:
    """`stack` evaluated with its `naomi:images`/`naomi:charts` (and other keys) edited."""
    config, secrets, _ = stack_config(PROJECT_DIR, stack)
    keys = {key: json.loads(value) for key, value in config.items() if value.startswith("{")}
    edit(keys)
    config = {**config, **{key: json.dumps(value) for key, value in keys.items()}}
    return evaluate(stack_program(PROJECT_DIR), stack, config, secrets, preview=preview)


def _with_mirror(keys: dict[str, Any]) -> None:
    keys.setdefault("naomi:images", {})["mirror"] = MIRROR


# The cache as a stack file names it: relative to the project root (here, ../shared's archives).
RELATIVE_CACHE = Path("..", "shared", "reference", "chart-archives")


def _air_gapped(keys: dict[str, Any]) -> None:
    _with_mirror(keys)
    keys["naomi:charts"] = {"source": "cache", "cache": str(RELATIVE_CACHE)}


@pytest.fixture(scope="module")
def air_gapped(archives: Path) -> tuple[Evaluation, Rendered]:
    """edge-lab fully air-gapped: images from the mirror, charts from the cache. Rendered with a
    render cache that does not exist: the releases' own archives are what renders."""
    assert (PROJECT_DIR / RELATIVE_CACHE).resolve() == archives.resolve()
    evaluation = _evaluate("edge-lab", _air_gapped)
    return evaluation, render(evaluation, charts_cache=Path("/nonexistent"))


def _build_registry(evaluation: Evaluation) -> str | None:
    images = json.loads(evaluation.config.get("naomi:images") or "{}")
    return f"{images['registry']}/" if images.get("build") else None


def _pod_images(rendered: Rendered) -> dict[str, set[str]]:
    """image -> the origins of the pods running it ("pulumi", "helm:...", "operator:...")."""
    found: dict[str, set[str]] = {}
    for pod in cluster_model(rendered).pods:
        for container in pod.containers:
            found.setdefault(str(container["image"]), set()).add(pod.origin.split(":", 1)[0])
    return found


# --- the mirror rewrite ------------------------------------------------------------------------


def test_every_image_that_will_run_comes_from_the_mirror(
    air_gapped: tuple[Evaluation, Rendered], renders: dict[str, Rendered]
) -> None:
    _, rendered = air_gapped
    assert rendered.charts_missing == []
    images = _pod_images(rendered)
    origins = set().union(*images.values())
    assert {"pulumi", "helm", "operator"} <= origins  # ours, the charts', the operators' pods
    assert sorted(image for image in images if not image.startswith(f"{MIRROR}/")) == []
    # The same images as without the mirror (tags and digests kept), under their full names.
    plain = {qualified(image) for image in _pod_images(renders["edge-lab"])}
    mirror = ImageMirror(MIRROR)
    assert {qualified(mirror.source(image)) for image in images} == plain
    assert len(images) >= 15


def test_the_mirror_reaches_each_chart_and_operator_image(air_gapped: tuple[Evaluation, Rendered]) -> None:
    images = _pod_images(air_gapped[1])
    expected = {
        # chart values (traefik's Docker Hub name with its library/ part)
        f"{MIRROR}/docker.io/library/traefik:v3.7.11": "helm",
        f"{MIRROR}/quay.io/kuberay/operator:v1.7.0": "helm",
        f"{MIRROR}/cr.flyte.org/flyteorg/flyte-binary-release:v1.16.8": "helm",
        f"{MIRROR}/docker.io/library/postgres:17.6-bookworm": "helm",  # flyte's wait-for-db
        f"{MIRROR}/docker.io/grafana/grafana:13.2.0": "helm",
        f"{MIRROR}/quay.io/kiwigrid/k8s-sidecar:2.10.1": "helm",
        f"{MIRROR}/registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0": "helm",
        f"{MIRROR}/ghcr.io/jkroepke/kube-webhook-certgen:1.8.7": "helm",  # admission hook Jobs
        f"{MIRROR}/quay.io/prometheus-operator/prometheus-operator:v0.93.1": "helm",
        # what prometheus-operator and KubeRay create from custom resources
        f"{MIRROR}/quay.io/prometheus/prometheus:v3.14.0-distroless": "operator",
        f"{MIRROR}/quay.io/prometheus/alertmanager:v0.34.0": "operator",
        f"{MIRROR}/quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1": "operator",
        f"{MIRROR}/docker.io/rayproject/ray:2.60.0-py311-cpu": "operator",
        # ours, and naomi's own images (the Flyte task pods get theirs through the registration Job)
        f"{MIRROR}/ghcr.io/naomi-mlops/naomi-minio:0.1.0": "pulumi",
        f"{MIRROR}/ghcr.io/naomi-mlops/naomi-mlflow:0.1.0": "pulumi",
    }
    assert {
        image: origin for image, origin in expected.items() if origin not in images.get(image, set())
    } == {}
    assert "operator" in images[f"{MIRROR}/ghcr.io/naomi-mlops/naomi-workloads:0.1.0"]  # Flyte task pods


def _transformed(transform: pulumi.ResourceTransformation, type_: str, props: dict[str, Any]) -> Any:
    args = pulumi.ResourceTransformationArgs(None, type_, "x", props, pulumi.ResourceOptions())  # type: ignore[arg-type]
    result = transform(args)
    return None if result is None else result.props


def test_images_built_by_the_stack_stay_in_its_registry(evaluations: dict[str, Evaluation]) -> None:
    registry = _build_registry(evaluations["lab-ha"])  # lab-ha builds naomi's images into its registry
    assert registry == "registry.naomi.lab.internal/"
    transform = mirror_transformation(ImageMirror(MIRROR), keep=(registry.rstrip("/"),))
    built = f"{registry}naomi-ray:0.1.0-abc@sha256:12"
    pod = {"spec": {"containers": [{"image": built}, {"image": "postgres:17"}]}}
    assert _transformed(transform, "kubernetes:core/v1:Pod", pod)["spec"]["containers"] == [
        {"image": built},
        {"image": f"{MIRROR}/docker.io/library/postgres:17"},
    ]
    # Providers, commands and CRDs (schemas, no image pulled) are left as they are.
    for type_ in (
        "pulumi:providers:kubernetes",
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
    ):
        assert _transformed(transform, type_, {"image": "x"}) is None


def test_image_references_are_read_as_a_container_runtime_reads_them() -> None:
    assert [
        qualified(r)
        for r in (
            "postgres:17",
            "docker.io/traefik:v3",
            "index.docker.io/x",
            "grafana/grafana:1@sha256:ab",
            "quay.io/a/b:1",
            "localhost:5000/x:1",
            "Registry/x",
        )
    ] == [
        "docker.io/library/postgres:17",
        "docker.io/library/traefik:v3",
        "docker.io/library/x",
        "docker.io/grafana/grafana:1@sha256:ab",
        "quay.io/a/b:1",
        "localhost:5000/x:1",
        "Registry/x",  # upper case: a host, never a Docker Hub namespace
    ]
    mirror = ImageMirror("registry.lan/up")
    assert mirror.image("postgres:17") == "registry.lan/up/docker.io/library/postgres:17"
    assert mirror.image(mirror.image("postgres:17")) == mirror.image("postgres:17")
    assert mirror.source(mirror.image("quay.io/a/b:1")) == "quay.io/a/b:1"
    with pytest.raises(ValueError) as raised:
        ImageMirror("mirror/path")
    assert str(raised.value) == (
        "ImageMirror.prefix must start with a registry host (a name with a dot or a port, or localhost), "
        "e.g. registry.lan:5000/mirror (got 'mirror/path')"
    )


def test_chart_image_blocks_name_the_charts_own_defaults(archives: Path) -> None:
    """infra.images.CHART_IMAGES against each chart's values.yaml at the pinned version."""
    archive_of = {
        "traefik": "traefik-41.3.0.tgz",
        "kuberay-operator": "kuberay-operator-1.7.0.tgz",
        "flyte-binary": "flyte-binary-v1.16.8.tgz",
        "kube-prometheus-stack": "kube-prometheus-stack-88.5.3.tgz",
    }
    subcharts = {"grafana": "charts/grafana", "kube-state-metrics": "charts/kube-state-metrics"}
    assert set(CHART_IMAGES) == set(archive_of)
    for chart, images in CHART_IMAGES.items():
        with tarfile.open(archives / archive_of[chart]) as tar:

            def values(folder: str, tar: tarfile.TarFile = tar, chart: str = chart) -> dict[str, Any]:
                member = tar.extractfile(f"{chart}/{folder}values.yaml")
                assert member is not None
                loaded: dict[str, Any] = yaml.safe_load(member.read())
                return loaded

            for image in images:
                path = list(image.path)
                folder = ""
                if chart == "kube-prometheus-stack" and path[0] in subcharts:
                    folder, path = f"{subcharts[path[0]]}/", path[1:]
                block = values(folder)
                for key in path:
                    block = block[key]
                if image.style == "registry":
                    # traefik's registry is null in values.yaml: its template defaults to docker.io
                    assert (block.get("registry") or "docker.io") == image.default_registry, image
                    assert set(block) >= {"repository", "tag"}, image
                else:
                    assert block["repository"] == image.default_repository, image


def test_chart_values_keep_what_the_component_set() -> None:
    values = {"deployment": {"image": {"repository": "cr.flyte.org/flyteorg/x", "tag": "v1"}}}
    mirrored = mirror_chart_values("flyte-binary", values, ImageMirror(MIRROR))
    assert mirrored["deployment"]["image"] == {"repository": f"{MIRROR}/cr.flyte.org/flyteorg/x", "tag": "v1"}
    assert mirrored["deployment"]["waitForDB"]["image"] == {
        "repository": f"{MIRROR}/docker.io/library/postgres"
    }
    assert values == {"deployment": {"image": {"repository": "cr.flyte.org/flyteorg/x", "tag": "v1"}}}


# --- config ----------------------------------------------------------------------------------


def _config_error(edit: Callable[[dict[str, Any]], None]) -> str:
    config, secrets, _ = stack_config(PROJECT_DIR, "edge-lab")
    keys = {key: json.loads(value) for key, value in config.items() if value.startswith("{")}
    edit(keys)
    with pytest.raises(ConfigError) as raised:
        load_stack_config({**config, **{k: json.dumps(v) for k, v in keys.items()}}, set(secrets))
    return str(raised.value)


def test_config_refuses_what_would_not_reach_a_mirror_or_a_cache() -> None:
    def mirror(value: str) -> Callable[[dict[str, Any]], None]:
        return lambda keys: keys["naomi:images"].update(mirror=value)

    assert _config_error(mirror("mirror/naomi")).startswith(
        "invalid stack config: naomi:images.mirror: must match ^(localhost|[a-z0-9-]+(\\.[a-z0-9-]+)+|"
    )
    assert _config_error(mirror("mirror/naomi")).endswith('(got "mirror/naomi")')
    assert _config_error(lambda keys: keys.update({"naomi:charts": {"source": "cache"}})) == (
        "invalid stack config: naomi:charts.cache: required with source 'cache': the folder naomi charts "
        "pull --cache filled"
    )
    assert _config_error(lambda keys: keys.update({"naomi:charts": {"cache": "charts"}})) == (
        "invalid stack config: naomi:charts.cache: only used with source 'cache'; with source 'repository' "
        "and crds 'program' the CRDs come from the machine's chart cache ($NAOMI_CHARTS, else ~/.cache/naomi/charts)"
    )


# --- releases from the chart cache --------------------------------------------------------------


def _releases(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    return {
        str(r.inputs["name"]): r.inputs
        for r in evaluation.records
        if r.type == "kubernetes:helm.sh/v3:Release"
    }


def test_releases_point_at_the_cache_archives(
    air_gapped: tuple[Evaluation, Rendered], renders: dict[str, Rendered]
) -> None:
    """A cache relative to the project root reaches each release relative to stacks/, where
    Pulumi runs the program and its providers; the render shows chart, version and digest."""
    evaluation, rendered = air_gapped
    releases = _releases(evaluation)
    assert {name: (inputs["chart"], inputs.get("repositoryOpts")) for name, inputs in releases.items()} == {
        "traefik": ("../../shared/reference/chart-archives/traefik-41.3.0.tgz", None),
        "kuberay-operator": ("../../shared/reference/chart-archives/kuberay-operator-1.7.0.tgz", None),
        "flyte-binary": ("../../shared/reference/chart-archives/flyte-binary-v1.16.8.tgz", None),
        "monitoring": ("../../shared/reference/chart-archives/kube-prometheus-stack-88.5.3.tgz", None),
    }
    for inputs in releases.values():
        assert (PROJECT_DIR / "stacks" / inputs["chart"]).is_file()
    traefik = yaml.safe_load(rendered.files["helm/naomi-gateway-traefik.yaml"])
    assert {k: traefik[k] for k in ("chart", "archive", "repository", "version", "sha256")} == {
        "chart": "traefik",
        "archive": "traefik-41.3.0.tgz",
        "repository": None,
        "version": "41.3.0",
        "sha256": "4dd4d1bcc597265ca31865afcda4ab90aecbc059154b33a2ddcdb76fffb98571",
    }
    # The same objects as from the repository (the same archives; only the images differ).
    assert sorted(p for p in rendered.files if p.startswith(("k8s/", "crds/"))) == sorted(
        p for p in renders["edge-lab"].files if p.startswith(("k8s/", "crds/"))
    )


def test_a_cache_gives_the_release_its_archive_by_path(archives: Path) -> None:
    absolute = ChartSource(mode="cache", cache=archives)
    assert absolute.release_inputs(TRAEFIK) == {
        "chart": str(archives / "traefik-41.3.0.tgz"),
        "version": "41.3.0",
    }
    relative = ChartSource(mode="cache", cache=archives, program_dir=PROJECT_DIR / "stacks")
    assert relative.release_inputs(TRAEFIK)["chart"] == os.path.relpath(
        archives / "traefik-41.3.0.tgz", PROJECT_DIR / "stacks"
    )
    assert ChartSource(cache=archives).release_inputs(TRAEFIK) == {
        "chart": "traefik",
        "version": "41.3.0",
        "repository_opts": {"repo": TRAEFIK.repository},
    }


def _failure(evaluate_it: Callable[[], object]) -> str:
    with pytest.raises(Exception) as raised:  # pulumi.RunError, as `pulumi preview` prints it
        evaluate_it()
    assert type(raised.value).__name__ == "RunError"
    return str(raised.value)


def test_a_missing_archive_stops_preview_with_the_chart_and_the_fix(tmp_path: Path, archives: Path) -> None:
    cache = tmp_path / "charts"
    cache.mkdir()
    for name in ("kube-prometheus-stack-88.5.3.tgz", "kuberay-operator-1.7.0.tgz", "traefik-41.3.0.tgz"):
        (cache / name).symlink_to(archives / name)
    source_cache = {"naomi:charts": {"source": "cache", "cache": str(cache)}}
    message = _failure(lambda: _evaluate("edge-lab", lambda keys: keys.update(source_cache), preview=True))
    assert message == (
        f"naomi:charts: flyte-binary v1.16.8 is not in the chart cache {cache} (naomi:charts.source is "
        f"cache: the release installs this archive): run naomi charts pull --cache {cache}"
    )


def test_the_crds_need_the_cache_with_charts_from_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAOMI_CHARTS", str(tmp_path))
    program_crds = {"naomi:charts": {"crds": "program"}}
    message = _failure(lambda: _evaluate("dev", lambda keys: keys.update(program_crds)))
    assert message == (
        f"naomi:charts: kuberay-operator 1.7.0 is not in the chart cache {tmp_path} (its CRDs are applied "
        f"from the archive before the release): run naomi charts pull --cache {tmp_path}"
    )


def test_naomi_render_without_the_charts_stops_with_the_fix(tmp_path: Path) -> None:
    """Default CRDs (program): the program reads the operator charts' CRDs from the archives, so
    without them it stops at once with the command that fetches them (nothing is written)."""
    args = ["render", "--stack", "dev", "--charts", str(tmp_path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: naomi:charts: kuberay-operator 1.7.0 is not in the chart cache {tmp_path} (its CRDs are "
        f"applied from the archive before the release): run naomi charts pull --cache {tmp_path}"
    )
    assert not (tmp_path / "out").exists()


# --- naomi images list -------------------------------------------------------------------------


def test_images_list_prints_what_to_mirror_with_its_architectures(
    air_gapped: tuple[Evaluation, Rendered], archives: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`naomi images list` over the air-gapped edge-lab (its evaluation and render, evaluated once
    for this module rather than again)."""
    from naomi.render import engine, tree

    evaluation, rendered = air_gapped
    monkeypatch.setattr(engine, "evaluate_stack", lambda project, stack: evaluation)
    monkeypatch.setattr(tree, "render", lambda evaluation, charts_cache: rendered)
    result = CliRunner().invoke(app, ["images", "list", "--stack", "edge-lab", "--charts", str(archives)])
    assert result.exit_code == 0, result.stderr[-1500:]
    lines = result.stdout.splitlines()
    assert lines[0] == "# source\tarchitectures\tpulled as"
    rows = {source: (arches, pulled) for source, arches, pulled in (line.split("\t") for line in lines[1:])}
    assert result.stderr == f"edge-lab: {len(rows)} images, mirror {MIRROR}\n"
    assert len(rows) == len(lines) - 1 >= 15  # each image once
    assert all(pulled == f"{MIRROR}/{source}" for source, (_, pulled) in rows.items())
    assert not any(source.startswith(MIRROR) for source in rows)
    # From the edge-lab inventory: Ray pools and Prometheus only on x86, the generic model server
    # only on the Pis (qoe-edge is pinned to arm64), the rest may land anywhere.
    assert rows["docker.io/rayproject/ray:2.60.0-py311-cpu"][0] == "amd64"
    assert rows["quay.io/prometheus/prometheus:v3.14.0-distroless"][0] == "amd64"
    assert rows["ghcr.io/naomi-mlops/naomi-model-server:0.1.0"][0] == "arm64"
    assert rows["docker.io/library/traefik:v3.7.11"][0] == "amd64,arm64"
    assert "docker.io/library/postgres:17.6-bookworm" in rows  # ours and flyte's wait-for-db: one copy


def test_images_list_refuses_an_incomplete_list(
    evaluations: dict[str, Evaluation],
    renders: dict[str, Rendered],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chart missing from the render cache: its pods' images would be missing from the list."""
    from naomi.render import engine, tree

    partial = dataclasses.replace(renders["dev"], charts_missing=["flyte-binary v1.16.8"])
    monkeypatch.setattr(engine, "evaluate_stack", lambda project, stack: evaluations["dev"])
    monkeypatch.setattr(tree, "render", lambda evaluation, charts_cache: partial)
    result = CliRunner().invoke(app, ["images", "list", "--stack", "dev", "--charts", str(tmp_path)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"error: charts missing from the cache {tmp_path}: flyte-binary v1.16.8; their images are unknown "
        f"(run: naomi charts pull --cache {tmp_path})\n",
    )


def test_the_mirror_list_of_an_existing_cluster_needs_both_architectures(
    renders: dict[str, Rendered], evaluations: dict[str, Evaluation]
) -> None:
    """No inventory (dev): only the pods' `kubernetes.io/arch` constraints narrow what they need."""
    uses = image_uses(cluster_model(renders["dev"]), inventory(evaluations["dev"]))
    entries = mirror_list(uses, mirror_of(evaluations["dev"].config))
    assert entries and all(entry.source == entry.pulled_as for entry in entries)
    by_source = {entry.source: entry.architectures for entry in entries}
    assert by_source["docker.io/rayproject/ray:2.60.0-py311-cpu"] == ("amd64",)  # pinned by its selector
    assert by_source["quay.io/kuberay/operator:v1.7.0"] == ("amd64", "arm64")
    assert len(by_source) == len(entries)  # each image once
    assert mirror_table(entries).count("\n") == len(entries) + 1


def test_a_mirrors_copy_is_judged_by_the_evidence_for_what_it_copies(
    air_gapped: tuple[Evaluation, Rendered],
) -> None:
    """naomi images check over a mirrored stack: the copies carry their upstream's evidence."""
    copy = f"{MIRROR}/quay.io/prometheus/alertmanager:v0.34.0"
    assert image_evidence(copy) is image_evidence("quay.io/prometheus/alertmanager:v0.34.0") is not None
    assert image_evidence(f"{MIRROR}/quay.io/prometheus/alertmanager:v9.9.9") is None
    evaluation, rendered = air_gapped
    uses = image_uses(cluster_model(rendered), inventory(evaluation))
    assert [use.image for use in uses if image_evidence(use.image) is None] == []
