"""What every pipeline's Flyte tasks share: resources, the RayJob shape, where state lives, model
objects in the store, and which MLflow to register in."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from flytekit import Resources
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

from workloads.common.registry import use_local_mlflow
from workloads.common.storage import Store, checkpoint_location, store_from_environment

TASK_REQUESTS = Resources(cpu="500m", mem="1Gi")


def ray_job_config(*, min_replicas: int, autoscaling: bool) -> RayJobConfig:
    """A RayJob with a CPU-less head and an x86 worker group of 2 (min_replicas..4) workers."""
    return RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
        worker_node_config=[
            WorkerNodeConfig(
                group_name="x86",
                replicas=2,
                min_replicas=min_replicas,
                max_replicas=4,
                requests=Resources(cpu="1", mem="2Gi"),
                limits=Resources(cpu="2", mem="4Gi"),
            )
        ],
        enable_autoscaling=autoscaling,
        shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=3600,
    )


def state_dir() -> Path:
    """Local state when not on the cluster: `NAOMI_STATE`, default `.naomi/state`."""
    return Path(os.environ.get("NAOMI_STATE", ".naomi/state"))


def task_store() -> Store:
    """The task's object store: `NAOMI_STORE` (s3://bucket on the cluster), else the local state folder."""
    return store_from_environment(state_dir() / "objects")


def task_checkpoints(store: Store) -> tuple[str, Any]:
    """Ray Train's storage for `store` (the bucket on S3, else the local state folder)."""
    return checkpoint_location(store, state_dir() / "checkpoints")


def put_trained(store: Store, prefix: str, model: Any, config: dict[str, Any], history: list[Any]) -> str:
    """`<prefix>/latest.pt` (the model) and `<prefix>/latest-history.json` (config, per-epoch
    metrics) for the evaluation and registration tasks; returns the model's key."""
    import torch

    buffer = io.BytesIO()
    torch.save(model, buffer)
    key = f"{prefix}/latest.pt"
    store.put(key, buffer.getvalue())
    store.put(f"{prefix}/latest-history.json", json.dumps({"config": config, "history": history}).encode())
    return key


def get_model(store: Store, key: str) -> Any:
    """A model saved by `put_trained`, in eval mode (pickled by our own tasks: trusted)."""
    import torch

    return torch.load(io.BytesIO(store.get(key)), weights_only=False).eval()


def use_task_mlflow(experiment: str) -> None:
    """MLflow from `MLFLOW_TRACKING_URI` (the platform sets it on the cluster), else local sqlite."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        use_local_mlflow(state_dir() / "mlflow", experiment)
