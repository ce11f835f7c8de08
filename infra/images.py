"""naomi's own container images: built multi-arch with buildx and deployed by digest, or pinned.

Five images (build contexts in `images/`): `naomi-ray` (the cluster's Ray and Python with the
workload dependencies and `workloads/` baked in: Ray pools, RayJobs, RayServices), `naomi-workloads`
(Flyte task pods, the registration and seed-data Jobs, the trigger receiver) and
`naomi-model-server` (serving runtime `deployment`), `naomi-mlflow` (the tracking server and the
operations Jobs) and `naomi-minio` (the MinIO server built from source). With `images.build` each is a
pulumi-docker-build `Image` for linux/amd64 and linux/arm64, pushed to `images.registry` under a tag
derived from a hash of its build inputs, and consumers get `ref` (`<tag>@sha256:<digest>`), so a
code change rolls exactly the workloads that run it. Without it, the pinned release builds in
`infra.versions.PREBUILT_IMAGES` are used.

Air-gapped installs (`naomi:images.mirror`): every image the cluster pulls is rewritten to
`<mirror>/<registry>/<repository>[:tag][@digest]`, the upstream reference normalised as a container
runtime reads it (`qualified`), so the mirror holds each image under its full upstream name and
`naomi images list` can print the pairs to copy. Three places carry images, and each is rewritten
here: naomi's own images at their source (`Images.refs`, also passed on in environment variables
such as the Flyte task image); every `image` string of the Kubernetes objects the program
registers (`mirror_transformation`, registered once by the stack program, so components keep
their pinned references from `infra.versions`); and the image keys of each chart's values
(`mirror_chart_values`, `CHART_IMAGES`), which the charts and the operators they run turn into
pods.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker_build as docker_build

from infra.charts import CONFIG_GROUP_TYPE, CRD_TYPE
from infra.versions import IMAGE_PLATFORMS, NAOMI_IMAGES, NAOMI_VERSION, PREBUILT_IMAGES

# What goes into each image besides its own folder under images/ (relative to the project root).
SOURCES: dict[str, tuple[str, ...]] = {
    "naomi-ray": ("workloads",),
    "naomi-workloads": ("workloads",),
    "naomi-model-server": ("workloads/common",),
    "naomi-mlflow": (),
    "naomi-minio": (),
}
FOLDERS = {
    "naomi-ray": "ray",
    "naomi-workloads": "workloads",
    "naomi-model-server": "model-server",
    "naomi-mlflow": "mlflow",
    "naomi-minio": "minio",
}


def tree_hash(root: Path, folders: tuple[str, ...]) -> str:
    """sha256 over the files under `folders` (paths and bytes, sorted; caches and bytecode excluded)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def content_hash(root: Path, name: str) -> str:
    """The image's build inputs: its folder under images/, the pinned requirements, its sources."""
    return tree_hash(root, (f"images/{FOLDERS[name]}", "images/requirements", *SOURCES[name]))


# --- mirror rewrite ------------------------------------------------------------------------

DOCKER_HUB = "docker.io"
# A registry host as a container runtime recognises one in the first path component of a
# reference: it contains "." or ":" or is "localhost" (github.com/distribution/reference
# normalize.go, splitDockerDomain; containerd and the kubelet parse references with it).
_HOST = re.compile(r"^(localhost|[^/]*[.:][^/]*)$")


def _split(reference: str) -> tuple[str, str]:
    """(name, suffix): the repository name and its `:tag`/`@digest` part, as written."""
    name, at, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon:]
    else:
        tag = ""
    return name, tag + (at + digest if at else "")


def qualified(reference: str) -> str:
    """`reference` with its registry spelled out, as the runtime pulls it: no registry host means
    Docker Hub, and a one-part Docker Hub name its `library/` namespace (splitDockerDomain:
    `postgres:17` -> `docker.io/library/postgres:17`, `docker.io/traefik` ->
    `docker.io/library/traefik`; `index.docker.io` is Docker Hub's legacy name)."""
    name, suffix = _split(reference)
    first, slash, rest = name.partition("/")
    # A first component is a registry host when it looks like one or has upper case letters
    # (which a Docker Hub namespace never has).
    if slash and (_HOST.match(first) or first != first.lower()):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name
    if host == "index.docker.io":
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return f"{host}/{path}{suffix}"


