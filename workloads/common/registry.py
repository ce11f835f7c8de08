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
