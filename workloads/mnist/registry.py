"""MLflow for the digits CNN: log the run, register `mnist`, gate the promotion.

The gate: hold-out accuracy must reach the threshold (default 0.9) and beat the current champion;
otherwise the version stays `candidate` and the reason is recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workloads.common.registry import Decision, Registered, apply_decision, champion_metric, log_torch_model
from workloads.mnist.model import DigitsCNN

MODEL_NAME = "mnist"
DEFAULT_THRESHOLD = 0.9


def decide(accuracy: float, threshold: float, champion_accuracy: float | None) -> Decision:
    if not accuracy >= threshold:
        return Decision(False, f"accuracy {accuracy:.4f} is below the threshold {threshold:.4f}")
    if champion_accuracy is not None and not accuracy > champion_accuracy:
        return Decision(
            False, f"accuracy {accuracy:.4f} does not beat the champion ({champion_accuracy:.4f})"
        )
    if champion_accuracy is None:
        return Decision(True, f"first model above the threshold (accuracy {accuracy:.4f})")
    return Decision(True, f"accuracy {accuracy:.4f} beats the champion ({champion_accuracy:.4f})")


def register(
    model: DigitsCNN,
    accuracy: float,
    params: dict[str, Any],
    history: list[dict[str, float]],
    example: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    experiment: str = "mnist",
    name: str = MODEL_NAME,
) -> Registered:
    """Log to the current tracking URI, register, apply the gate's aliases."""
    import mlflow

    if example.shape[0] < 2:
        raise ValueError("the input example needs at least two images")
    client = mlflow.MlflowClient()
    decision = decide(accuracy, threshold, champion_metric(client, name, "test_accuracy"))
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({**params, "threshold": threshold})
        for entry in history:
            mlflow.log_metrics(
                {k: v for k, v in entry.items() if k != "epoch"}, step=int(entry.get("epoch", 0))
            )
        mlflow.log_metric("test_accuracy", accuracy)
        mlflow.set_tags(
            {"naomi.decision": "promote" if decision.promote else "keep", "naomi.reason": decision.reason}
        )
        info = log_torch_model(model, example, name)
    return apply_decision(client, name, str(info.registered_model_version), run.info.run_id, decision)
