"""QoE training with Ray Train (2 CPU workers) on the real VIAVI data: it learns real signal.

On synthetic data the same training runs in `naomi run qoe` (tests/test_run_qoe.py: the model must
beat both baselines to become the champion) and in the Flyte workflow (tests/test_qoe_workflow.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_shared
from workloads.qoe.data import load_file
from workloads.qoe.features import FeatureSpec, build
from workloads.qoe.train import TrainConfig, evaluate, train

pytest.importorskip("ray")


def test_model_beats_last_value_on_the_real_viavi_cells(ray_session: object, tmp_path: Path) -> None:
    path = require_shared("data/qoe/cell.json.gz")
    spec = FeatureSpec()
    splits = build(load_file(path), spec)
    result = train(splits, spec, TrainConfig(epochs=4, workers=2), str(tmp_path / "checkpoints"))
    scores = evaluate(result.model, splits.test)
    assert scores.model_mae < scores.last_value_mae / 5
    # Each epoch reported, the loss fell, the workers checkpointed.
    assert len(result.history) == 4 and result.history[-1]["valid_loss"] < result.history[0]["train_loss"]
    assert any((tmp_path / "checkpoints").rglob("model.pt"))
