"""The promotion rule: beat both baselines and the current champion, with a reason either way."""

from __future__ import annotations

from workloads.qoe.registry import decide
from workloads.qoe.train import Evaluation


def _scores(mae: float) -> Evaluation:
    return Evaluation(model_mae=mae, last_value_mae=2.0, linear_mae=3.0, model_rmse=mae, windows=10)


def test_first_model_beating_baselines_is_promoted() -> None:
    decision = decide(_scores(1.0), None)
    assert decision.promote and decision.reason == "first model to beat the baselines (MAE 1)"


def test_worse_than_a_baseline_is_refused_even_without_champion() -> None:
    assert decide(_scores(2.0), None).reason == "MAE 2 does not beat last value (2)"
    linear = Evaluation(model_mae=1.0, last_value_mae=2.0, linear_mae=0.5, model_rmse=1.0, windows=10)
    assert decide(linear, None).reason == "MAE 1 does not beat linear extrapolation (0.5)"


def test_must_beat_the_champion() -> None:
    assert not decide(_scores(1.0), 1.0).promote
    assert decide(_scores(0.9), 1.0).promote
