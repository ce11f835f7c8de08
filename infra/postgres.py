"""Postgres for the platform: one StatefulSet, one database and user per consumer, backups.

The superuser and every consumer password are generated (`pulumi_random`). Consumer databases
and roles are reconciled by an idempotent Job (create if missing, reset the password to the
generated one), whose name carries a hash of the consumer list. Each consumer gets a Secret
with `username`, `password`, `database`, `host`, `port` and `uri`, which it reads by
reference. A CronJob dumps every database (`pg_dump -Fc`) into the object store's backup
bucket and prunes dumps older than the retention.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import pods
from infra.contract import Contract, Flow, Pods, Reachable, tcp
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.versions import MINIO_CLIENT_IMAGE, POSTGRES_IMAGE

PORT = 5432
# Any UID works: the official Debian image maps an unknown UID through nss_wrapper (fsGroup owns
# the data volume); a high UID avoids clashing with host users (checkov CKV_K8S_40).
POSTGRES_UID = 10001


@dataclass(frozen=True, kw_only=True)
class BackupTarget:
    """Where dumps go: the object store endpoint, its credentials Secret and a bucket."""

    endpoint: pulumi.Input[str]
    credentials_secret: pulumi.Input[str]
    store: Reachable  # the object store (its client flow)
    bucket: str = "backups"


@dataclass(frozen=True, kw_only=True)
class PostgresArgs:
    namespace: str
    consumers: tuple[str, ...]
    resources: Resources
    job_resources: Resources
    volume_size: str = "5Gi"
    storage_node_selector: dict[str, str] = field(default_factory=lambda: {"kubernetes.io/arch": "amd64"})
    image: str = POSTGRES_IMAGE
    backup: BackupTarget | None = None
    backup_schedule: str = "30 2 * * *"
    backup_retention_days: int = 7

    def __post_init__(self) -> None:
        for consumer in self.consumers:
            if not consumer.replace("_", "").isalnum() or not consumer.islower():
                raise ValueError(
                    f"PostgresArgs.consumers: {consumer!r} must be lower-case letters, digits, '_'"
                )
        if len(set(self.consumers)) != len(self.consumers):
            raise ValueError("PostgresArgs.consumers must be unique")


class Postgres(pulumi.ComponentResource):
    """A single Postgres with per-consumer databases; `consumer_secret(name)` for each."""

    host: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        superuser_password = random.RandomPassword(f"{name}-superuser", length=32, special=False, opts=child)
        superuser = k8s.core.v1.Secret(
            f"{name}-superuser",
            metadata={
                "name": f"{name}-superuser",
                "namespace": args.namespace,
                "labels": labels("postgres", name),
            },
            type="Opaque",
            string_data={"username": "postgres", "password": superuser_password.result},
            opts=child,
        )
        service = k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels("postgres", name)},
            spec={
                "type": "ClusterIP",
                "selector": selector_labels("postgres", name),
                "ports": [{"name": "postgres", "port": PORT, "targetPort": "postgres"}],
            },
            opts=child,
        )
        self.host = pulumi.Output.concat(service.metadata.name, ".", args.namespace, ".svc.cluster.local")
        superuser_env = [
            pods.secret_env("POSTGRES_PASSWORD", superuser.metadata.name, "password"),
            pods.secret_env("PGPASSWORD", superuser.metadata.name, "password"),
        ]
        ready = ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"]
        pods.stateful_set(
            name,
            component="postgres",
            instance=name,
            namespace=args.namespace,
            image=args.image,
            uid=POSTGRES_UID,
            container=pods.container(
                "postgres",
                args.image,
                args.resources,
                env=[*superuser_env, {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
                ports=[{"name": "postgres", "containerPort": PORT}],
                readinessProbe=pods.exec_probe(ready),
                livenessProbe=pods.exec_probe(ready, initial_delay=30),
                volumeMounts=[
                    {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                    {"name": "run", "mountPath": "/var/run/postgresql"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            ),
            volume_size=args.volume_size,
            node_selector=args.storage_node_selector,
            volumes=[
                {"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            ],
            opts=child,
        )

        self._consumer_secrets: dict[str, pulumi.Output[str]] = {}
        self._consumer_uris: dict[str, pulumi.Output[str]] = {}
        consumer_env: list[dict[str, Any]] = []
        for consumer in args.consumers:
            password = random.RandomPassword(f"{name}-{consumer}", length=32, special=False, opts=child)
            uri = pulumi.Output.concat(
                "postgresql://", consumer, ":", password.result, "@", self.host, f":{PORT}/", consumer
            )
            secret = k8s.core.v1.Secret(
                f"{name}-{consumer}",
                metadata={
                    "name": f"{name}-{consumer.replace('_', '-')}",
                    "namespace": args.namespace,
                    "labels": labels("postgres", name),
                },
                type="Opaque",
                string_data={
                    "username": consumer,
                    "password": password.result,
                    "database": consumer,
                    "host": self.host,
                    "port": str(PORT),
                    "uri": uri,
                },
                opts=child,
            )
            self._consumer_secrets[consumer] = secret.metadata.name
            self._consumer_uris[consumer] = pulumi.Output.secret(uri)
            consumer_env.append(
                pods.secret_env(f"PASSWORD_{consumer.upper()}", secret.metadata.name, "password")
            )

        self._databases_job(name, args, superuser_env, consumer_env, child)
        self.pods = Pods(args.namespace, selector_labels("postgres", name), "postgres")
        flows = [
            self.client(
                Pods(args.namespace, selector_labels("postgres-databases", name), "postgres-databases"),
                "database and role setup Job",
            )
        ]
        if args.backup is not None:
            self._backup_cronjob(name, args, args.backup, superuser_env, child)
            backup_pods = Pods(args.namespace, selector_labels("postgres-backup", name), "postgres-backup")
            flows += [
                self.client(backup_pods, "nightly pg_dump"),
                args.backup.store.client(backup_pods, "backup upload"),
            ]
        self.contract = Contract(flows=tuple(flows))
        self.register_outputs({"host": self.host})

    def client(self, pods: Pods, why: str) -> Flow:
        """The flow a consumer needs to reach Postgres."""
        return Flow(pods, self.pods, tcp("postgres"), f"{why}: Postgres")

    def consumer_secret(self, consumer: str) -> pulumi.Output[str]:
        """Name of the Secret with `username`, `password`, `database`, `host`, `port`, `uri`."""
        if consumer not in self._consumer_secrets:
            raise KeyError(
                f"no Postgres consumer {consumer!r}; consumers: {', '.join(sorted(self._consumer_secrets))}"
            )
        return self._consumer_secrets[consumer]

    def consumer_uri(self, consumer: str) -> pulumi.Output[str]:
        """The consumer's connection URI as a secret (for config files that cannot use env)."""
        self.consumer_secret(consumer)
        return self._consumer_uris[consumer]

    def _databases_job(
        self,
        name: str,
        args: PostgresArgs,
        superuser_env: list[dict[str, Any]],
        consumer_env: list[dict[str, Any]],
        child: pulumi.ResourceOptions,
    ) -> None:
        statements = []
        for consumer in sorted(args.consumers):
            variable = f"PASSWORD_{consumer.upper()}"
            statements.append(
                f"psql -v ON_ERROR_STOP=1 -v pw=\"${variable}\" <<'SQL'\n"
                f"SELECT 'CREATE ROLE {consumer} LOGIN' WHERE NOT EXISTS "
                f"(SELECT FROM pg_roles WHERE rolname = '{consumer}')\\gexec\n"
                f"ALTER ROLE {consumer} WITH LOGIN PASSWORD :'pw';\n"
                f"SELECT 'CREATE DATABASE {consumer} OWNER {consumer}' WHERE NOT EXISTS "
                f"(SELECT FROM pg_database WHERE datname = '{consumer}')\\gexec\n"
                f"REVOKE ALL ON DATABASE {consumer} FROM PUBLIC;\n"
                "SQL\n"
            )
        script = "set -eu\nuntil pg_isready -q; do sleep 2; done\n" + "".join(statements)
        digest = hashlib.sha256(script.encode()).hexdigest()[:8]
        k8s.batch.v1.Job(
            f"{name}-databases",
            metadata={
                "name": f"{name}-databases-{digest}",
                "namespace": args.namespace,
                "labels": labels("postgres-databases", name),
            },
            spec={
                "backoffLimit": 20,
                "ttlSecondsAfterFinished": 86400,
                "template": pods.job_pod_template(
                    "postgres-databases",
                    name,
                    POSTGRES_UID,
                    [
                        pods.container(
                            "databases",
                            args.image,
                            args.job_resources,
                            command=["/bin/sh", "-c", script],
                            env=[
                                *superuser_env,
                                *consumer_env,
                                {"name": "PGHOST", "value": self.host},
                                {"name": "PGUSER", "value": "postgres"},
                            ],
                        )
                    ],
                ),
            },
            opts=child,
        )

    def _backup_cronjob(
        self,
        name: str,
        args: PostgresArgs,
        backup: BackupTarget,
        superuser_env: list[dict[str, Any]],
        child: pulumi.ResourceOptions,
    ) -> None:
        databases = " ".join(sorted(args.consumers))
        dump = (
            "set -eu\nstamp=$(date -u +%Y%m%dT%H%M%SZ)\nmkdir -p /backup/$stamp\n"
            f'for db in {databases}; do pg_dump -Fc -d "$db" -f /backup/$stamp/$db.dump; done\n'
        )
        upload = (
            "set -eu\n"
            'mc alias set store "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null\n'
            f'mc mirror --quiet /backup "store/{backup.bucket}/postgres"\n'
            f'mc rm --recursive --force --older-than {args.backup_retention_days}d "store/{backup.bucket}/postgres" || true\n'
        )
        storage_env = [
            pods.secret_env("AWS_ACCESS_KEY_ID", backup.credentials_secret, "accessKey"),
            pods.secret_env("AWS_SECRET_ACCESS_KEY", backup.credentials_secret, "secretKey"),
            {"name": "S3_ENDPOINT", "value": backup.endpoint},
            {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"},
        ]
        k8s.batch.v1.CronJob(
            f"{name}-backup",
            metadata={
                "name": f"{name}-backup",
                "namespace": args.namespace,
                "labels": labels("postgres-backup", name),
            },
            spec={
                "schedule": args.backup_schedule,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "template": pods.job_pod_template(
                            "postgres-backup",
                            name,
                            POSTGRES_UID,
                            [
                                pods.container(
                                    "upload",
                                    MINIO_CLIENT_IMAGE,
                                    args.job_resources,
                                    command=["/bin/sh", "-c", upload],
                                    env=storage_env,
                                    volumeMounts=[
                                        {"name": "backup", "mountPath": "/backup"},
                                        {"name": "tmp", "mountPath": "/tmp"},
                                    ],
                                )
                            ],
                            init_containers=[
                                pods.container(
                                    "dump",
                                    args.image,
                                    args.job_resources,
                                    command=["/bin/sh", "-c", dump],
                                    env=[
                                        *superuser_env,
                                        {"name": "PGHOST", "value": self.host},
                                        {"name": "PGUSER", "value": "postgres"},
                                    ],
                                    volumeMounts=[{"name": "backup", "mountPath": "/backup"}],
                                )
                            ],
                            volumes=[
                                {"name": "backup", "emptyDir": {"sizeLimit": "2Gi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                            ],
                        ),
                    }
                },
            },
            opts=child,
        )
