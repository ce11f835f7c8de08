"""The object-store abstraction: local folder and S3 (minio SDK against an S3 server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.common.storage import LocalStore, S3Store, Store
from workloads.qoe.data import CellReports, DataValidationError, ingest, synthetic_reports


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = "datasets-" + "".join(ch for ch in request.node.name.lower() if ch.isalnum())[-40:]
    s3 = S3Store(endpoint=endpoint, access_key="testing", secret_key="testing", bucket=bucket)
    client = s3._client()
    if not client.bucket_exists(s3.bucket):
        client.make_bucket(s3.bucket)
    return s3


def test_put_get_list_exists(store: Store) -> None:
    assert not store.exists("qoe/a.bin")
    store.put("qoe/a.bin", b"\x00\x01")
    store.put("qoe/b/c.bin", b"xyz")
    store.put("other.bin", b"")
    assert store.get("qoe/a.bin") == b"\x00\x01"
    assert store.exists("qoe/b/c.bin")
    assert store.list("qoe/") == ["qoe/a.bin", "qoe/b/c.bin"]


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a//b", "a/./b"])
def test_bad_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x")


def test_ingest_to_s3_is_all_or_nothing(store: Store) -> None:
    lines = list(synthetic_reports(steps=40))
    with pytest.raises(DataValidationError):
        ingest([*lines, '{"cellMeasReport": 7}'], store, "qoe/reports.parquet")
    assert store.list() == []
    reports = ingest(lines, store, "qoe/reports.parquet")
    assert len(CellReports.from_parquet(store.get("qoe/reports.parquet"))) == len(reports)
