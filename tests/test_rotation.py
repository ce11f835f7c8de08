"""Rotation end to end (issue 17, defect 2): one `pulumi up` after raising
`naomi:credentials.rotation` reaches the server and every consumer.

On the render: the generation is in the passwords' `keepers` (a replacement), in the names of the
Jobs that apply them (a Job that is not new never runs again) and in the pod templates of what reads
them at start (a restart); and the plan orders them. On real servers (PostgreSQL 15, MLflow as
rendered, `tests.platform_model.apply_rotation`: only what the second render changes is re-run or
restarted): after the rotation every old password is refused, every new one works, and the clients,
signing in with what the new render gives them, keep working on the data they had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from naomi.render.engine import Evaluation
from naomi.render.tree import render
from tests.local_cluster import evaluate_stack_with
from tests.platform_model import (
    PLATFORM,
    admin_login,
    apply_rotation,
    client_login,
    log_model,
    predicts,
    signed_in,
    start_platform,
    start_s3,
    user_login,
)

ROTATE = {"mlflow": 2, "postgres": 2, "objectStore": 2}
PASSWORDS = "random:index/randomPassword:RandomPassword"


def _rotated(**generations: int) -> Evaluation:
    return evaluate_stack_with("edge-lab", {"credentials": {"rotation": generations}})


def _objects(evaluation: Evaluation) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (o["kind"], o["metadata"]["name"]): o
        for o in render(evaluation).kubernetes
        if o["metadata"].get("namespace") == PLATFORM
    }


def _names(objects: dict[tuple[str, str], dict[str, Any]], kind: str) -> set[str]:
    return {name for k, name in objects if k == kind}


def test_generation_one_sets_no_keepers(evaluations: dict[str, Evaluation]) -> None:
    """Stacks made before rotation existed keep their passwords: null -> value keepers replace."""
    passwords = [r for r in evaluations["edge-lab"].records if r.type == PASSWORDS]
    assert passwords and all(not r.inputs.get("keepers") for r in passwords)


@pytest.mark.parametrize(
    ("component", "prefixes", "jobs", "pods"),
    [
        ("mlflow", ("mlflow-",), {"mlflow-users-"}, {("Deployment", "mlflow")}),
        (
            "postgres",
            ("postgres-",),
            {"postgres-databases-"},
            {("StatefulSet", "postgres"), ("Deployment", "mlflow")},
        ),
        (
            "objectStore",
            ("object-store-",),
            {"object-store-buckets-"},
            {("StatefulSet", "object-store"), ("Deployment", "mlflow")},
        ),
    ],
)
def test_raising_a_generation_replaces_its_passwords_and_reruns_what_applies_them(
    evaluations: dict[str, Evaluation],
    component: str,
    prefixes: tuple[str, ...],
    jobs: set[str],
    pods: set[tuple[str, str]],
) -> None:
    before, after = evaluations["edge-lab"], _rotated(**{component: 2})
    keepers = {
        r.name: r.inputs.get("keepers")
        for r in after.records
        if r.type == PASSWORDS or r.type.endswith("RandomString")
    }
    rotated = {name for name, value in keepers.items() if value}
    assert rotated and all(name.startswith(prefixes) for name in rotated)
    assert all(keepers[name] == {"generation": "2"} for name in rotated)
    old, new = _objects(before), _objects(after)
    renamed = _names(new, "Job") - _names(old, "Job")
    assert {next(p for p in jobs if n.startswith(p)) for n in renamed} == jobs and len(renamed) == len(jobs)
    restarted = {
        key
        for key in new
        if key[0] in ("Deployment", "StatefulSet")
        and new[key]["spec"]["template"] != old[key]["spec"]["template"]
    }
    assert restarted == pods
    for kind, name in pods:
        annotations = new[(kind, name)]["spec"]["template"]["metadata"]["annotations"]
        assert f"{component}-2" in annotations["naomi.dev/credentials"]


def test_the_plan_orders_a_rotation(evaluations: dict[str, Evaluation]) -> None:
    """Postgres pod -> roles Job; object store -> setup Job; both -> MLflow pod -> users Job -> the
    consumers' Secrets (pulumi-kubernetes waits for a rollout and for a Job to complete)."""
    records = evaluations["edge-lab"].records

    def urn(kind: str, name: str) -> str:
        (found,) = [r.urn for r in records if r.type.endswith(kind) and r.name == name]
        return found

    def depends(kind: str, name: str, on_kind: str, on: str) -> bool:
        (record,) = [r for r in records if r.type.endswith(kind) and r.name == name]
        return urn(on_kind, on) in record.dependencies

    assert depends(":Job", "postgres-databases", ":StatefulSet", "postgres")
    assert depends(":Job", "object-store-buckets", ":StatefulSet", "object-store")
    # on the Deployment itself: a component's depends_on does not hold its children back
    assert depends(":Deployment", "mlflow", ":Job", "postgres-databases")
    assert depends(":Deployment", "mlflow", ":Job", "object-store-buckets")
    assert depends(":Job", "mlflow-users", ":Deployment", "mlflow")
    for secret in ("serving-mlflow-client", "workloads-mlflow-client"):
        assert depends(":Secret", secret, ":Job", "mlflow-users"), secret