@dataclass(frozen=True)
class ImageMirror:
    """A registry (host, optionally a path below it) holding copies of every upstream image."""

    prefix: str

    def __post_init__(self) -> None:
        first = self.prefix.split("/", 1)[0]
        if not _HOST.match(first) or self.prefix.endswith("/"):
            raise ValueError(
                f"ImageMirror.prefix must start with a registry host (a name with a dot or a port, or "
                f"localhost), e.g. registry.lan:5000/mirror (got {self.prefix!r})"
            )

    def holds(self, reference: str) -> bool:
        return reference.startswith(f"{self.prefix}/")

    def image(self, reference: str) -> str:
        """The mirror's copy of `reference` (a reference already in the mirror stays as it is)."""
        return reference if self.holds(reference) else f"{self.prefix}/{qualified(reference)}"

    def source(self, reference: str) -> str:
        """The upstream reference a mirrored one was copied from (others unchanged)."""
        return reference.removeprefix(f"{self.prefix}/") if self.holds(reference) else reference


@dataclass(frozen=True)
class ChartImage:
    """One image block in a chart's values and how the chart's template joins it.

    `registry` style: `{registry}/{repository}:{tag}` (the default registry given here);
    `repository` style: the repository holds the whole name (`{repository}:{tag}`).
    """

    path: tuple[str, ...]
    style: str  # "registry" | "repository"
    default_registry: str = ""
    default_repository: str = ""


# Every image block of the four charts that renders a container with our values, read from each
# chart's values.yaml and templates at the pinned version (tests/test_airgap.py checks these
# defaults against the chart archives and, over the whole render, that nothing pulls from
# upstream). traefik 41.3.0 templates/_helpers.tpl traefik.imageRegistry/imageRepository (null
# registry -> docker.io, repository -> traefik); kuberay-operator 1.7.0 and flyte-binary v1.16.8
# give the whole name in `repository`; kube-prometheus-stack 88.5.3 joins `registry` and
# `repository` (global.imageRegistry unset), as do its grafana 12.11.1 and kube-state-metrics
# 8.4.0 subcharts. The Prometheus and Alertmanager images reach their StatefulSets through the
# custom resources the chart renders; the config reloader through the operator's
# --prometheus-config-reloader flag.
CHART_IMAGES: dict[str, tuple[ChartImage, ...]] = {
    "traefik": (ChartImage(("image",), "registry", "docker.io", "traefik"),),
    "kuberay-operator": (ChartImage(("image",), "repository", "", "quay.io/kuberay/operator"),),
    "flyte-binary": (
        ChartImage(("deployment", "image"), "repository", "", "cr.flyte.org/flyteorg/flyte-binary"),
        ChartImage(("deployment", "waitForDB", "image"), "repository", "", "postgres"),
    ),
    "kube-prometheus-stack": (
        ChartImage(("prometheusOperator", "image"), "registry", "quay.io"),
        ChartImage(("prometheusOperator", "prometheusConfigReloader", "image"), "registry", "quay.io"),
        ChartImage(("prometheusOperator", "admissionWebhooks", "patch", "image"), "registry", "ghcr.io"),
        ChartImage(("prometheus", "prometheusSpec", "image"), "registry", "quay.io"),
        ChartImage(("alertmanager", "alertmanagerSpec", "image"), "registry", "quay.io"),
        ChartImage(("grafana", "image"), "registry", "docker.io", "grafana/grafana"),
        ChartImage(("grafana", "sidecar", "image"), "registry", "quay.io"),
        ChartImage(("kube-state-metrics", "image"), "registry", "registry.k8s.io"),
    ),
}
# The repositories of the kube-prometheus-stack blocks whose values do not name one here: the
# chart's defaults (values.yaml), needed to write a Docker Hub name with its library/ part.
_DEFAULT_REPOSITORIES = {
    ("prometheusOperator", "image"): "prometheus-operator/prometheus-operator",
    (
        "prometheusOperator",
        "prometheusConfigReloader",
        "image",
    ): "prometheus-operator/prometheus-config-reloader",
    ("prometheusOperator", "admissionWebhooks", "patch", "image"): "jkroepke/kube-webhook-certgen",
    ("prometheus", "prometheusSpec", "image"): "prometheus/prometheus",
    ("alertmanager", "alertmanagerSpec", "image"): "prometheus/alertmanager",
    ("grafana", "sidecar", "image"): "kiwigrid/k8s-sidecar",
    ("kube-state-metrics", "image"): "kube-state-metrics/kube-state-metrics",
}


