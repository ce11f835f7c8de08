"""Flyte: `qoe_train` wires the pipeline steps as tasks; training runs as a RayJob on the cluster.

ingest -> features -> train (RayJob) -> evaluate -> register/promote, the same functions as
`naomi run qoe`. Tasks hand each other object-store keys (Parquet, model state, JSON), never data
through Flyte's own storage. On the cluster the training task becomes a RayJob (KubeRay) whose
workers write Ray Train checkpoints to the object store; locally flytekit runs it on a local Ray.
The registry is MLflow at `MLFLOW_TRACKING_URI` (the platform injects it and its credentials),
else a sqlite database under the local state folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from flytekit import task, workflow

from workloads import catalogue
from workloads.common.flyte_tasks import (
    TASK_REQUESTS,
    get_model,
    put_trained,
    ray_job_config,
    task_checkpoints,
    task_store,
    use_task_mlflow,
)
from workloads.common.storage import Store
from workloads.qoe.data import CellReports, ingest, read_reports, synthetic_reports
from workloads.qoe.features import FeatureSpec, Splits, Windows, build

RAY_CONFIG = ray_job_config()
DATASET = catalogue.pipeline("qoe").dataset  # what the seed Job stores; users may replace it
SYNTHETIC = "synthetic"  # the `dataset` that asks for generated reports


def ingested_key(dataset: str) -> str:
    """Where a JSON-lines dataset's validated table goes: beside it, never over another dataset."""
    return f"{dataset.removesuffix('.gz')}.parquet"


@task(requests=TASK_REQUESTS)
def ingest_task(dataset: str, steps: int) -> str:
    """The Parquet key of the reports to train on. `dataset` is a stored table (the seeded or the
    user's `datasets/qoe/reports.parquet`, used as it is), or an object key of VIAVI cell reports as
    JSON lines (`.gz` allowed), validated and stored beside it; only `synthetic` generates `steps`
    steps of synthetic reports (into their own key). No dataset is ever overwritten."""
    store = task_store()
    if dataset == SYNTHETIC:
        key = "datasets/qoe/synthetic.parquet"
        ingest(synthetic_reports(steps=steps), store, key)
        return key
    if dataset.endswith(".parquet"):
        CellReports.from_parquet(store.get(dataset))  # refuses a table without the schema's columns
        return dataset
    key = ingested_key(dataset)
    store.put(key, read_reports(store.get(dataset), dataset).to_parquet())
    return key


@task(requests=TASK_REQUESTS)
def features_task(reports_key: str) -> str:
    store = task_store()
    splits = build(CellReports.from_parquet(store.get(reports_key)), FeatureSpec())
    for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        store.put(f"features/qoe/{name}.parquet", part.to_parquet())
    return "features/qoe"


@task(task_config=RAY_CONFIG, requests=TASK_REQUESTS)
def train_task(features: str, epochs: int, batch_size: int, workers: int) -> str:
    """Train with Ray Train; the model and its per-epoch history land under `models/qoe/`."""
    from workloads.qoe.train import TrainConfig, train

    store = task_store()
    splits = _splits(store, features)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, workers=workers)
    result = train(splits, FeatureSpec(), config, *task_checkpoints(store))
    return put_trained(store, "models/qoe", result.model, asdict(config), result.history)


@task(requests=TASK_REQUESTS)
def evaluate_task(model_key: str, features: str) -> str:
    """Hold-out scores of the model next to the naive baselines, as JSON in the object store."""
    from workloads.qoe.train import evaluate

    store = task_store()
    test = Windows.from_parquet(store.get(f"{features}/test.parquet"))
    scores = evaluate(get_model(store, model_key), test)
    key = "models/qoe/latest-evaluation.json"
    store.put(key, json.dumps(asdict(scores)).encode())
    return key


@task(requests=TASK_REQUESTS)
def register_task(model_key: str, features: str, evaluation_key: str) -> str:
    """Log and register the model; `champion` only if it beats the baselines and the champion."""
    from workloads.qoe.model import ModelConfig
    from workloads.qoe.registry import register
    from workloads.qoe.train import Evaluation, TrainConfig

    store = task_store()
    use_task_mlflow("qoe")
    trained = json.loads(store.get("models/qoe/latest-history.json"))
    config = TrainConfig(**{**trained["config"], "model": ModelConfig(**trained["config"]["model"])})
    evaluation = Evaluation(**json.loads(store.get(evaluation_key)))
    test = Windows.from_parquet(store.get(f"{features}/test.parquet"))
    registered = register(
        get_model(store, model_key), evaluation, FeatureSpec(), config, trained["history"], test.x[:2]
    )
    return f"{registered.version}@{registered.alias}"


@workflow
def qoe_train(
    dataset: str = DATASET, steps: int = 2000, epochs: int = 6, batch_size: int = 128, workers: int = 2
) -> str:
    """Ingest -> features -> train (RayJob) -> evaluate -> register; returns "<version>@<alias>".

    `dataset` defaults to the stored dataset (`synthetic` asks for generated data, `steps` long).
    The RayJob's worker groups (one per Ray pool) are `RAY_CONFIG`; `workers` is how many Ray
    Train workers the job asks of them.
    """
    features = features_task(reports_key=ingest_task(dataset=dataset, steps=steps))
    model = train_task(features=features, epochs=epochs, batch_size=batch_size, workers=workers)
    scores = evaluate_task(model_key=model, features=features)
    return register_task(model_key=model, features=features, evaluation_key=scores)


def _splits(store: Store, features: str) -> Splits:
    parts = {
        n: Windows.from_parquet(store.get(f"{features}/{n}.parquet")) for n in ("train", "validation", "test")
    }
    return Splits(train=parts["train"], validation=parts["validation"], test=parts["test"], active_cells=())
