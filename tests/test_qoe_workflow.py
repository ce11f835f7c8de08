"""The `qoe_train` Flyte workflow runs locally end to end against an S3 server, as on the cluster:
datasets, features, Ray Train checkpoints and the model in the bucket; the model registered in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("flytekit")


def test_qoe_train_workflow_runs_locally_on_s3(
    ray_session: object, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from workloads.common.storage import S3Store
    from workloads.qoe.workflow import RAY_CONFIG, qoe_train, register_task, train_task

    store = S3Store(endpoint=s3_endpoint, access_key="testing", secret_key="testing", bucket="workloads")
    client = store._client()
    if not client.bucket_exists(store.bucket):
        client.make_bucket(store.bucket)
    monkeypatch.setenv("NAOMI_STORE", "s3://workloads")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("NAOMI_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    from workloads.qoe.data import ingest, synthetic_reports

    ingest(synthetic_reports(steps=300), store, "datasets/qoe/reports.parquet")  # as the seed Job stores it
    seeded = store.get("datasets/qoe/reports.parquet")
    outcome = qoe_train(epochs=2, batch_size=128, workers=2)  # the default inputs: the stored dataset
    assert not (tmp_path / "mlruns").exists()  # artifacts stay under the state folder

    version, _, alias = outcome.partition("@")
    assert version == "1" and alias in {"champion", "candidate"}
    keys = store.list()
    assert {
        "datasets/qoe/reports.parquet",
        "features/qoe/train.parquet",
        "models/qoe/latest.pt",
        "models/qoe/latest-evaluation.json",
        "models/qoe/latest-history.json",
    } <= set(keys)
    checkpoints = [k for k in keys if k.startswith("checkpoints/") and k.endswith("model.pt")]
    assert len(checkpoints) == 2, keys  # one per epoch, uploaded by the Ray Train workers
    assert store.get("datasets/qoe/reports.parquet") == seeded  # learnt from, never overwritten
    assert not (tmp_path / "state" / "checkpoints").exists()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}")
    registered = mlflow.MlflowClient().get_model_version("qoe", "1")
    assert registered.tags["naomi.reason"]
    assert train_task.task_config is RAY_CONFIG and RAY_CONFIG.worker_node_config[0].group_name == "x86"
    assert not RAY_CONFIG.enable_autoscaling
    assert register_task.name.endswith("register_task")


def test_ingest_task_reads_a_dataset_from_the_store_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    from workloads.common.storage import LocalStore
    from workloads.qoe.data import CellReports, DataValidationError, load_reports, synthetic_reports
    from workloads.qoe.workflow import ingest_task

    monkeypatch.setenv("NAOMI_STORE", str(tmp_path / "objects"))
    store = LocalStore(tmp_path / "objects")
    lines = [c if isinstance(c, bytes) else c.encode() for c in synthetic_reports(steps=30)]
    store.put("uploads/cells.json.gz", gzip.compress(b"\n".join(lines)))
    key = ingest_task(dataset="uploads/cells.json.gz", steps=0)
    assert key == "uploads/cells.json.parquet"  # beside the upload, never over the stored dataset
    assert len(CellReports.from_parquet(store.get(key))) == len(load_reports(lines)) > 0
    store.put("uploads/bad.json", b"\n".join([*lines[:5], b'{"Viavi.Cell.Name": "__import__(\\"os\\")"}']))
    with pytest.raises(
        DataValidationError, match=r"uploads/bad\.json: line 6: cellMeasReport: expected an object"
    ):
        ingest_task(dataset="uploads/bad.json", steps=0)
    assert not store.exists("uploads/bad.json.parquet")  # nothing half-written
