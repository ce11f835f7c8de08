"""The platform's data plane brought up from a render: Postgres, MLflow, its users, an S3 server.

`start_platform` does what the first `pulumi up` does for these components, in the order the plan's
dependencies impose (tests check those edges): the Postgres pod (postStart hook), the databases Job,
the MLflow pod (server and metrics sidecar), the users Job. The object store is a moto S3 server:
MinIO's server and admin API do not exist here, so the buckets of the setup Job's plan are created
directly and moto accepts any key (object-store re-keying is checked on the render only).

Clients sign in with what the render gives each consumer (`client_login`): the `mlflow-client`
Secret of a namespace, or a scoped user's password from the MLflow namespace's users Secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minio import Minio
from moto.server import ThreadedMotoServer

from naomi.render.engine import Evaluation
from tests.local_cluster import Endpoint, GeneratedValues, LocalCluster, MlflowPod, PostgresPod
from tests.postgres_server import PostgresServer

PLATFORM = "naomi-platform"


@dataclass
class S3:
    server: ThreadedMotoServer
    endpoint: Endpoint

    @property
    def client(self) -> Minio:
        return Minio(
            f"{self.endpoint.host}:{self.endpoint.port}", "any", "any", secure=False, region="us-east-1"
        )

    def stop(self) -> None:
        self.server.stop()


def start_s3() -> S3:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    return S3(server, Endpoint(host, int(port)))


@dataclass
class Platform:
    cluster: LocalCluster
    postgres: PostgresPod
    mlflow: MlflowPod | None  # None: Postgres only (the rotation benchmark's smoke run)
    s3: S3

    def stop(self) -> None:
        if self.mlflow is not None:
            self.mlflow.stop()


def create_buckets(cluster: LocalCluster, s3: S3) -> None:
    setup = cluster.named("ConfigMap", PLATFORM, "object-store-setup-")
    for bucket in json.loads(setup["data"]["buckets.json"])["buckets"]:
        if not s3.client.bucket_exists(bucket):
            s3.client.make_bucket(bucket)


def start_platform(
    evaluation: Evaluation,
    values: GeneratedValues,
    workdir: Path,
    *,
    s3: S3,
    postgres: PostgresServer | None = None,
    with_mlflow: bool = True,
) -> Platform:
    cluster = LocalCluster.of(evaluation, values, workdir)
    cluster.services[f"object-store.{PLATFORM}"] = s3.endpoint
    create_buckets(cluster, s3)
    pod = PostgresPod(cluster, server=postgres)
    cluster.run_job(cluster.named("Job", PLATFORM, "postgres-databases-"))
    if not with_mlflow:
        return Platform(cluster, pod, None, s3)
    mlflow = MlflowPod()
    mlflow.start(cluster)
    cluster.run_job(cluster.named("Job", PLATFORM, "mlflow-users-"))
    return Platform(cluster, pod, mlflow, s3)


def client_login(cluster: LocalCluster, namespace: str) -> tuple[str, str, str]:
    """(tracking URI, username, password) of the `mlflow-client` Secret in `namespace`."""
    data = cluster.secret_data(namespace, "mlflow-client")
    return cluster.local(data["uri"]), data["username"], data["password"]


def user_login(cluster: LocalCluster, identity: str) -> tuple[str, str]:
    """A scoped user's login as the MLflow namespace's users Secret holds it (what Flyte gets)."""
    password = cluster.secret(PLATFORM, "mlflow-users", f"MLFLOW_PASSWORD_{identity.upper()}")
    return identity, password


def admin_login(cluster: LocalCluster) -> tuple[str, str]:
    data = cluster.secret_data(PLATFORM, "mlflow-auth")
    return data["username"], data["password"]


@contextmanager
def signed_in(uri: str, username: str, password: str) -> Iterator[Any]:
    """The MLflow client module, pointed at `uri` with this login and no object-store keys."""
    import mlflow

    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_UV_AUTO_DETECT")
    }
    dropped = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    os.environ["MLFLOW_UV_AUTO_DETECT"] = "false"  # no uv export of this checkout per logged model
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.update(dropped)


def log_model(mlflow: Any, *, experiment: str, model: str, runs: int = 1) -> str:
    """Train a tiny linear model, log `runs` runs and register the last as `model`; returns its version."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    features = np.arange(20, dtype=float).reshape(10, 2)
    target = features @ np.array([2.0, -1.0]) + 0.5
    mlflow.set_experiment(experiment)
    for index in range(runs - 1):
        with mlflow.start_run():
            mlflow.log_metric("mae", 1.0 / (index + 1))
    with mlflow.start_run():
        mlflow.log_param("kind", "linear")
        mlflow.log_metric("mae", 0.01)
        mlflow.sklearn.log_model(
            LinearRegression().fit(features, target),
            name="model",
            registered_model_name=model,
            # A signature without an input example: validating an example costs ~25 s here.
            signature=mlflow.models.infer_signature(features, target),
            pip_requirements=["scikit-learn"],  # no requirement inference (slow, irrelevant)
        )
    client = mlflow.MlflowClient()
    version = str(max(int(v.version) for v in client.search_model_versions(f"name='{model}'")))
    client.set_registered_model_alias(model, "champion", version)
    return version


