"""Flyte: `mnist_train` — seed/load, train (RayJob, >= 2 workers), evaluate and gated registration.

Tasks exchange object-store keys. The dataset key may be the embedded seed
(`datasets/mnist/digits.npz`, uploaded by the stack) or NAOMI's folder-per-label layout.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict
from pathlib import Path

from flytekit import Resources, task, workflow
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

from workloads.common.registry import use_local_mlflow
from workloads.common.storage import Store, checkpoint_location, store_from_environment
from workloads.mnist.data import SEED_KEY, load, seed

TASK_REQUESTS = Resources(cpu="500m", mem="1Gi")
RAY_CONFIG = RayJobConfig(
    head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
    worker_node_config=[
        WorkerNodeConfig(
            group_name="x86",
            replicas=2,
            min_replicas=2,
            max_replicas=4,
            requests=Resources(cpu="1", mem="2Gi"),
            limits=Resources(cpu="2", mem="4Gi"),
        )
    ],
    shutdown_after_job_finishes=True,
    ttl_seconds_after_finished=3600,
)


def _state() -> Path:
    return Path(os.environ.get("NAOMI_STATE", ".naomi/state"))


def _store() -> Store:
    return store_from_environment(_state() / "objects")


@task(task_config=RAY_CONFIG, requests=TASK_REQUESTS)
def mnist_train_task(dataset: str, epochs: int, workers: int) -> str:
    """Train on the dataset's training split; the model and history land under models/mnist/."""
    import torch

    from workloads.mnist.train import TrainConfig, split, train

    store = _store()
    if dataset == SEED_KEY:
        seed(store)
    train_set, _ = split(load(store, dataset))
    config = TrainConfig(epochs=epochs, workers=workers)
    path, filesystem = checkpoint_location(store, _state() / "checkpoints")
    result = train(train_set, config, path, filesystem)
    buffer = io.BytesIO()
    torch.save(result.model, buffer)
    store.put("models/mnist/latest.pt", buffer.getvalue())
    store.put(
        "models/mnist/latest-history.json",
        json.dumps({"config": asdict(config), "history": result.history}).encode(),
    )
    return "models/mnist/latest.pt"


@task(requests=TASK_REQUESTS)
def mnist_register_task(model_key: str, dataset: str, threshold: float) -> str:
    """Evaluate on the hold-out and register; `champion` only past the gate. Returns "<version>@<alias>"."""
    import torch

    from workloads.mnist.registry import register
    from workloads.mnist.train import evaluate, split

    store = _store()
    if not os.environ.get("MLFLOW_TRACKING_URI"):  # on the cluster the platform sets it
        use_local_mlflow(_state() / "mlflow", "mnist")
    model = torch.load(io.BytesIO(store.get(model_key)), weights_only=False).eval()
    _, test_set = split(load(store, dataset))
    trained = json.loads(store.get("models/mnist/latest-history.json"))
    accuracy = evaluate(model, test_set)
    example = (test_set.images[:2].astype("float32") / 255.0)[:, None, :, :]
    registered = register(
        model, accuracy, trained["config"], trained["history"], example, threshold=threshold
    )
    return f"{registered.version}@{registered.alias}"


@workflow
def mnist_train(dataset: str = SEED_KEY, epochs: int = 8, workers: int = 2, threshold: float = 0.9) -> str:
    """Train (RayJob) -> evaluate -> gated registration; returns "<version>@<alias>"."""
    model = mnist_train_task(dataset=dataset, epochs=epochs, workers=workers)
    return mnist_register_task(model_key=model, dataset=dataset, threshold=threshold)
