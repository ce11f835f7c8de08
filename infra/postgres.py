"""Postgres for the platform: one StatefulSet, one database and role per consumer, backups, restore.

Every password is generated (`infra.credentials`, generation `naomi:credentials.rotation.postgres`).
Applying them:
- the superuser: the official image sets POSTGRES_PASSWORD only when it initialises an empty volume
  (docker-library/postgres `17/bookworm/docker-entrypoint.sh`: `docker_init_database_dir` runs
  only without `PG_VERSION`), so the container's postStart hook sets it on every start, over the
  Unix socket the image trusts (`initdb` without `--auth` trusts local connections; the entrypoint's
  `pg_setup_hba_conf` adds password auth for TCP only). The pod template carries the generation,
  so a rotation restarts the pod and the hook applies the new password;
- consumer roles and databases: an idempotent Job (create if missing, `ALTER ROLE ... PASSWORD`
  always) named by a hash of its script and the generation, so a rotation re-runs it.
Each consumer gets a Secret with `username`, `password`, `database`, `host`, `port`, `uri` (libpq)
and `sqlalchemyUri` (`postgresql+psycopg2://`: SQLAlchemy 2.1 maps a bare `postgresql://` to
psycopg 3, which naomi-mlflow does not ship), read by reference.

Backups: a CronJob dumps every database (`pg_dump -Fc`, the postgres image) and uploads the set,
prunes by retention and lists what is kept (`workloads/ops/backup.py` on naomi-mlflow, through the
backup consumer's object-store user). Restore: a suspended CronJob, run on demand
(`kubectl create job --from=cronjob/postgres-restore`), fetches a set, ensures the roles with the
current passwords, recreates each database and `pg_restore`s it (docs/runbooks/backup-restore.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import credentials, pods
from infra.contract import Contract, Flow, Pods, Reachable, tcp
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.versions import POSTGRES_IMAGE

PORT = 5432
SUPERUSER = "postgres"
# Any UID works: the official Debian image maps an unknown UID through nss_wrapper (fsGroup owns
# the data volume); a high UID avoids clashing with host users (checkov CKV_K8S_40).
POSTGRES_UID = 10001
SOCKET_DIR = "/var/run/postgresql"
OPS_MOUNT = "/etc/naomi/ops"
BACKUP_SCRIPT = Path(__file__).resolve().parent.parent / "workloads" / "ops" / "backup.py"
# The restore CronJob never fires on its own (suspended); the schedule only has to be valid.
NEVER = "0 0 29 2 *"


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
    # naomi-mlflow: Python with the object-store client, for the backup upload and restore fetch
    ops_image: pulumi.Input[str] | None = None
    backup: BackupTarget | None = None
    backup_schedule: str = "30 2 * * *"
    backup_retention_days: int = 7
    generation: int = 1  # naomi:credentials.rotation.postgres

    def __post_init__(self) -> None:
        for consumer in self.consumers:
            if not consumer.replace("_", "").isalnum() or not consumer.islower():
                raise ValueError(
                    f"PostgresArgs.consumers: {consumer!r} must be lower-case letters, digits, '_'"
                )
        if len(set(self.consumers)) != len(self.consumers):
            raise ValueError("PostgresArgs.consumers must be unique")
        if self.backup is not None and self.ops_image is None:
            raise ValueError("PostgresArgs.ops_image is required with a backup target")
        if self.generation < 1:
            raise ValueError("PostgresArgs.generation must be >= 1")


def password_variable(consumer: str) -> str:
    return f"PASSWORD_{consumer.upper()}"


def superuser_password_hook() -> str:
    """postStart: apply POSTGRES_PASSWORD to the superuser over the trusted Unix socket."""
    return (
        "set -eu\n"
        "for attempt in $(seq 1 60); do\n"
        f"  if pg_isready -q -h {SOCKET_DIR} -U {SUPERUSER} && psql -X -q -v ON_ERROR_STOP=1 -h {SOCKET_DIR} -U {SUPERUSER} -d postgres -v pw=\"$POSTGRES_PASSWORD\" <<'SQL'\n"
        f"ALTER ROLE {SUPERUSER} WITH PASSWORD :'pw';\n"
        "SQL\n"
        "  then exit 0; fi\n"
        "  sleep 2\n"
        "done\n"
        'echo "could not set the superuser password after $attempt attempts" >&2\n'
        "exit 1\n"
    )


def databases_script(consumers: tuple[str, ...]) -> str:
    """Create each consumer's role and database if missing; set the role's password always."""
    statements = []
    for consumer in sorted(consumers):
        statements.append(
            f"psql -v ON_ERROR_STOP=1 -v pw=\"${password_variable(consumer)}\" <<'SQL'\n"
            f"SELECT 'CREATE ROLE {consumer} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{consumer}')\\gexec\n"
            f"ALTER ROLE {consumer} WITH LOGIN PASSWORD :'pw';\n"
            f"SELECT 'CREATE DATABASE {consumer} OWNER {consumer}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{consumer}')\\gexec\n"
            f"REVOKE ALL ON DATABASE {consumer} FROM PUBLIC;\n"
            "SQL\n"
        )
    return "set -eu\nuntil pg_isready -q; do sleep 2; done\n" + "".join(statements)


def dump_script(consumers: tuple[str, ...]) -> str:
    databases = " ".join(sorted(consumers))
    return (
        'set -eu\nstamp=$(date -u +%Y%m%dT%H%M%SZ)\nmkdir -p "/backup/$stamp"\n'
        f"for db in {databases}; do\n"
        '  pg_dump -Fc -d "$db" -f "/backup/$stamp/$db.dump"\n'
        '  echo "dumped $db"\n'
        "done\n"
    )


def restore_script(consumers: tuple[str, ...]) -> str:
    """Roles with the current passwords, then each database recreated from its dump."""
    databases = " ".join(sorted(consumers))
    return (
        databases_script(consumers)
        + "set_name=$(cat /backup/SET)\n"
        + f"for db in {databases}; do\n"
        + '  if [ ! -f "/backup/$db.dump" ]; then echo "dump set $set_name has no $db.dump" >&2; exit 1; fi\n'
        + "done\n"
        + f"for db in {databases}; do\n"
        + '  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" '
        + '-c "CREATE DATABASE $db OWNER $db" -c "REVOKE ALL ON DATABASE $db FROM PUBLIC"\n'
        + '  pg_restore --exit-on-error --single-transaction -d "$db" "/backup/$db.dump"\n'
        + '  echo "restored $db from $set_name"\n'
        + "done\n"
    )


class Postgres(pulumi.ComponentResource):
    """A single Postgres with per-consumer databases; `consumer_secret(name)` for each."""

    host: pulumi.Output[str]
    generation: int
    # What a consumer's own resources wait for: roles and databases exist with the current passwords.
    # Pass them to those resources themselves: Pulumi does not make a component's children wait for
    # the component's depends_on (pulumi/pulumi#8721).
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.generation = args.generation
        generations = {"postgres": args.generation}
        superuser_password = credentials.password(f"{name}-superuser", generation=args.generation, opts=child)
        superuser = k8s.core.v1.Secret(
            f"{name}-superuser",
            metadata={
                "name": f"{name}-superuser",
                "namespace": args.namespace,
                "labels": labels("postgres", name),
            },
            type="Opaque",
            string_data={"username": SUPERUSER, "password": superuser_password.result},
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
        ready = ["pg_isready", "-U", SUPERUSER, "-h", "127.0.0.1"]
        self.stateful_set = pods.stateful_set(
            name,
            component="postgres",
            instance=name,
            namespace=args.namespace,
            version=args.image,
            uid=POSTGRES_UID,
            container=pods.container(
                "postgres",
                args.image,
                args.resources,
                env=[*superuser_env, {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
                ports=[{"name": "postgres", "containerPort": PORT}],
                readinessProbe=pods.exec_probe(ready),
                livenessProbe=pods.exec_probe(ready, initial_delay=30),
                lifecycle={"postStart": {"exec": {"command": ["/bin/sh", "-c", superuser_password_hook()]}}},
                volumeMounts=[
                    {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                    {"name": "run", "mountPath": SOCKET_DIR},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            ),
            volume_size=args.volume_size,
            node_selector=args.storage_node_selector,
            volumes=[
                {"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            ],
            pod_annotations=credentials.annotation(generations),
            opts=child,
        )

        self._consumer_secrets: dict[str, pulumi.Output[str]] = {}
        self._consumer_uris: dict[str, pulumi.Output[str]] = {}
        self._consumer_sqlalchemy_uris: dict[str, pulumi.Output[str]] = {}
        consumer_env: list[dict[str, Any]] = []
        for consumer in args.consumers:
            password = credentials.password(f"{name}-{consumer}", generation=args.generation, opts=child)
            address = pulumi.Output.concat(
                consumer, ":", password.result, "@", self.host, f":{PORT}/", consumer
            )
            uri = pulumi.Output.concat("postgresql://", address)
            sqlalchemy_uri = pulumi.Output.concat("postgresql+psycopg2://", address)
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
                    "sqlalchemyUri": sqlalchemy_uri,
                },
                opts=child,
            )
            self._consumer_secrets[consumer] = secret.metadata.name
            self._consumer_uris[consumer] = pulumi.Output.secret(uri)
            self._consumer_sqlalchemy_uris[consumer] = pulumi.Output.secret(sqlalchemy_uri)
            consumer_env.append(
                pods.secret_env(password_variable(consumer), secret.metadata.name, "password")
            )

        self._superuser_env = superuser_env
        self._consumer_env = consumer_env
        self.databases_job = self._databases_job(name, args, generations, child)
        self.ready = [self.databases_job]
        self.pods = Pods(args.namespace, selector_labels("postgres", name), "postgres")
        flows = [
            self.client(
                Pods(args.namespace, selector_labels("postgres-databases", name), "postgres-databases"),
                "database and role setup Job",
            )
        ]
        if args.backup is not None:
            assert args.ops_image is not None  # checked by PostgresArgs
            scripts = k8s.core.v1.ConfigMap(
                f"{name}-ops",
                metadata={
                    "name": f"{name}-ops",
                    "namespace": args.namespace,
                    "labels": labels("postgres", name),
                },
                data={"backup.py": BACKUP_SCRIPT.read_text()},
                opts=child,
            )
            self._backup_cronjob(name, args, args.backup, args.ops_image, scripts, child)
            self._restore_cronjob(name, args, args.backup, args.ops_image, scripts, child)
            backup_pods = Pods(args.namespace, selector_labels("postgres-backup", name), "postgres-backup")
            restore_pods = Pods(args.namespace, selector_labels("postgres-restore", name), "postgres-restore")
            flows += [
                self.client(backup_pods, "nightly pg_dump"),
                args.backup.store.client(backup_pods, "backup upload"),
                self.client(restore_pods, "restore: roles and pg_restore"),
                args.backup.store.client(restore_pods, "restore: fetch the dump set"),
            ]
        self.contract = Contract(flows=tuple(flows))
        self.register_outputs({"host": self.host})

    def client(self, pods: Pods, why: str) -> Flow:
        """The flow a consumer needs to reach Postgres."""
        return Flow(pods, self.pods, tcp("postgres"), f"{why}: Postgres")

    def consumer_secret(self, consumer: str) -> pulumi.Output[str]:
        """Name of the Secret with `username`, `password`, `database`, `host`, `port`, `uri`, `sqlalchemyUri`."""
        if consumer not in self._consumer_secrets:
            raise KeyError(
                f"no Postgres consumer {consumer!r}; consumers: {', '.join(sorted(self._consumer_secrets))}"
            )
        return self._consumer_secrets[consumer]

    def consumer_uri(self, consumer: str, *, sqlalchemy: bool = False) -> pulumi.Output[str]:
        """The consumer's connection URI as a secret (for config files that cannot use env)."""
        self.consumer_secret(consumer)
        return (self._consumer_sqlalchemy_uris if sqlalchemy else self._consumer_uris)[consumer]

    def _superuser_client_env(self) -> list[dict[str, Any]]:
        """libpq as the superuser over TCP (the Service)."""
        return [
            *self._superuser_env,
            {"name": "PGHOST", "value": self.host},
            {"name": "PGUSER", "value": SUPERUSER},
        ]

    def _client_env(self) -> list[dict[str, Any]]:
        """The superuser's libpq environment plus every consumer's password (role reconciling)."""
        return [*self._superuser_client_env(), *self._consumer_env]

    def _databases_job(
        self, name: str, args: PostgresArgs, generations: dict[str, int], child: pulumi.ResourceOptions
    ) -> k8s.batch.v1.Job:
        script = databases_script(args.consumers)
        return k8s.batch.v1.Job(
            f"{name}-databases",
            metadata={
                "name": f"{name}-databases-{credentials.job_suffix(script, generations)}",
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
                            env=self._client_env(),
                        )
                    ],
                ),
            },
            # After the StatefulSet's rollout: a rotation's new superuser password is applied by
            # the restarted pod's postStart hook, and this Job signs in with it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.stateful_set]),
        )

    @staticmethod
    def _storage_env(backup: BackupTarget) -> list[dict[str, Any]]:
        return [
            pods.secret_env("AWS_ACCESS_KEY_ID", backup.credentials_secret, "accessKey"),
            pods.secret_env("AWS_SECRET_ACCESS_KEY", backup.credentials_secret, "secretKey"),
            {"name": "S3_ENDPOINT", "value": backup.endpoint},
            {"name": "BACKUP_BUCKET", "value": backup.bucket},
            {"name": "HOME", "value": "/tmp"},
        ]

    @staticmethod
    def _ops_mounts() -> list[dict[str, Any]]:
        return [
            {"name": "backup", "mountPath": "/backup"},
            {"name": "ops", "mountPath": OPS_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ]

    @staticmethod
    def _volumes(scripts: k8s.core.v1.ConfigMap) -> list[dict[str, Any]]:
        return [
            {"name": "backup", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "ops", "configMap": {"name": scripts.metadata.name}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ]

    def _backup_cronjob(
        self,
        name: str,
        args: PostgresArgs,
        backup: BackupTarget,
        ops_image: pulumi.Input[str],
        scripts: k8s.core.v1.ConfigMap,
        child: pulumi.ResourceOptions,
    ) -> None:
        upload = [
            "python",
            f"{OPS_MOUNT}/backup.py",
            "upload",
            "--from",
            "/backup",
            "--retention-days",
            str(args.backup_retention_days),
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
                                    ops_image,
                                    args.job_resources,
                                    command=upload,
                                    env=self._storage_env(backup),
                                    volumeMounts=self._ops_mounts(),
                                )
                            ],
                            init_containers=[
                                pods.container(
                                    "dump",
                                    args.image,
                                    args.job_resources,
                                    command=["/bin/sh", "-c", dump_script(args.consumers)],
                                    env=self._superuser_client_env(),
                                    volumeMounts=[{"name": "backup", "mountPath": "/backup"}],
                                )
                            ],
                            volumes=self._volumes(scripts),
                        ),
                    }
                },
            },
            opts=child,
        )

    def _restore_cronjob(
        self,
        name: str,
        args: PostgresArgs,
        backup: BackupTarget,
        ops_image: pulumi.Input[str],
        scripts: k8s.core.v1.ConfigMap,
        child: pulumi.ResourceOptions,
    ) -> None:
        fetch = ["python", f"{OPS_MOUNT}/backup.py", "fetch", "--to", "/backup"]
        k8s.batch.v1.CronJob(
            f"{name}-restore",
            metadata={
                "name": f"{name}-restore",
                "namespace": args.namespace,
                "labels": labels("postgres-restore", name),
            },
            spec={
                "schedule": NEVER,
                "suspend": True,  # a template for `kubectl create job --from=cronjob/postgres-restore`
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 0,  # a failed restore is for an operator to read, not to repeat
                        "template": pods.job_pod_template(
                            "postgres-restore",
                            name,
                            POSTGRES_UID,
                            [
                                pods.container(
                                    "restore",
                                    args.image,
                                    args.job_resources,
                                    command=["/bin/sh", "-c", restore_script(args.consumers)],
                                    env=self._client_env(),
                                    volumeMounts=[{"name": "backup", "mountPath": "/backup"}],
                                )
                            ],
                            init_containers=[
                                pods.container(
                                    "fetch",
                                    ops_image,
                                    args.job_resources,
                                    command=fetch,
                                    # "latest", or a stamp from the backup's log (runbook)
                                    env=[
                                        {"name": "BACKUP_SET", "value": "latest"},
                                        *self._storage_env(backup),
                                    ],
                                    volumeMounts=self._ops_mounts(),
                                )
                            ],
                            volumes=self._volumes(scripts),
                        ),
                    }
                },
            },
            opts=child,
        )
