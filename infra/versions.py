"""Every chart, repository, version and image tag the platform deploys, pinned in one place.

Upgrading a component is a one-line change here, and the render diff of a pull request shows
exactly what it changes. Images are official multi-arch builds unless noted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Chart:
    name: str
    repository: str
    version: str
    # sha256 (hex) of the chart archive the repository serves for `version`. `naomi charts pull`
    # refuses an archive with another digest, and the render refuses a cached one. The pins are
    # set on the first online pull (`naomi charts pull --pin` prints the lines); until then None
    # checks nothing. The offline reference archives (../shared/reference/chart-archives) are
    # repackaged from the sources, so their digests are not the repositories' and must not be
    # pinned here.
    digest: str | None = None


# digest=None: set on the first online pull (paste the lines `naomi charts pull --pin` prints).
KUBERAY_OPERATOR = Chart(
    name="kuberay-operator",
    repository="https://ray-project.github.io/kuberay-helm/",
    version="1.7.0",
    digest=None,
)
FLYTE_BINARY = Chart(
    name="flyte-binary", repository="https://flyteorg.github.io/flyte", version="v1.16.8", digest=None
)
KUBE_PROMETHEUS_STACK = Chart(
    name="kube-prometheus-stack",
    repository="https://prometheus-community.github.io/helm-charts",
    version="88.5.3",
    digest=None,
)
TRAEFIK = Chart(name="traefik", repository="https://traefik.github.io/charts", version="41.3.0", digest=None)

RAY_VERSION = "2.60.0"
RAY_PYTHON = "3.11"
# Ray publishes separate tags per architecture; both carry the same Ray and Python.
RAY_IMAGES = {
    "amd64": f"docker.io/rayproject/ray:{RAY_VERSION}-py311-cpu",
    "arm64": f"docker.io/rayproject/ray:{RAY_VERSION}-py311-cpu-aarch64",
}

# Also the image of every Job step that runs a shell (`/bin/sh -c`: the databases Job, the backup's
# dump, the restore) and of the postStart hook: docker-library/postgres `17/bookworm/Dockerfile`
# is `FROM debian:bookworm-slim` (dash as /bin/sh, bash) with postgresql-17's psql, pg_dump,
# pg_restore and pg_isready on PATH (`ENV PATH $PATH:/usr/lib/postgresql/$PG_MAJOR/bin`).
POSTGRES_IMAGE = "docker.io/library/postgres:17.6-bookworm"
# No object-store client image: `docker.io/pgsty/mc:RELEASE.2025-08-13T08-35-41Z` was not a tag
# that repository publishes, and nothing showed it has the /bin/sh the Jobs ran. The object-store
# setup Job, the backup upload and the restore fetch run Python (workloads/ops, minio-py) on
# naomi-mlflow, which this repository builds (images/mlflow: python:3.11-slim-bookworm).
# The MLflow server runs naomi's own image (images/mlflow: the auth app, the Postgres and S3
# drivers) built from the same MLflow release every client locks (uv.lock), so server and clients
# agree on routes and host validation; tests check the three pins are equal.
MLFLOW_VERSION = "3.17.2"
REDIS_IMAGE = "docker.io/library/redis:7.4.6-alpine"
FLYTE_IMAGE = "cr.flyte.org/flyteorg/flyte-binary-release:v1.16.8"

# naomi's own images (images/<name>/Dockerfile), built for linux/amd64 and linux/arm64. With
# `images.build` the stack builds them into the configured registry and deploys them by digest;
# otherwise these release builds (published by .github/workflows/images.yml) are used.
NAOMI_VERSION = "0.1.0"
NAOMI_IMAGE_REPOSITORY = "ghcr.io/naomi-mlops"
NAOMI_IMAGES = ("naomi-ray", "naomi-workloads", "naomi-model-server", "naomi-mlflow", "naomi-minio")
PREBUILT_IMAGES = {name: f"{NAOMI_IMAGE_REPOSITORY}/{name}:{NAOMI_VERSION}" for name in NAOMI_IMAGES}
# MinIO: community images are no longer published upstream (source-only since October 2025), and
# nothing read shows pgsty/minio (the maintained fork) published an image under the release we pin
# (IMAGE_EVIDENCE below, strength "none"). naomi-minio builds that release from source
# (images/minio/Dockerfile: the tag, checked against its commit). `objectStore.image` overrides it.
MINIO_RELEASE = "RELEASE.2025-12-03T12-00-00Z"
MINIO_IMAGE = PREBUILT_IMAGES["naomi-minio"]
IMAGE_PLATFORMS = ("linux/amd64", "linux/arm64")

# Images published for both linux/amd64 and linux/arm64. Anything else (the amd64 Ray tag) must
# carry a `kubernetes.io/arch: amd64` node selector; tests check every rendered pod against this.
ARM64_CAPABLE_IMAGES = frozenset(
    {
        POSTGRES_IMAGE,
        MINIO_IMAGE,
        REDIS_IMAGE,
        FLYTE_IMAGE,
        RAY_IMAGES["arm64"],
    }
)


def arm64_capable(image: str) -> bool:
    """Evidence (IMAGE_EVIDENCE below, or naomi's own build) shows the image published for
    linux/arm64; an image without an entry, or whose entry does not show arm64, is not."""
    evidence = image_evidence(image)
    return evidence is not None and evidence.shows("linux/arm64")


# --- Evidence for every image that will run ------------------------------------------------------
# No registry is reachable where this table is kept up to date, so each entry records what the
# evidence is (repository + path + tag or commit, read on `checked`), what it shows (`platforms`,
# `shells`) and how strong it is (`strength`, one of EVIDENCE_STRENGTHS). Entries are keyed by the
# normalised reference as a literal string, never by the pin's constant: bumping a pin leaves the
# new reference without evidence, and tests/test_image_evidence.py fails until someone checks it.
# `naomi images check` compares the table with the registries for anyone with network access.

EVIDENCE_CHECKED = "2026-12-01"

# How strong each kind of evidence is. All but "none" count as evidence that the image exists for
# the platforms listed; the table says which kind it is so a reviewer can judge.
EVIDENCE_STRENGTHS = {
    "registry": "the registry's manifest list for the reference, read by `naomi images check`",
    "official-images": "the Docker Official Images library file listing the tag's architectures "
    "(docker-library/official-images), from which the registry's index is built",
    "release-config": "the upstream release build configuration at the pinned tag",
    "release-config-elsewhere": "the upstream release build configuration read at another commit "
    "than the pinned tag (the tag is not in the stored snapshot, or the repository is too large to fetch)",
    "own-build": "built by this repository for IMAGE_PLATFORMS (infra/images.py, .github/workflows/images.yml)",
    "none": "nothing found shows the reference is published, or the evidence contradicts it",
}

# Platforms in OCI index notation; `linux/arm64/v8` (the Official Images' arm64v8) is linux/arm64.
_OFFICIAL_ARCHITECTURES = {
    "amd64": "linux/amd64",
    "arm32v5": "linux/arm/v5",
    "arm32v6": "linux/arm/v6",
    "arm32v7": "linux/arm/v7",
    "arm64v8": "linux/arm64/v8",
    "i386": "linux/386",
    "mips64le": "linux/mips64le",
    "ppc64le": "linux/ppc64le",
    "riscv64": "linux/riscv64",
    "s390x": "linux/s390x",
}


def official_platforms(architectures: str) -> tuple[str, ...]:
    """An Official Images `Architectures:` line as platforms: "amd64, arm64v8" -> linux/amd64, ..."""
    return tuple(_OFFICIAL_ARCHITECTURES[name.strip()] for name in architectures.split(","))


def canonical_platform(platform: str) -> str:
    """linux/arm64/v8 and linux/arm64 are the same platform (v8 is arm64's only variant)."""
    return platform.removesuffix("/v8") if platform.startswith("linux/arm64") else platform


@dataclass(frozen=True, kw_only=True)
class ImageEvidence:
    platforms: tuple[str, ...]  # what the evidence shows the reference is published for
    shells: tuple[str, ...] | None  # shells the image has ("sh", "bash"); () none; None not known
    source: str  # where the evidence was read: repository, path, tag or commit
    strength: str  # a key of EVIDENCE_STRENGTHS
    checked: str = EVIDENCE_CHECKED
    note: str = ""

    def __post_init__(self) -> None:
        if self.strength not in EVIDENCE_STRENGTHS:
            raise ValueError(f"unknown evidence strength {self.strength!r}")

    def shows(self, platform: str) -> bool:
        return self.strength != "none" and canonical_platform(platform) in {
            canonical_platform(p) for p in self.platforms
        }


IMAGE_EVIDENCE: dict[str, ImageEvidence] = {
    # Our pins (POSTGRES_IMAGE; also the chart's wait-for-db image, `postgres:17.6-bookworm`).
    "docker.io/library/postgres:17.6-bookworm": ImageEvidence(
        platforms=official_platforms("amd64, arm32v5, arm32v7, arm64v8, i386, mips64le, ppc64le, s390x"),
        shells=("sh", "bash"),
        source="docker-library/official-images library/postgres @ 0032e5c215325f5c4cc19a6568c4db154dfd8141 "
        "(last revision listing 17.6-bookworm); docker-library/postgres 17/bookworm/Dockerfile @ "
        "5ec89312491bdaa2c42377a65ec0af2ecb774480: FROM debian:bookworm-slim (dash as /bin/sh, bash)",
        strength="official-images",
    ),
    "docker.io/library/redis:7.4.6-alpine": ImageEvidence(
        platforms=official_platforms("amd64, arm32v6, arm32v7, arm64v8, i386, ppc64le, riscv64, s390x"),
        shells=("sh",),
        source="docker-library/official-images library/redis @ 157b4dd8e6a50b88288dc6e4ae6f7bdae090df03 "
        "(7.4.6-alpine = 7.4.6-alpine3.21, Directory 7.4/alpine): Alpine's BusyBox /bin/sh, no bash",
        strength="official-images",
        note="the Dockerfile at its GitCommit (redis/docker-library-redis 7d9ee3a9) is not in the stored "
        "snapshot; the shell follows from the alpine3.21 variant",
    ),
    "docker.io/library/traefik:v3.7.11": ImageEvidence(
        platforms=official_platforms("amd64, arm32v6, arm64v8, ppc64le, riscv64, s390x"),
        shells=("sh",),
        source="docker-library/official-images library/traefik @ 14195e19da4a729c4e1dd97b7ecc5279366b5bad; "
        "traefik/traefik-library-image v3.7/alpine/Dockerfile @ 697393828fd83340553fe3edd13e961a9c3b971a: "
        "FROM alpine:3.24",
        strength="official-images",
    ),
    # naomi verify's probe pods (naomi/verify.py PROBE_IMAGE): not in the render, checked online too.
    "docker.io/library/busybox:1.37.0": ImageEvidence(
        platforms=official_platforms(
            "amd64, arm32v5, arm32v7, arm64v8, i386, ppc64le, riscv64, s390x, arm32v6"
        ),
        shells=("sh",),
        source="docker-library/official-images library/busybox @ aea914b473a33c9dce3c25e72ee4bfb36008b6bf",
        strength="official-images",
    ),
    "docker.io/pgsty/minio:RELEASE.2025-12-03T12-00-00Z": ImageEvidence(
        platforms=(),
        shells=None,
        source="pgsty/minio @ d4cd4b433797e1cdcd2e46cc72df45b0897bdc0a (the tag's commit): no image build "
        "configuration (.gitignore lists .goreleaser.yml); pgsty/minio-docs source/reference/release-note.rst "
        "@ 6424605b64963cca517cb31d57c615deed616aee: this release produced apk, deb and rpm artifacts; "
        "GitHub CI/CD and Docker links arrive with RELEASE.2026-02-14T12-00-00Z",
        strength="none",
        note="nothing read shows a container image was published under this tag, for any platform",
    ),
    "docker.io/pgsty/mc:RELEASE.2025-08-13T08-35-41Z": ImageEvidence(
        platforms=(),
        shells=None,
        source="pgsty/mc @ b0021fd01ccb4a7d62cc1844a184265027ef2d9d (2026-08-06): its tags start at "
        "RELEASE.2026-03-13T08-57-32Z; Dockerfile.goreleaser at every tag: FROM ubi9/ubi-micro, "
        'ENTRYPOINT ["/usr/bin/mc"]',
        strength="none",
        note="not a tag pgsty/mc publishes (issue 13, defect 10); whether ubi-micro has /bin/sh was not checked",
    ),
    # Ray: separate tags per architecture. ray-project/ray is too large to fetch here, so its CI code
    # was read at master commits, not at the ray-2.60.0 tag.
    "docker.io/rayproject/ray:2.60.0-py311-cpu": ImageEvidence(
        platforms=("linux/amd64",),
        shells=("sh", "bash"),
        source="ray-project/ray ci/ray_ci/ray_image.py @ 9c928c19e0902f1cd829ae73da35aabd1aa2b270 (arch suffix "
        "empty for x86_64, -aarch64 otherwise), ci/ray_ci/automation/push_ray_image.py @ "
        "13af8d68ceb916facea7a98a20e9b1745bf1b441 (tag {version}-py311-cpu{arch suffix}); "
        'docker/base-deps/Dockerfile @ 00c1d517d7e52cd8bfa59c0a8d40a27ade4dca25: ubuntu, SHELL ["/bin/bash", "-c"]',
        strength="release-config-elsewhere",
    ),
    "docker.io/rayproject/ray:2.60.0-py311-cpu-aarch64": ImageEvidence(
        platforms=("linux/arm64",),
        shells=("sh", "bash"),
        source="ray-project/ray ci/ray_ci/ray_image.py @ 9c928c19e0902f1cd829ae73da35aabd1aa2b270 (-aarch64 "
        "for ARCHITECTURE aarch64, ci/ray_ci/configs.py); docker/base-deps/Dockerfile @ "
        "00c1d517d7e52cd8bfa59c0a8d40a27ade4dca25: ubuntu with bash",
        strength="release-config-elsewhere",
    ),
    "cr.flyte.org/flyteorg/flyte-binary-release:v1.16.8": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64"),
        shells=("sh", "bash"),
        source="flyteorg/flyte @ v1.16.8 (51877f899c9f95e0cb5efe90444eb0c6c6ea48a9): "
        ".github/workflows/v1-create_release.yml retags ghcr.io/flyteorg/flyte-binary:sha-<commit>, which "
        ".github/workflows/single-binary.yml builds for linux/arm64, linux/amd64; Dockerfile: FROM "
        "debian:bookworm-slim",
        strength="release-config",
        note="that cr.flyte.org serves ghcr.io/flyteorg was not checked",
    ),
    # The charts' default images at the pinned chart versions (what the render runs).
    "docker.io/grafana/grafana:13.2.0": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64", "linux/s390x", "linux/arm/v7"),
        shells=None,
        source="grafana/grafana .github/workflows/release-build.yml @ 0030f686ab5a70f8c607f8be46e8186839ec72c7 "
        "(build-docker-linux-amd64, -arm64, -s390x, -armv7)",
        strength="release-config-elsewhere",
        note="read on a main-branch revision, not the v13.2.0 tag; the image's shell was not checked "
        "(its containers run the entrypoint)",
    ),
    "quay.io/kiwigrid/k8s-sidecar:2.10.1": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/riscv64"),
        shells=("sh",),
        source="kiwigrid/k8s-sidecar @ 2.10.1 (a61c7ac31c826c5e35efe53fbbcae93e1791799f): docker-bake.hcl "
        "platforms, pushed by .github/workflows/release.yaml; Dockerfile FROM python:3.15.0b2-alpine3.22",
        strength="release-config",
    ),
    "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64", "linux/s390x"),
        shells=(),
        source="jkroepke/kube-webhook-certgen .goreleaser.yaml @ 8df5d968154043aa247c92796b0f965892c50ff8 "
        "(2025-12-26; the snapshot's newest tag is v1.7.3): dockers_v2 platforms; Dockerfile FROM scratch",
        strength="release-config-elsewhere",
    ),
    "quay.io/kuberay/operator:v1.7.0": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64"),
        shells=(),
        source="ray-project/kuberay @ v1.7.0 (59d663aeec13760646da3db9c1cf8cfe883e30b7): "
        ".github/workflows/image-release.yaml (Build MultiArch Image, quay.io/kuberay/operator:<tag>); "
        "ray-operator/Dockerfile.buildx FROM gcr.io/distroless/base-debian12:nonroot",
        strength="release-config",
    ),
    "quay.io/prometheus-operator/prometheus-operator:v0.93.1": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"),
        shells=("sh",),
        source="prometheus-operator/prometheus-operator @ release-0.93 (f8fafd475f3d132e239432ae6172de60a6cb6516, "
        "VERSION 0.93.0): .github/workflows/publish.yaml runs scripts/push-docker-image.sh for v* tags, "
        "CPU_ARCHS amd64 arm64 arm ppc64le s390x; Dockerfile FROM quay.io/prometheus/busybox-linux-<arch>",
        strength="release-config-elsewhere",
        note="the v0.93.1 tag is not in the stored snapshot",
    ),
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1": ImageEvidence(
        platforms=("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"),
        shells=("sh",),
        source="prometheus-operator/prometheus-operator @ release-0.93 (f8fafd475f3d132e239432ae6172de60a6cb6516): "
        "scripts/push-docker-image.sh (IMAGE_RELOADER, CPU_ARCHS); cmd/prometheus-config-reloader/Dockerfile "
        "FROM quay.io/prometheus/busybox-linux-<arch>",
        strength="release-config-elsewhere",
        note="the v0.93.1 tag is not in the stored snapshot",
    ),
    "quay.io/prometheus/prometheus:v3.14.0-distroless": ImageEvidence(
        platforms=(
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/ppc64le",
            "linux/riscv64",
            "linux/s390x",
        ),
        shells=(),
        source="prometheus/prometheus @ v3.14.0 (d7598b7141418fa35be2b5ec5d0fefb634199610): Makefile.common "
        "DOCKER_ARCHS and the -distroless variant manifest, published by .github/workflows/ci.yml "
        "publish_release; Dockerfile.distroless FROM gcr.io/distroless/static-debian13:nonroot",
        strength="release-config",
    ),
    "quay.io/prometheus/alertmanager:v0.34.0": ImageEvidence(
        platforms=("linux/amd64", "linux/arm/v7", "linux/arm64", "linux/ppc64le", "linux/s390x"),
        shells=("sh",),
        source="prometheus/alertmanager @ v0.34.0 (085f0ef7eb41da24cab8cd000f1345b6250f2edb): Makefile "
        "DOCKER_ARCHS, published by .github/workflows/release.yml; Dockerfile FROM "
        "quay.io/prometheus/busybox-linux-<arch>",
        strength="release-config",
    ),
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0": ImageEvidence(
        platforms=("linux/amd64", "linux/arm/v7", "linux/arm64", "linux/ppc64le", "linux/s390x"),
        shells=(),
        source="kubernetes/kube-state-metrics @ v2.20.0 (4ffeda2ef866b0fef372849825a803296483b336): Makefile "
        "ALL_ARCH and push-multi-arch (cloudbuild.yaml, gcr.io/k8s-staging-kube-state-metrics); Dockerfile "
        "FROM gcr.io/distroless/static-debian13",
        strength="release-config",
        note="the promotion from staging to registry.k8s.io was not checked",
    ),
}

