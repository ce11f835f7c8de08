"""Retrains learn the stored dataset (issue 15, defect 6): the QoE workflow's defaults, the launch
plans and the trigger inputs name the dataset the seed Job (or the user) stored; the ingest step
uses it as it is and never writes synthetic data over it; synthetic data only when asked for."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

pytest.importorskip("flytekit")

from workloads import catalogue
from workloads.common.storage import LocalStore
from workloads.qoe.data import CellReports, ingest, synthetic_reports

STORED = catalogue.pipeline("qoe").dataset


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.setenv("NAOMI_STORE", str(tmp_path / "objects"))
    monkeypatch.setenv("NAOMI_STATE", str(tmp_path / "state"))
    return LocalStore(tmp_path / "objects")


def test_a_retrain_with_the_default_inputs_learns_the_stored_dataset(store: LocalStore) -> None:
    from workloads.qoe.workflow import ingest_task, qoe_train

    ingest(synthetic_reports(steps=120, seed=99), store, STORED)  # "the user's data": 120 steps
    before = store.get(STORED)
    defaults = qoe_train.python_interface.default_inputs_as_kwargs
    used = ingest_task(dataset=defaults["dataset"], steps=defaults["steps"])
    assert store.get(STORED) == before  # not overwritten
    assert len(CellReports.from_parquet(store.get(used))) == 120 * 24  # the stored reports, not 2000 steps


def test_json_lines_are_stored_beside_and_synthetic_only_on_request(store: LocalStore) -> None:
    from workloads.qoe.workflow import ingest_task

    ingest(synthetic_reports(steps=50, seed=5), store, STORED)
    before = store.get(STORED)
    store.put("uploads/cell.json.gz", gzip.compress("\n".join(synthetic_reports(steps=30)).encode()))
    assert ingest_task(dataset="uploads/cell.json.gz", steps=0) == "uploads/cell.json.parquet"
    assert ingest_task(dataset="synthetic", steps=40) == "datasets/qoe/synthetic.parquet"
    assert len(CellReports.from_parquet(store.get("datasets/qoe/synthetic.parquet"))) == 40 * 24
    assert store.get(STORED) == before
