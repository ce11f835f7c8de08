"""The promotion gates at their boundaries (issue 17, mutation testing): a tie never promotes, the
threshold is inclusive, every reason is the exact text the registry shows, and applying a decision
sets exactly the aliases and tags it should. A recording client stands in for MLflow's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from workloads.common.registry import Decision, Registered, absent, apply_decision, champion_metric
from workloads.mnist.registry import decide as mnist_decide
from workloads.qoe.registry import decide as qoe_decide
from workloads.qoe.train import Evaluation


def _evaluation(mae: float, last: float = 2.0, linear: float = 3.0) -> Evaluation:
    return Evaluation(model_mae=mae, last_value_mae=last, linear_mae=linear, model_rmse=mae, windows=10)


# --- QoE: beat both baselines and the champion, strictly ---------------------------------------


@pytest.mark.parametrize(
    ("evaluation", "champion", "expected"),
    [
        (_evaluation(1.0), None, Decision(True, "first model to beat the baselines (MAE 1)")),
        (_evaluation(2.0), None, Decision(False, "MAE 2 does not beat last value (2)")),
        (_evaluation(2.5), None, Decision(False, "MAE 2.5 does not beat last value (2)")),
        (_evaluation(1.0, linear=1.0), None, Decision(False, "MAE 1 does not beat linear extrapolation (1)")),
        (
            _evaluation(1.0, linear=0.5),
            None,
            Decision(False, "MAE 1 does not beat linear extrapolation (0.5)"),
        ),
        (_evaluation(1.0), 1.0, Decision(False, "MAE 1 does not beat the champion (1)")),
        (_evaluation(1.0), 0.25, Decision(False, "MAE 1 does not beat the champion (0.25)")),
        (
            _evaluation(0.9),
            1.0,
            Decision(True, "MAE 0.9 beats the champion (1) and the baselines"),
        ),
        (
            _evaluation(1.23456),
            1.5,
            Decision(True, "MAE 1.235 beats the champion (1.5) and the baselines"),
        ),
        (_evaluation(0.0), 0.0, Decision(False, "MAE 0 does not beat the champion (0)")),
        (_evaluation(0.0), None, Decision(True, "first model to beat the baselines (MAE 0)")),
    ],
)
def test_qoe_gate(evaluation: Evaluation, champion: float | None, expected: Decision) -> None:
    assert qoe_decide(evaluation, champion) == expected


def test_qoe_gate_refuses_nan() -> None:
    assert not qoe_decide(_evaluation(float("nan")), None).promote
    assert not qoe_decide(_evaluation(1.0), float("nan")).promote


# --- MNIST: reach the threshold (inclusive), beat the champion (strictly) ----------------------


@pytest.mark.parametrize(
    ("accuracy", "threshold", "champion", "expected"),
    [
        (0.9, 0.9, None, Decision(True, "first model above the threshold (accuracy 0.9000)")),
        (0.89995, 0.9, None, Decision(False, "accuracy 0.9000 is below the threshold 0.9000")),
        (0.5, 0.9, None, Decision(False, "accuracy 0.5000 is below the threshold 0.9000")),
        (0.97, 0.9, 0.97, Decision(False, "accuracy 0.9700 does not beat the champion (0.9700)")),
        (0.95, 0.9, 0.97, Decision(False, "accuracy 0.9500 does not beat the champion (0.9700)")),
        (0.98, 0.9, 0.97, Decision(True, "accuracy 0.9800 beats the champion (0.9700)")),
        (0.0, 0.0, 0.0, Decision(False, "accuracy 0.0000 does not beat the champion (0.0000)")),
        (0.0, 0.0, None, Decision(True, "first model above the threshold (accuracy 0.0000)")),
    ],
)
def test_mnist_gate(accuracy: float, threshold: float, champion: float | None, expected: Decision) -> None:
    assert mnist_decide(accuracy, threshold, champion) == expected


def test_mnist_gate_refuses_nan() -> None:
    assert not mnist_decide(float("nan"), 0.9, None).promote
    assert not mnist_decide(0.95, 0.9, float("nan")).promote


# --- the shared registry steps ----------------------------------------------------------------


def _error(code: str, message: str) -> MlflowException:
    return MlflowException(message, error_code=getattr(databricks_pb2, code))


def test_absent_tells_missing_from_an_outage() -> None:
    assert absent(_error("RESOURCE_DOES_NOT_EXIST", "Registered Model with name=qoe not found"))
    assert absent(_error("INVALID_PARAMETER_VALUE", "Registered model alias champion not found."))
    assert not absent(_error("INVALID_PARAMETER_VALUE", "Registered model alias champion is invalid"))
    assert not absent(_error("INVALID_PARAMETER_VALUE", "Version 3 not found."))
    assert not absent(_error("INTERNAL_ERROR", "alias champion not found"))
    assert not absent(RuntimeError("alias not found"))


class Client:
    """Records MLflow client calls; a champion with `metrics`, or none."""

    def __init__(self, metrics: dict[str, float] | None = None) -> None:
        self.metrics = metrics
        self.calls: list[tuple[Any, ...]] = []

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        self.calls.append(("alias?", name, alias))
        if self.metrics is None:
            raise _error("INVALID_PARAMETER_VALUE", f"Registered model alias {alias} not found.")
        return SimpleNamespace(run_id="run-7")

    def get_run(self, run_id: str) -> Any:
        self.calls.append(("run?", run_id))
        return SimpleNamespace(data=SimpleNamespace(metrics=self.metrics))

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append(("alias", name, alias, version))

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.calls.append(("tag", name, version, key, value))


def test_champion_metric_reads_the_champions_run() -> None:
    client = Client({"test_mae": 1, "other": 2.0})
    value = champion_metric(client, "qoe", "test_mae")
    assert value == 1.0 and isinstance(value, float)
    assert client.calls == [("alias?", "qoe", "champion"), ("run?", "run-7")]
    assert champion_metric(Client({"other": 2.0}), "qoe", "test_mae") is None
    assert champion_metric(Client(None), "qoe", "test_mae") is None


def test_a_promoted_version_gets_candidate_then_champion() -> None:
    client = Client()
    decision = Decision(True, "beats it")
    registered = apply_decision(client, "qoe", "4", "run-1", decision)
    assert registered == Registered(version="4", run_id="run-1", decision=decision, alias="champion")
    assert client.calls == [
        ("alias", "qoe", "candidate", "4"),
        ("tag", "qoe", "4", "naomi.decision", "promote"),
        ("tag", "qoe", "4", "naomi.reason", "beats it"),
        ("alias", "qoe", "champion", "4"),
    ]


def test_a_kept_version_stays_candidate() -> None:
    client = Client()
    decision = Decision(False, "no better")
    registered = apply_decision(client, "mnist", "2", "run-2", decision)
    assert registered == Registered(version="2", run_id="run-2", decision=decision, alias="candidate")
    assert client.calls == [
        ("alias", "mnist", "candidate", "2"),
        ("tag", "mnist", "2", "naomi.decision", "keep"),
        ("tag", "mnist", "2", "naomi.reason", "no better"),
    ]
