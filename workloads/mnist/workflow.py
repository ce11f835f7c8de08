"""Flyte: `mnist_train` — seed/load, train (RayJob, >= 2 workers), evaluate and gated registration.

Tasks exchange object-store keys. The dataset key may be the embedded seed
(`datasets/mnist/digits.npz`, uploaded by the stack) or NAOMI's folder-per-label layout.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from flytekit import task, workflow

from workloads.common.flyte_tasks import (
    TASK_REQUESTS,
    get_model,
    put_trained,
    ray_job_config,
    task_checkpoints,
    task_store,
    use_task_mlflow,
)
from workloads.mnist.data import SEED_KEY, load, seed

RAY_CONFIG = ray_job_config()


@task(task_config=RAY_CONFIG, requests=TASK_REQUESTS)
def mnist_train_task(dataset: str, epochs: int, workers: int) -> str:
    """Train on the dataset's training split; the model and history land under models/mnist/."""
    from workloads.mnist.train import TrainConfig, split, train

    store = task_store()
    if dataset == SEED_KEY:
        seed(store)
    train_set, _ = split(load(store, dataset))
    config = TrainConfig(epochs=epochs, workers=workers)
    result = train(train_set, config, *task_checkpoints(store))
    return put_trained(store, "models/mnist", result.model, asdict(config), result.history)


@task(requests=TASK_REQUESTS)
def mnist_register_task(model_key: str, dataset: str, threshold: float) -> str:
    """Evaluate on the hold-out and register; `champion` only past the gate. Returns "<version>@<alias>"."""
    from workloads.mnist.registry import register
    from workloads.mnist.train import evaluate, split

    store = task_store()
    use_task_mlflow("mnist")
    model = get_model(store, model_key)
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
