"""Benchmark: backup and restore time of an MLflow database of 10,000 runs on a real PostgreSQL.

The edge-lab render's own Jobs do the work (`tests.local_cluster`: containers as rendered): the roles
Job on a fresh PostgreSQL 15, then MLflow's schema (its migrations), one run with 5 params, 20
metric points and 3 tags copied in SQL to `--runs` runs; then the `postgres-backup` CronJob's pod
(pg_dump of every database, upload to an S3 server on loopback, retention) and, into another fresh
server, the `postgres-restore` CronJob's pod (fetch, roles, recreate, pg_restore). Checks that the
restored database holds every run and that MLflow reads one back. Prints the figures.

    .venv/bin/python benchmarks/backup_restore.py [--runs 10000] [--smoke]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.local_cluster import GeneratedValues, LocalCluster, PostgresPod, evaluate_stack_with
from tests.platform_model import PLATFORM, create_buckets, start_s3

COPY_TABLES = ("runs", "params", "metrics", "latest_metrics", "tags")


def populate(pod: PostgresPod, uri: str, runs: int) -> str:
    """MLflow's schema and `runs` runs in the `mlflow` database; returns one copied run's id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, "s3://mlflow")
    experiment = store.create_experiment("bench")
    run = store.create_run(experiment, "bench", 0, [], "seed")
    run_id = run.info.run_id
    store.log_batch(
        run_id,
        metrics=[Metric("loss", 1.0 / (step + 1), step, step) for step in range(10)]
        + [Metric("mae", 2.0 / (step + 1), step, step) for step in range(10)],
        params=[Param(f"p{i}", str(i)) for i in range(5)],
        tags=[RunTag(f"t{i}", "x") for i in range(3)],
    )
    store.engine.dispose()
    for table in COPY_TABLES:
        columns = pod.server.sql(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
            f"WHERE table_name = '{table}'",
            database="mlflow",
        ).split(",")
        select = ",".join("md5(run_uuid || g::text)" if c == "run_uuid" else c for c in columns)
        pod.server.sql(
            f"INSERT INTO {table} ({','.join(columns)}) SELECT {select} FROM {table}, "
            f"generate_series(1, {runs - 1}) AS g WHERE run_uuid = '{run_id}'",
            database="mlflow",
        )
    return pod.server.sql(f"SELECT md5('{run_id}' || '7')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="200 runs: a quick check that it works")
    args = parser.parse_args()
    runs = 200 if args.smoke else args.runs
    evaluation = evaluate_stack_with("edge-lab")
    values = GeneratedValues(evaluation, "benchmark")
    s3 = start_s3()
    with tempfile.TemporaryDirectory(prefix="naomi-backup-bench-") as scratch:
        source = LocalCluster.of(evaluation, values, Path(scratch) / "source")
        source.services[f"object-store.{PLATFORM}"] = s3.endpoint
        create_buckets(source, s3)
        pod = PostgresPod(source)
        target_pod = None
        try:
            source.run_job(source.named("Job", PLATFORM, "postgres-databases-"))
            uri = source.local(source.secret(PLATFORM, "postgres-mlflow", "sqlalchemyUri"))
            started = time.monotonic()
            copied = populate(pod, uri, runs)
            populated = time.monotonic() - started

            started = time.monotonic()
            backup = source.run_job(source.job_from_cronjob(PLATFORM, "postgres-backup", "backup-bench"))
            backup_seconds = time.monotonic() - started
            sizes = {
                o.object_name.rsplit("/", 1)[-1]: o.size
                for o in s3.client.list_objects("backups", recursive=True)
            }

            target = LocalCluster(
                source.objects, values, Path(scratch) / "target", services=dict(source.services)
            )
            target_pod = PostgresPod(target)
            started = time.monotonic()
            restore = target.run_job(target.job_from_cronjob(PLATFORM, "postgres-restore", "restore-bench"))
            restore_seconds = time.monotonic() - started

            count = int(target_pod.server.sql("SELECT count(*) FROM runs", database="mlflow"))
            if count != runs:
                raise SystemExit(f"restored {count} runs, expected {runs}")
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            restored = SqlAlchemyStore(
                target.local(target.secret(PLATFORM, "postgres-mlflow", "sqlalchemyUri")), "s3://mlflow"
            )
            run = restored.get_run(copied)
            if len(run.data.params) != 5 or run.data.metrics.get("loss") is None:
                raise SystemExit(f"run {copied} came back incomplete: {run.data}")
            restored.engine.dispose()
        finally:
            pod.server.stop()
            if target_pod is not None:
                target_pod.server.stop()
            s3.stop()
    print(
        f"MLflow database: {runs} runs (5 params, 20 metric points, 3 tags each), populated in {populated:.1f} s"
    )
    print(
        "dump set: "
        + ", ".join(
            f"{name} {size / 1024:.0f} KiB" for name, size in sorted(sizes.items()) if name.endswith(".dump")
        )
    )
    print(f"backup (pg_dump x3 + upload + retention, CronJob pod as rendered): {backup_seconds:.1f} s")
    print(f"restore (fetch + roles + recreate + pg_restore x3, into a fresh server): {restore_seconds:.1f} s")
    print(f"restored: {count} runs; MLflow reads run {copied} back")
    print("upload log:", backup.logs("upload").strip().splitlines()[-1])
    print("restore log:", restore.logs("restore").strip().splitlines()[-1])


if __name__ == "__main__":
    main()
