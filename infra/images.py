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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

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


@dataclass(frozen=True, kw_only=True)
class ImagesArgs:
    build: bool
    registry: str
    project_root: Path

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
                self.refs[image] = pulumi.Output.from_input(PREBUILT_IMAGES[image])
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
