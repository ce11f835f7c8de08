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
# MinIO community images are no longer published upstream (source-only since Oct 2025);
# pgsty/minio is a maintained, multi-arch rebuild of the same server. Configurable per stack.
MINIO_IMAGE = "docker.io/pgsty/minio:RELEASE.2025-12-03T12-00-00Z"
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
NAOMI_IMAGES = ("naomi-ray", "naomi-workloads", "naomi-model-server", "naomi-mlflow")
PREBUILT_IMAGES = {name: f"{NAOMI_IMAGE_REPOSITORY}/{name}:{NAOMI_VERSION}" for name in NAOMI_IMAGES}
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
    """Known multi-arch (or arm64) image: a pinned third-party one, or one of naomi's own builds."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return image in ARM64_CAPABLE_IMAGES or name in NAOMI_IMAGES
