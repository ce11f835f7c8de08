"""Flyte: `qoe_train` wires the pipeline steps as tasks; training runs as a RayJob on the cluster.

The same functions as `naomi run qoe`; tasks hand each other object-store keys (Parquet, model
state), never data through Flyte's own storage. On the cluster the training task becomes a RayJob
(KubeRay) with a worker group on the chosen pool; locally flytekit runs it on a local Ray.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from flytekit import Resources, task, workflow
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

from workloads.common.storage import Store, store_from_environment
from workloads.qoe.data import CellReports, ingest, synthetic_reports
from workloads.qoe.features import FeatureSpec, Windows, build

TASK_REQUESTS = Resources(cpu="500m", mem="1Gi")

RAY_CONFIG = RayJobConfig(
    head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
    worker_node_config=[
        WorkerNodeConfig(
            group_name="x86",
            replicas=2,
            min_replicas=1,
            max_replicas=4,
            requests=Resources(cpu="1", mem="2Gi"),
            limits=Resources(cpu="2", mem="4Gi"),
        )
    ],
    enable_autoscaling=True,
    shutdown_after_job_finishes=True,
    ttl_seconds_after_finished=3600,
)


def _store() -> Store:
    """The task's object store: `NAOMI_STORE` (s3://bucket on the cluster), else the local state folder."""
    return store_from_environment(Path(os.environ.get("NAOMI_STATE", ".naomi/state")) / "objects")


@task(requests=TASK_REQUESTS)
def ingest_task(steps: int) -> str:
    store = _store()
    key = "datasets/qoe/reports.parquet"
    ingest(synthetic_reports(steps=steps), store, key)
    return key


@task(requests=TASK_REQUESTS)
def features_task(reports_key: str) -> str:
    store = _store()
    splits = build(CellReports.from_parquet(store.get(reports_key)), FeatureSpec())
    for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        store.put(f"features/qoe/{name}.parquet", part.to_parquet())
    return "features/qoe"


@task(task_config=RAY_CONFIG, requests=TASK_REQUESTS)
def train_task(features: str, epochs: int, batch_size: int, workers: int) -> str:
    import tempfile

    import torch

    from workloads.qoe.features import Splits
    from workloads.qoe.train import TrainConfig, evaluate, train

    store = _store()
    parts = {
        n: Windows.from_parquet(store.get(f"{features}/{n}.parquet")) for n in ("train", "validation", "test")
    }
    splits = Splits(train=parts["train"], validation=parts["validation"], test=parts["test"], active_cells=())
    config = TrainConfig(epochs=epochs, batch_size=batch_size, workers=workers)
    with tempfile.TemporaryDirectory() as checkpoints:
        result = train(splits, FeatureSpec(), config, checkpoints)
    buffer = io.BytesIO()
    torch.save(result.model, buffer)
    key = "models/qoe/latest.pt"
    store.put(key, buffer.getvalue())
    scores = evaluate(result.model, parts["test"])
    store.put("models/qoe/latest-evaluation.json", json.dumps(scores.as_metrics()).encode())
    return key


@workflow
def qoe_train(steps: int = 2000, epochs: int = 6, batch_size: int = 128, workers: int = 2) -> str:
    """Ingest -> features -> train (RayJob) -> model in the object store."""
    return train_task(
        features=features_task(reports_key=ingest_task(steps=steps)),
        epochs=epochs,
        batch_size=batch_size,
        workers=workers,
    )
