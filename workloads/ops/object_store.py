"""Reconcile the object store: the buckets, and one user and bucket-scoped policy per consumer.

Run by the `object-store-buckets-<hash>` Job with the root credentials; the Job's name carries the
plan, this script and the credential generation, so a new consumer key re-runs it. Buckets are
created when missing. Each consumer's policy is (re)written, its user is added with the secret key
from its Secret (adding an existing user sets its secret key: that is the re-key on rotation) and
the policy is attached unless it already is. The admin calls are MinIO's admin API through minio-py
(minio-py 7.2.20 `MinioAdmin`: policy_add, user_add, user_info, attach_policy), the API
`mc admin` uses; no `mc` binary or shell is needed, so the Job runs on naomi-mlflow.

    S3_ENDPOINT=http://object-store:9000 MINIO_ROOT_USER=... MINIO_ROOT_PASSWORD=... \\
      python object_store.py --plan buckets.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio, MinioAdmin
from minio.credentials import StaticProvider


@dataclass(frozen=True)
class Consumer:
    name: str
    buckets: tuple[str, ...]
    user_env: str
    secret_env: str

    @property
    def policy_name(self) -> str:
        return f"naomi-{self.name}"

    def policy(self) -> dict[str, object]:
        resources = [r for b in self.buckets for r in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": resources}],
        }


@dataclass(frozen=True)
class Plan:
    buckets: tuple[str, ...]
    consumers: tuple[Consumer, ...]


def load_plan(path: Path) -> Plan:
    document = json.loads(path.read_text())
    return Plan(
        buckets=tuple(document["buckets"]),
        consumers=tuple(
            Consumer(
                name=c["name"], buckets=tuple(c["buckets"]), user_env=c["userEnv"], secret_env=c["secretEnv"]
            )
            for c in document["consumers"]
        ),
    )


def wait_ready(endpoint: str, seconds: float) -> None:
    http = urllib3.PoolManager()
    deadline = time.monotonic() + seconds
    while True:
        try:
            if http.request("GET", f"{endpoint}/minio/health/ready", timeout=5, retries=False).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"object-store: {endpoint} not ready after {seconds:.0f} s")
        time.sleep(2)


def ensure_buckets(client: Minio, buckets: Sequence[str]) -> None:
    for bucket in buckets:
        if client.bucket_exists(bucket):
            print(f"bucket {bucket}: exists")
        else:
            client.make_bucket(bucket)
            print(f"bucket {bucket}: created")


def ensure_consumer(admin: MinioAdmin, consumer: Consumer, access_key: str, secret_key: str) -> None:
    admin.policy_add(consumer.policy_name, policy=consumer.policy())
    admin.user_add(access_key, secret_key)
    attached = json.loads(admin.user_info(access_key) or "{}").get("policyName", "")
    if consumer.policy_name not in str(attached).split(","):
        admin.attach_policy([consumer.policy_name], user=access_key)
    print(f"user {access_key}: key set, policy {consumer.policy_name} on {', '.join(consumer.buckets)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--wait", type=float, default=600)
    args = parser.parse_args(argv)
    plan = load_plan(args.plan)
    endpoint = os.environ["S3_ENDPOINT"].rstrip("/")
    root_user, root_password = os.environ["MINIO_ROOT_USER"], os.environ["MINIO_ROOT_PASSWORD"]
    keys = {}
    for consumer in plan.consumers:
        access_key, secret_key = (
            os.environ.get(consumer.user_env, ""),
            os.environ.get(consumer.secret_env, ""),
        )
        if not access_key or not secret_key:
            raise SystemExit(f"object-store: {consumer.user_env}/{consumer.secret_env} not set")
        keys[consumer.name] = (access_key, secret_key)
    wait_ready(endpoint, args.wait)
    parts = urlsplit(endpoint)
    secure = parts.scheme == "https"
    ensure_buckets(
        Minio(parts.netloc, root_user, root_password, secure=secure, region="us-east-1"), plan.buckets
    )
    admin = MinioAdmin(
        endpoint=parts.netloc, credentials=StaticProvider(root_user, root_password), secure=secure
    )
    for consumer in plan.consumers:
        ensure_consumer(admin, consumer, *keys[consumer.name])
    print(f"object-store: {len(plan.buckets)} buckets, {len(plan.consumers)} consumers reconciled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
