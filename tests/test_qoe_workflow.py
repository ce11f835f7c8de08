"""The `qoe_train` Flyte workflow runs locally end to end (its training task on the shared Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("flytekit")


def test_qoe_train_workflow_runs_locally(
    ray_session: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAOMI_STORE", str(tmp_path / "objects"))
    from workloads.common.storage import LocalStore
    from workloads.qoe.workflow import RAY_CONFIG, qoe_train, train_task

    key = qoe_train(steps=300, epochs=2, batch_size=128, workers=2)
    store = LocalStore(tmp_path / "objects")
    assert key == "models/qoe/latest.pt"
    assert {"datasets/qoe/reports.parquet", "features/qoe/train.parquet", "models/qoe/latest.pt"} <= set(
        store.list()
    )
    assert train_task.task_config is RAY_CONFIG and RAY_CONFIG.worker_node_config[0].group_name == "x86"