def predicts(mlflow: Any, uri: str) -> bool:
    import numpy as np

    loaded = mlflow.pyfunc.load_model(uri)
    return bool(np.allclose(loaded.predict(np.array([[2.0, 3.0]])), [1.5]))


_SHARED: Platform | None = None


def shared_platform(evaluation: Evaluation, workdir: Path) -> Platform:
    """One platform per test session (the edge-lab render on the session's PostgreSQL), for tests
    that only add data; stopped when the test process exits. Rotation brings up its own."""
    global _SHARED
    if _SHARED is None:
        import atexit

        from tests.postgres_server import shared

        s3 = start_s3()
        _SHARED = start_platform(
            evaluation, GeneratedValues(evaluation, "session"), workdir, s3=s3, postgres=shared()
        )
        atexit.register(s3.stop)
        atexit.register(_SHARED.stop)
    return _SHARED


@dataclass
class RotationSteps:
    """What the second `pulumi up` did here, in order, with the seconds each step took."""

    rollout: Any
    steps: list[tuple[str, float]]

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.steps)


def apply_rotation(platform: Platform, after: Evaluation, workdir: Path) -> RotationSteps:
    """Bring `platform` to render `after` as `pulumi up` and the controllers would: Secrets change in
    place; then, in the plan's dependency order, the pods whose template changed restart and the
    Jobs that are new run (an unchanged Job never runs again). Consumers are the caller's."""
    import time

    from tests.local_cluster import rollout

    values = platform.cluster.values.next_render(after)
    cluster = LocalCluster.of(after, values, workdir, services=platform.cluster.services)
    plan = rollout(platform.cluster, cluster)
    steps: list[tuple[str, float]] = []

    def step(name: str, action: Any) -> None:
        started = time.monotonic()
        action()
        steps.append((name, time.monotonic() - started))

    if ("StatefulSet", "postgres") in plan.restarted:
        step("postgres pod restart (postStart hook)", lambda: platform.postgres.restart(cluster))
    for name in plan.new_jobs:
        if name.startswith("postgres-databases-"):
            step(f"Job {name}", lambda name=name: cluster.run_job(cluster.find("Job", PLATFORM, name)))
    mlflow = platform.mlflow
    if mlflow is not None and ("Deployment", "mlflow") in plan.restarted:
        step("mlflow pod restart", lambda: mlflow.restart(cluster))
    for name in plan.new_jobs:
        if mlflow is not None and name.startswith("mlflow-users-"):
            step(f"Job {name}", lambda name=name: cluster.run_job(cluster.find("Job", PLATFORM, name)))
    platform.cluster = cluster
    return RotationSteps(rollout=plan, steps=steps)
