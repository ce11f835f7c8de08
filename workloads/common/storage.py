"""One object-store abstraction: the S3/MinIO API through the `minio` SDK, or a local folder.

Embedded mode (`naomi run` on a laptop) uses `LocalStore`; the cluster uses `S3Store` against the
platform's object store. Writes are all-or-nothing: a local object appears only when complete
(written to a temporary file, then renamed), and an S3 PUT is atomic.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Store(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}: use relative 'a/b/c' paths without '.' or '..'")
    return key


@dataclass(frozen=True)
class LocalStore:
    """Objects as files under `root` (one folder per bucket is the caller's choice of prefix)."""

    root: Path

    def put(self, key: str, data: bytes) -> None:
        target = self.root / _check_key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return (self.root / _check_key(key)).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / _check_key(key)).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        return sorted(k for k in keys if k.startswith(prefix))


@dataclass(frozen=True)
class S3Store:
    """A bucket on any S3 endpoint (the platform's MinIO, an external S3) via the minio SDK."""

    endpoint: str  # host:port
    access_key: str
    secret_key: str
    bucket: str
    secure: bool = False
    region: str = "us-east-1"

    def _client(self):  # type: ignore[no-untyped-def]
        from minio import Minio

        return Minio(self.endpoint, self.access_key, self.secret_key, secure=self.secure, region=self.region)

    def put(self, key: str, data: bytes) -> None:
        self._client().put_object(self.bucket, _check_key(key), io.BytesIO(data), length=len(data))

    def get(self, key: str) -> bytes:
        response = self._client().get_object(self.bucket, _check_key(key))
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self._client().stat_object(self.bucket, _check_key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        objects = self._client().list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(str(o.object_name) for o in objects)


def store_from_environment(default_root: Path) -> Store:
    """`NAOMI_STORE=s3://bucket` (endpoint and keys from AWS_ENDPOINT_URL / AWS_* as Flyte task pods
    get them) or a local folder (`NAOMI_STORE=/path`, default `default_root`)."""
    from urllib.parse import urlparse

    target = os.environ.get("NAOMI_STORE", "")
    if target.startswith("s3://"):
        endpoint = urlparse(os.environ.get("AWS_ENDPOINT_URL", os.environ.get("FLYTE_AWS_ENDPOINT", "")))
        if not endpoint.netloc:
            raise ValueError("NAOMI_STORE=s3://... needs AWS_ENDPOINT_URL (http(s)://host:port)")
        return S3Store(
            endpoint=endpoint.netloc,
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            bucket=target.removeprefix("s3://").strip("/"),
            secure=endpoint.scheme == "https",
        )
    return LocalStore(Path(target) if target else default_root)


def checkpoint_location(store: Store, default_root: Path) -> tuple[str, Any]:
    """Where Ray Train keeps checkpoints for `store`: (storage_path, pyarrow filesystem or None).

    On S3 the checkpoints land in the same bucket under `checkpoints/` (every worker uploads
    there, so a RayJob's pods need no shared volume); locally under `default_root`.
    """
    if isinstance(store, S3Store):
        from pyarrow import fs

        filesystem = fs.S3FileSystem(
            access_key=store.access_key,
            secret_key=store.secret_key,
            endpoint_override=store.endpoint,
            scheme="https" if store.secure else "http",
            region=store.region,
        )
        return f"{store.bucket}/checkpoints", filesystem
    return str(default_root), None