# naomi's own images, under whatever registry and tag or digest the stack deploys them with.
_DEBIAN_SHELLS = ("sh", "bash")  # python:3.11.14-slim-bookworm: dash as /bin/sh, bash is Essential
OWN_IMAGE_EVIDENCE: dict[str, ImageEvidence] = {
    name: ImageEvidence(
        platforms=IMAGE_PLATFORMS,
        shells=_DEBIAN_SHELLS,  # images/ray starts from rayproject/ray (ubuntu, bash) likewise
        source=f"this repository: images/{name.removeprefix('naomi-')}/Dockerfile, infra/images.py, "
        ".github/workflows/images.yml (platforms linux/amd64,linux/arm64)",
        strength="own-build",
    )
    for name in NAOMI_IMAGES
}


def normalise_image_ref(ref: str) -> str:
    """The fully qualified reference a container runtime pulls: `postgres:17.6-bookworm` is
    `docker.io/library/postgres:17.6-bookworm` (distribution/reference normalize.go
    ParseNormalizedNamed: a first component without `.` or `:`, not `localhost` and all lower case
    is a Docker Hub path; one-component Hub names are under `library/`; no tag or digest is `latest`)."""
    name, _, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost" and first == first.lower()):
        domain, path = "docker.io", name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if ":" not in path.rsplit("/", 1)[-1] and not digest:
        path = f"{path}:latest"
    return f"{domain}/{path}" + (f"@{digest}" if digest else "")


