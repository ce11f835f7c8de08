"""Registry conventions shared by every pipeline: aliases, the promotion decision, its record.

Every new version gets the alias `candidate`; it becomes `champion` only when its pipeline's gate
says so. The decision and its reason are tags on the model version (and the run), so the
registry explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CANDIDATE = "candidate"
CHAMPION = "champion"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    decision: Decision
    alias: str  # the alias that now points at this version's model: champion or candidate


def absent(error: Exception) -> bool:
    """MLflow's "does not exist" (no such model, version or alias), as opposed to an outage.

    A missing model or version is RESOURCE_DOES_NOT_EXIST; a missing alias of an existing model is
    INVALID_PARAMETER_VALUE "Registered model alias <alias> not found." (mlflow 3.17.2
    store/model_registry/sqlalchemy_store.py `_get_model_version_by_alias`, file_store.py alike)."""
    code = getattr(error, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and "alias" in str(error) and "not found" in str(error)


def champion_metric(client: Any, name: str, metric: str) -> float | None:
    """The current champion's `metric` from its run, or None when there is no champion."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    metrics = client.get_run(version.run_id).data.metrics
    return float(metrics[metric]) if metric in metrics else None


def apply_decision(client: Any, name: str, version: str, run_id: str, decision: Decision) -> Registered:
    """Tag the version with the decision, point `candidate` at it, and `champion` if promoted."""
    verdict = "promote" if decision.promote else "keep"
    client.set_registered_model_alias(name, CANDIDATE, version)
    client.set_model_version_tag(name, version, "naomi.decision", verdict)
    client.set_model_version_tag(name, version, "naomi.reason", decision.reason)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    return Registered(
        version=version, run_id=run_id, decision=decision, alias=CHAMPION if decision.promote else CANDIDATE
    )


def use_local_mlflow(folder: Any, experiment: str) -> str:
    """MLflow on a sqlite file under `folder`, artifacts beside it (never a stray ./mlruns)."""
    from pathlib import Path

    import mlflow

    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    return uri


def log_torch_model(model: Any, example: Any, name: str) -> Any:
    """Log a PyTorch model in the active run and register it as `name`: signature from `example`
    (>= 2 rows, also the input example), pickled (loadable by the serving apps), pinned torch."""
    import mlflow
    import torch
    from mlflow.models import infer_signature

    if example.shape[0] < 2:
        raise ValueError("the input example needs at least two rows")
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    return mlflow.pytorch.log_model(
        model,
        name="model",
        registered_model_name=name,
        signature=infer_signature(example, output),
        input_example=example,
        serialization_format="pickle",
        pip_requirements=["torch==2.13.0", "numpy"],
    )


class Stopwatch:
    """Seconds per step, in order: `lap(name)` closes the step that just ended."""

    def __init__(self, into: dict[str, float]) -> None:
        import time

        self._now = time.perf_counter
        self._into = into
        self._last = self._now()

    def lap(self, name: str) -> None:
        now = self._now()
        self._into[name] = now - self._last
        self._last = now
