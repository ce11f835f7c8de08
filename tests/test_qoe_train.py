"""QoE training with Ray Train (2 CPU workers) on synthetic and real data: it learns real signal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_shared
from workloads.qoe.data import load_file, load_reports, synthetic_reports
from workloads.qoe.features import FeatureSpec, build
from workloads.qoe.train import TrainConfig, evaluate, train

pytest.importorskip("ray")


def test_model_beats_both_baselines_on_synthetic_data(ray_session: object, tmp_path: Path) -> None:
    spec = FeatureSpec()
    splits = build(load_reports(synthetic_reports(steps=1500)), spec)
    result = train(splits, spec, TrainConfig(epochs=4, workers=2), str(tmp_path / "checkpoints"))
    scores = evaluate(result.model, splits.test)
    assert scores.model_mae < scores.last_value_mae
    assert scores.model_mae < scores.linear_mae
    assert len(result.history) == 4 and result.history[-1]["valid_loss"] < result.history[0]["train_loss"]
    assert any((tmp_path / "checkpoints").rglob("model.pt"))


def test_model_beats_last_value_on_the_real_viavi_cells(ray_session: object, tmp_path: Path) -> None:
    path = require_shared("data/qoe/cell.json.gz")
    spec = FeatureSpec()
    splits = build(load_file(path), spec)
    result = train(splits, spec, TrainConfig(epochs=4, workers=2), str(tmp_path / "checkpoints"))
    scores = evaluate(result.model, splits.test)
    assert scores.model_mae < scores.last_value_mae / 5