def _evidence_entry(normalised: str) -> ImageEvidence | None:
    return IMAGE_EVIDENCE.get(normalised) or IMAGE_EVIDENCE.get(normalised.split("@", 1)[0])


def own_image_name(ref: str) -> str | None:
    """`naomi-ray` for any registry's naomi-ray image (tag or digest), else None."""
    last = normalise_image_ref(ref).split("@", 1)[0].rsplit("/", 1)[-1]
    name = last.split(":", 1)[0]
    return name if name in NAOMI_IMAGES else None


def image_evidence(ref: str) -> ImageEvidence | None:
    """The evidence for an image reference (a tag pinned with a digest too is judged by its tag).

    A registry mirror's copy (`naomi:images.mirror`: `<mirror>/<the fully qualified upstream
    reference>`, infra.images.ImageMirror) is judged by the upstream reference it copies: the
    offline runbook copies every platform of it (docs/runbooks/offline-install.md)."""
    normalised = normalise_image_ref(ref)
    found = _evidence_entry(normalised)
    # A copy's upstream reference is a suffix after one of its `/`s (the mirror's path).
    for position, character in enumerate(normalised):
        if found is not None:
            break
        if character == "/":
            found = _evidence_entry(normalised[position + 1 :])
    if found is not None:
        return found
    own = own_image_name(ref)
    return OWN_IMAGE_EVIDENCE[own] if own else None