def mirror_chart_values(chart: str, values: Mapping[str, Any], mirror: ImageMirror) -> dict[str, Any]:
    """`values` with every image block of `chart` pointing at the mirror (tags kept)."""
    result: dict[str, Any] = _copy(values)
    for image in CHART_IMAGES.get(chart, ()):
        block = result
        for key in image.path:
            block = block.setdefault(key, {})
        repository = str(
            block.get("repository") or image.default_repository or _DEFAULT_REPOSITORIES[image.path]
        )
        if image.style == "repository":
            if not mirror.holds(repository):
                block["repository"] = mirror.image(repository)
            continue
        registry = str(block.get("registry") or image.default_registry)
        if mirror.holds(registry):
            continue
        # The runtime's reading of `<registry>/<repository>`, then split back into the two keys.
        name, _ = _split(qualified(f"{registry}/{repository}"))
        host, _, path = name.partition("/")
        block["registry"] = f"{mirror.prefix}/{host}"
        block["repository"] = path
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _mirrored_images(value: Any, rewrite: Any) -> Any:
    """Every string under an `image` key rewritten (containers, KubeRay's autoscalerOptions);
    Outputs rewritten once known."""
    if isinstance(value, pulumi.Output):
        return value.apply(lambda inner: _mirrored_images(inner, rewrite))
    if isinstance(value, Mapping):
        return {
            key: (_rewrite_image(item, rewrite) if key == "image" else _mirrored_images(item, rewrite))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mirrored_images(item, rewrite) for item in value]
    return value


def _rewrite_image(value: Any, rewrite: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return value.apply(lambda inner: _rewrite_image(inner, rewrite))
    return rewrite(value) if isinstance(value, str) else _mirrored_images(value, rewrite)


RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


def mirror_transformation(mirror: ImageMirror, keep: tuple[str, ...] = ()) -> pulumi.ResourceTransformation:
    """A stack transformation pointing every image of every Kubernetes resource at `mirror`:
    `image` fields of the objects and the image keys of each Helm release's values.

    Images under a registry in `keep` (the registry `images.build` pushes to) stay as they are.
    It runs in the SDK before registration (pulumi `ResourceOptions.transformations`, applied to
    every resource below the stack), so `pulumi up` and the offline render see the same inputs;
    the newer engine-side `transforms` do not run under the mock monitor the render uses
    (pulumi 3.272 runtime/mocks.py).
    """

    def rewrite(image: str) -> str:
        if any(image.startswith(f"{registry}/") for registry in keep):
            return image
        return mirror.image(image)

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.type_.startswith("kubernetes:") or args.type_ in (CRD_TYPE, CONFIG_GROUP_TYPE):
            return None  # providers, commands, images; the charts' CRDs name no image to pull
        props = dict(args.props)
        if args.type_ == RELEASE_TYPE:
            chart = release_chart_name(str(props.get("chart", "")), str(props.get("version", "")))
            values: Any = props.get("values")
            if isinstance(values, pulumi.Output):
                props["values"] = values.apply(lambda v: mirror_chart_values(chart, v or {}, mirror))
            else:
                props["values"] = mirror_chart_values(chart, values or {}, mirror)
        else:
            props = _mirrored_images(props, rewrite)
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    return transform


def release_chart_name(chart: str, version: str) -> str:
    """The chart a Release installs: its `chart` input, or the archive's name for a local
    `<name>-<version>.tgz` (infra.charts, source `cache`)."""
    file_name = chart.rsplit("/", 1)[-1]
    suffix = f"-{version}.tgz"
    return file_name.removesuffix(suffix) if file_name.endswith(suffix) else chart


@dataclass(frozen=True, kw_only=True)
class ImagesArgs:
    build: bool
    registry: str
    project_root: Path
    mirror: ImageMirror | None = None  # prebuilt images are pulled from this mirror

    def __post_init__(self) -> None:
        if self.build and not (self.project_root / "images").is_dir():
            raise ValueError(f"ImagesArgs.project_root: no images/ folder under {self.project_root}")


class Images(pulumi.ComponentResource):
    """`refs[name]`: the reference every consumer deploys (a digest when built here)."""

    refs: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:images:Images", name, None, opts)
        self.refs = {}
        for image in NAOMI_IMAGES:
            if not args.build:
                prebuilt = PREBUILT_IMAGES[image]
                reference = args.mirror.image(prebuilt) if args.mirror is not None else prebuilt
                self.refs[image] = pulumi.Output.from_input(reference)
                continue
            tag = f"{args.registry}/{image}:{NAOMI_VERSION}-{content_hash(args.project_root, image)[:12]}"
            built = docker_build.Image(
                f"{name}-{image}",
                tags=[tag],
                push=True,
                platforms=[docker_build.Platform(p) for p in IMAGE_PLATFORMS],
                # Relative to the project root, where Pulumi runs the program: renders and
                # previews do not depend on where the repository is checked out.
                context=docker_build.BuildContextArgs(location="."),
                dockerfile=docker_build.DockerfileArgs(location=f"images/{FOLDERS[image]}/Dockerfile"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.refs[image] = built.ref
        self.register_outputs({"refs": self.refs})