@pytest.mark.slow
def test_one_up_rotates_every_credential_and_the_clients_keep_working(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    before = evaluate_stack_with("edge-lab")
    from tests.local_cluster import GeneratedValues

    s3 = start_s3()
    platform = start_platform(before, GeneratedValues(before, "rotation"), tmp_path / "before", s3=s3)
    try:
        old = platform.cluster
        consumers = ("mlflow", "mlflow_auth", "flyte")
        old_pg = {c: old.secret(PLATFORM, f"postgres-{c.replace('_', '-')}", "password") for c in consumers}
        old_superuser = old.secret(PLATFORM, "postgres-superuser", "password")
        old_logins = {
            "admin": admin_login(old),
            "serving": client_login(old, "naomi-serving")[1:],
            "training": user_login(old, "training"),
        }
        old_metrics = old.secret_data(PLATFORM, "mlflow-metrics")
        with signed_in(platform.mlflow.url, *old_logins["training"]) as mlflow:
            version = log_model(mlflow, experiment="qoe", model="qoe", runs=3)

        done = apply_rotation(platform, _rotated(**ROTATE), tmp_path / "after")
        new = platform.cluster
        assert [name.rsplit("-", 1)[0] for name in done.rollout.new_jobs] == [
            "mlflow-users",
            "object-store-buckets",  # MinIO's admin API: not here (render-checked above)
            "postgres-databases",
        ]
        assert [name for name, _ in done.steps] == [
            "postgres pod restart (postStart hook)",
            f"Job {next(n for n in done.rollout.new_jobs if n.startswith('postgres-databases-'))}",
            "mlflow pod restart",
            f"Job {next(n for n in done.rollout.new_jobs if n.startswith('mlflow-users-'))}",
        ]

        server = platform.postgres.server
        assert not server.can_login("postgres", old_superuser)
        assert server.can_login("postgres", new.secret(PLATFORM, "postgres-superuser", "password"))
        for consumer in consumers:
            fresh = new.secret(PLATFORM, f"postgres-{consumer.replace('_', '-')}", "password")
            assert fresh != old_pg[consumer]
            assert not server.can_login(consumer, old_pg[consumer], consumer), consumer
            assert server.can_login(consumer, fresh, consumer), consumer

        search = f"{platform.mlflow.url}/api/2.0/mlflow/experiments/search"
        new_logins = {
            "admin": admin_login(new),
            "serving": client_login(new, "naomi-serving")[1:],
            "training": user_login(new, "training"),
        }
        for who in old_logins:
            assert old_logins[who] != new_logins[who], who
            assert (
                httpx.post(search, json={"max_results": 1}, auth=old_logins[who], timeout=60).status_code
                == 401
            ), who
            assert (
                httpx.post(search, json={"max_results": 1}, auth=new_logins[who], timeout=60).status_code
                == 200
            ), who
        metrics = new.secret_data(PLATFORM, "mlflow-metrics")
        assert (
            httpx.get(
                platform.mlflow.metrics_url, auth=(old_metrics["username"], old_metrics["password"])
            ).status_code
            == 401
        )
        assert (
            httpx.get(
                platform.mlflow.metrics_url, auth=(metrics["username"], metrics["password"])
            ).status_code
            == 200
        )

        # the clients, with the new render's logins, on the data from before the rotation
        uri, *serving = client_login(new, "naomi-serving")
        with signed_in(uri, *serving) as mlflow:
            assert predicts(mlflow, "models:/qoe@champion")
            assert mlflow.MlflowClient().get_model_version_by_alias("qoe", "champion").version == version
        with signed_in(platform.mlflow.url, *new_logins["training"]) as mlflow:
            assert len(mlflow.search_runs(experiment_names=["qoe"])) == 3
            assert log_model(mlflow, experiment="qoe", model="qoe") == str(int(version) + 1)
    finally:
        platform.stop()
        platform.postgres.server.stop()
        s3.stop()


def test_the_object_store_is_rekeyed_by_the_setup_job(tmp_path: Path) -> None:
    """MinIO's admin API is not available here: the render shows the restart and the new keys the
    setup Job sets (its plan names the consumers' key variables, its env reads the new Secrets)."""
    from tests.local_cluster import GeneratedValues, LocalCluster

    before, after = evaluate_stack_with("edge-lab"), _rotated(objectStore=2)
    values = GeneratedValues(before, "store")
    old = LocalCluster.of(before, values, tmp_path / "a")
    new = LocalCluster.of(after, GeneratedValues(after, "store"), tmp_path / "b")
    job = new.named("Job", PLATFORM, "object-store-buckets-")
    assert job["metadata"]["name"] != old.named("Job", PLATFORM, "object-store-buckets-")["metadata"]["name"]
    plan = json.loads(new.named("ConfigMap", PLATFORM, "object-store-setup-")["data"]["buckets.json"])
    env = {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    for consumer in plan["consumers"]:
        secret = f"object-store-{consumer['name']}"
        assert env[consumer["secretEnv"]] == {"name": secret, "key": "secretKey"}
        assert old.secret(PLATFORM, secret, "secretKey") != new.secret(PLATFORM, secret, "secretKey")
    assert old.secret(PLATFORM, "object-store-credentials", "secretKey") != new.secret(
        PLATFORM, "object-store-credentials", "secretKey"
    )


def test_the_rotation_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/rotation.py --smoke: Postgres rotated by its restart and the new roles Job."""
    import os
    import re
    import subprocess
    import sys

    from naomi.paths import PROJECT_DIR

    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "rotation.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "postgres pod restart (postStart hook)" in result.stdout
    assert re.search(
        r"^rotation time, up start to every consumer healthy: \d+\.\d s$", result.stdout, flags=re.MULTILINE
    )


def test_the_stack_exports_its_generations_and_naomi_credentials_shows_them(
    evaluations: dict[str, Evaluation], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from naomi.paths import PROJECT_DIR

    assert evaluations["edge-lab"].outputs["credentialGenerations"] == {
        "mlflow": 1,
        "objectStore": 1,
        "postgres": 1,
    }
    assert "credentialGenerations" not in evaluations["edge-lab"].secret_outputs
    outputs = {"urls": {}, "credentialGenerations": {"mlflow": 2, "objectStore": 1, "postgres": 3}}
    fake = tmp_path / "pulumi"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    fake.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "naomi.cli", "credentials", "--stack", "edge-lab"],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "COLUMNS": "200", "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Credential generations: mlflow 2, objectStore 1, postgres 3 (raise naomi:credentials.rotation."
        in result.stdout
    )
