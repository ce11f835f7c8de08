"""Benchmark: rotation time, seconds from the start of the second `up` to every consumer healthy.

Modelled by the rotation test's steps (`tests.platform_model.apply_rotation`): the edge-lab render
brought up on a real PostgreSQL 15 with MLflow as rendered, then the render with
`naomi:credentials.rotation` raised for MLflow, Postgres and the object store, applied as
pulumi-kubernetes and the controllers would (pod restarts where the template changed, new Jobs
run, in the plan's order), and finally a consumer that starts after the rotation: the serving login
loads `models:/qoe@champion`. Prints each step and the total. The object store's setup Job and
MinIO's restart are not here (no MinIO), nor image pulls and scheduling: a real cluster adds those.

    .venv/bin/python benchmarks/rotation.py           # the whole platform
    .venv/bin/python benchmarks/rotation.py --smoke   # Postgres only: restart + roles Job
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.local_cluster import GeneratedValues, evaluate_stack_with
from tests.platform_model import (
    apply_rotation,
    client_login,
    log_model,
    predicts,
    signed_in,
    start_platform,
    start_s3,
    user_login,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="rotate Postgres on a Postgres-only platform")
    args = parser.parse_args()
    generations = {"postgres": 2} if args.smoke else {"mlflow": 2, "postgres": 2, "objectStore": 2}
    before = evaluate_stack_with("edge-lab")
    after = evaluate_stack_with("edge-lab", {"credentials": {"rotation": generations}})
    s3 = start_s3()
    with tempfile.TemporaryDirectory(prefix="naomi-rotation-bench-") as scratch:
        started = time.monotonic()
        platform = start_platform(
            before,
            GeneratedValues(before, "benchmark"),
            Path(scratch) / "before",
            s3=s3,
            with_mlflow=not args.smoke,
        )
        up = time.monotonic() - started
        try:
            if platform.mlflow is not None:
                with signed_in(platform.mlflow.url, *user_login(platform.cluster, "training")) as mlflow:
                    log_model(mlflow, experiment="qoe", model="qoe")
            done = apply_rotation(platform, after, Path(scratch) / "after")
            steps = list(done.steps)
            if platform.mlflow is not None:
                started = time.monotonic()
                with signed_in(*client_login(platform.cluster, "naomi-serving")) as mlflow:
                    if not predicts(mlflow, "models:/qoe@champion"):
                        raise SystemExit("the serving login could not use the model after the rotation")
                steps.append(("a serving consumer starts and loads its model", time.monotonic() - started))
            else:
                server, cluster = platform.postgres.server, platform.cluster
                for consumer in ("mlflow", "mlflow_auth", "flyte"):
                    password = cluster.secret(
                        "naomi-platform", f"postgres-{consumer.replace('_', '-')}", "password"
                    )
                    if not server.can_login(consumer, password, consumer):
                        raise SystemExit(f"{consumer}: the rotated password is refused")
        finally:
            platform.stop()
            platform.postgres.server.stop()
            s3.stop()
    print(f"first up (Postgres{'' if args.smoke else ', MLflow, users'}) here: {up:.1f} s")
    print(
        f"rotation of {', '.join(sorted(generations))} (generation 2), new Jobs: {', '.join(done.rollout.new_jobs)}"
    )
    for name, seconds in steps:
        print(f"    {name:60s} {seconds:6.1f} s")
    print(f"rotation time, up start to every consumer healthy: {sum(s for _, s in steps):.1f} s")


if __name__ == "__main__":
    main()
