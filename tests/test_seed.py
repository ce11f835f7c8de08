"""The seed Job's code against an S3 server: uploads what is missing, leaves existing data alone."""

from __future__ import annotations

from workloads.common.storage import S3Store
from workloads.seed import QOE_KEY, seed


def test_seed_uploads_once_and_never_overwrites(s3_endpoint: str) -> None:
    from workloads.mnist.data import SEED_KEY

    store = S3Store(endpoint=s3_endpoint, access_key="testing", secret_key="testing", bucket="datasets")
    client = store._client()
    if not client.bucket_exists("datasets"):
        client.make_bucket("datasets")
    assert seed(store, ["qoe", "mnist"]) == {QOE_KEY: True, SEED_KEY: True}
    store.put(SEED_KEY, b"the user's own data")
    assert seed(store, ["qoe", "mnist"]) == {QOE_KEY: False, SEED_KEY: False}
    assert store.get(SEED_KEY) == b"the user's own data"
