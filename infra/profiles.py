"""Size profiles: requests, limits and volume sizes per platform component.

`edge` fits a small x86 box plus Raspberry Pis (whole platform <= 3 CPU / 6 GiB requested),
`lab` a few x86 machines, `full` a proper cluster. Components take a `Resources` value in
their args; the stack program picks it from the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ProfileName = Literal["edge", "lab", "full"]


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def spec(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: ProfileName
    object_store: Resources
    object_store_volume: str
    postgres: Resources
    postgres_volume: str
    mlflow: Resources
    gateway: Resources
    ray_operator: Resources
    ray_head: Resources
    redis: Resources
    flyte: Resources
    prometheus: Resources
    prometheus_volume: str
    alertmanager: Resources
    grafana: Resources
    prometheus_operator: Resources
    kube_state_metrics: Resources
    helper: Resources  # short-lived Jobs (bucket setup, backups)
    # How long each Helm release may take to become ready (and each of its hooks to finish) before
    # `pulumi up` fails it; pulumi-kubernetes' default is 300 s. A first install pulls every
    # image, one at a time per node (the kubelet's serializeImagePulls defaults to true), and a
    # Raspberry Pi unpacks layers onto its SD card slowly: kube-prometheus-stack's Grafana,
    # sidecar, kube-state-metrics, operator and two certificate hook Jobs, then Grafana's first
    # database migration, take several minutes there. Estimates, not measurements (no cluster
    # here): edge (Pis in the pools) 900 s, about three times that; lab and full (x86 nodes with
    # SSDs, wired) 600 s. A longer bound only delays the report of a real failure.
    release_timeout_seconds: int


_SMALL_HELPER = Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="256Mi")

PROFILES: dict[ProfileName, Profile] = {
    "edge": Profile(
        name="edge",
        object_store=Resources(cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"),
        object_store_volume="20Gi",
        postgres=Resources(cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"),
        postgres_volume="5Gi",
        mlflow=Resources(cpu_request="100m", memory_request="384Mi", cpu_limit="1", memory_limit="1Gi"),
        gateway=Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="256Mi"),
        ray_operator=Resources(
            cpu_request="50m", memory_request="128Mi", cpu_limit="500m", memory_limit="512Mi"
        ),
        # A head with num-cpus 0 runs GCS, the dashboard and (RayService) the Serve controller and
        # proxy: about 0.6-0.8 GiB resident; the limit leaves room for bursts.
        ray_head=Resources(cpu_request="250m", memory_request="1Gi", cpu_limit="1", memory_limit="2Gi"),
        redis=Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="256Mi"),
        flyte=Resources(cpu_request="200m", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"),
        # 7 days of a small cluster's series (a few thousand) fit well below 512 MiB.
        prometheus=Resources(
            cpu_request="200m", memory_request="512Mi", cpu_limit="1", memory_limit="1536Mi"
        ),
        prometheus_volume="10Gi",
        alertmanager=Resources(
            cpu_request="20m", memory_request="64Mi", cpu_limit="200m", memory_limit="128Mi"
        ),
        grafana=Resources(cpu_request="50m", memory_request="192Mi", cpu_limit="500m", memory_limit="384Mi"),
        prometheus_operator=Resources(
            cpu_request="50m", memory_request="96Mi", cpu_limit="300m", memory_limit="256Mi"
        ),
        kube_state_metrics=Resources(
            cpu_request="20m", memory_request="64Mi", cpu_limit="200m", memory_limit="192Mi"
        ),
        helper=_SMALL_HELPER,
        release_timeout_seconds=900,
    ),
    "lab": Profile(
        name="lab",
        object_store=Resources(cpu_request="250m", memory_request="512Mi", cpu_limit="2", memory_limit="2Gi"),
        object_store_volume="100Gi",
        postgres=Resources(cpu_request="250m", memory_request="512Mi", cpu_limit="2", memory_limit="1Gi"),
        postgres_volume="20Gi",
        mlflow=Resources(cpu_request="250m", memory_request="512Mi", cpu_limit="2", memory_limit="2Gi"),
        gateway=Resources(cpu_request="100m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi"),
        ray_operator=Resources(cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"),
        ray_head=Resources(cpu_request="500m", memory_request="2Gi", cpu_limit="2", memory_limit="4Gi"),
        redis=Resources(cpu_request="100m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi"),
        flyte=Resources(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="2Gi"),
        prometheus=Resources(cpu_request="500m", memory_request="2Gi", cpu_limit="2", memory_limit="4Gi"),
        prometheus_volume="50Gi",
        alertmanager=Resources(
            cpu_request="50m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi"
        ),
        grafana=Resources(cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"),
        prometheus_operator=Resources(
            cpu_request="100m", memory_request="128Mi", cpu_limit="500m", memory_limit="512Mi"
        ),
        kube_state_metrics=Resources(
            cpu_request="50m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi"
        ),
        helper=_SMALL_HELPER,
        release_timeout_seconds=600,
    ),
    "full": Profile(
        name="full",
        object_store=Resources(cpu_request="1", memory_request="2Gi", cpu_limit="4", memory_limit="8Gi"),
        object_store_volume="500Gi",
        postgres=Resources(cpu_request="1", memory_request="1Gi", cpu_limit="4", memory_limit="4Gi"),
        postgres_volume="100Gi",
        mlflow=Resources(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="4Gi"),
        gateway=Resources(cpu_request="250m", memory_request="256Mi", cpu_limit="2", memory_limit="1Gi"),
        ray_operator=Resources(cpu_request="200m", memory_request="512Mi", cpu_limit="2", memory_limit="2Gi"),
        ray_head=Resources(cpu_request="2", memory_request="8Gi", cpu_limit="4", memory_limit="16Gi"),
        redis=Resources(cpu_request="250m", memory_request="512Mi", cpu_limit="2", memory_limit="2Gi"),
        flyte=Resources(cpu_request="1", memory_request="2Gi", cpu_limit="4", memory_limit="4Gi"),
        prometheus=Resources(cpu_request="1", memory_request="4Gi", cpu_limit="4", memory_limit="16Gi"),
        prometheus_volume="200Gi",
        alertmanager=Resources(
            cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"
        ),
        grafana=Resources(cpu_request="250m", memory_request="512Mi", cpu_limit="2", memory_limit="1Gi"),
        prometheus_operator=Resources(
            cpu_request="200m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"
        ),
        kube_state_metrics=Resources(
            cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"
        ),
        helper=_SMALL_HELPER,
        release_timeout_seconds=600,
    ),
}
