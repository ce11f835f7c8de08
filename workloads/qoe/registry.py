"""MLflow: record a training run, register the model as `qoe`, and decide on promotion.

Every new version gets the alias `candidate`. It becomes `champion` only if it beats both naive
baselines on the hold-out and the current champion's test MAE; the decision and its reason are
tags on the model version and on the run, so the registry explains itself.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from workloads.common.registry import (
    Decision,
    Registered,
    apply_decision,
    champion_metric,
    log_torch_model,
)
from workloads.qoe.features import FeatureSpec
from workloads.qoe.model import QoeForecaster
from workloads.qoe.train import Evaluation, TrainConfig

MODEL_NAME = "qoe"


def decide(evaluation: Evaluation, champion_mae: float | None) -> Decision:
    """Promote only a model that beats the baselines and the current champion."""
    if not evaluation.model_mae < evaluation.last_value_mae:
        return Decision(
            False,
            f"MAE {evaluation.model_mae:.4g} does not beat last value ({evaluation.last_value_mae:.4g})",
        )
    if not evaluation.model_mae < evaluation.linear_mae:
        return Decision(
            False,
            f"MAE {evaluation.model_mae:.4g} does not beat linear extrapolation ({evaluation.linear_mae:.4g})",
        )
    if champion_mae is not None and not evaluation.model_mae < champion_mae:
        return Decision(
            False, f"MAE {evaluation.model_mae:.4g} does not beat the champion ({champion_mae:.4g})"
        )
    if champion_mae is None:
        return Decision(True, f"first model to beat the baselines (MAE {evaluation.model_mae:.4g})")
    return Decision(
        True, f"MAE {evaluation.model_mae:.4g} beats the champion ({champion_mae:.4g}) and the baselines"
    )


def champion_mae(client: Any, name: str = MODEL_NAME) -> float | None:
    return champion_metric(client, name, "test_mae")


def register(
    model: QoeForecaster,
    evaluation: Evaluation,
    spec: FeatureSpec,
    config: TrainConfig,
    history: list[dict[str, float]],
    example: np.ndarray,
    *,
    experiment: str = "qoe",
    name: str = MODEL_NAME,
) -> Registered:
    """Log the run and the model to the current tracking URI, register it, apply aliases."""
    import mlflow

    if example.shape[0] < 2:
        raise ValueError("the input example needs at least two windows")
    client = mlflow.MlflowClient()
    current = champion_mae(client, name)
    decision = decide(evaluation, current)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({f"features.{k}": v for k, v in asdict(spec).items()})
        mlflow.log_params({k: v for k, v in asdict(config).items() if k != "model"})
        mlflow.log_params({f"model.{k}": v for k, v in config.model.as_dict().items()})
        for entry in history:
            step = int(entry.get("epoch", 0))
            mlflow.log_metrics({k: v for k, v in entry.items() if k != "epoch"}, step=step)
        mlflow.log_metrics(evaluation.as_metrics())
        mlflow.set_tags(
            {"naomi.decision": "promote" if decision.promote else "keep", "naomi.reason": decision.reason}
        )
        info = log_torch_model(model, example, name)
    return apply_decision(client, name, str(info.registered_model_version), run.info.run_id, decision)
