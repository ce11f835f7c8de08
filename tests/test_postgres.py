"""Postgres as rendered, on a real PostgreSQL (Debian's 15; the image runs 17, see
tests/postgres_server.py): the databases Job's script exactly as rendered, the superuser's password
applied by the postStart hook, and images that have the shell their commands run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.versions import NAOMI_IMAGES, POSTGRES_IMAGE
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS
from tests.local_cluster import GeneratedValues, LocalCluster, PostgresPod, evaluate_stack_with
from tests.postgres_server import PostgresError, require_postgres

PLATFORM = "naomi-platform"
CONSUMERS = ("flyte", "mlflow", "mlflow_auth")


@pytest.fixture
def cluster(evaluations: dict[str, Evaluation], tmp_path: Path) -> LocalCluster:
    require_postgres()
    evaluation = evaluations["edge-lab"]
    return LocalCluster.of(evaluation, GeneratedValues(evaluation, tmp_path.name), tmp_path)


def _password(cluster: LocalCluster, consumer: str) -> str:
    return cluster.secret(PLATFORM, f"postgres-{consumer.replace('_', '-')}", "password")


def test_the_databases_job_as_rendered_makes_one_private_database_per_consumer(cluster: LocalCluster) -> None:
    pod = PostgresPod(cluster)
    try:
        job = cluster.named("Job", PLATFORM, "postgres-databases-")
        cluster.run_job(job)
        server = pod.server
        for consumer in CONSUMERS:
            assert server.can_login(consumer, _password(cluster, consumer), consumer), consumer
            assert not server.can_login(consumer, "not-the-password", consumer)
        # REVOKE ALL ON DATABASE ... FROM PUBLIC: a consumer cannot even connect to another's database
        with pytest.raises(Exception, match='permission denied for database "flyte"'):
            server.can_login("mlflow", _password(cluster, "mlflow"), "flyte")
        owners = server.sql(
            "SELECT string_agg(datname || '=' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE datname IN ('flyte', 'mlflow', 'mlflow_auth')"
        )
        assert owners == "flyte=flyte,mlflow=mlflow,mlflow_auth=mlflow_auth"
        cluster.run_job(job)  # idempotent: a second run changes nothing and fails on nothing
        assert server.can_login("mlflow", _password(cluster, "mlflow"), "mlflow")
    finally:
        pod.server.stop()


def test_the_superuser_password_reaches_the_server_only_through_the_hook(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """The image applies POSTGRES_PASSWORD when it initialises an empty volume, never again: a pod
    restarted with a rotated Secret keeps the old password until the postStart hook sets it."""
    pod = PostgresPod(cluster)
    try:
        old = cluster.secret(PLATFORM, "postgres-superuser", "password")
        rotated = evaluate_stack_with("edge-lab", {"credentials": {"rotation": {"postgres": 2}}})
        after = LocalCluster.of(
            rotated, cluster.values.next_render(rotated), tmp_path / "after", services=cluster.services
        )
        new = after.secret(PLATFORM, "postgres-superuser", "password")
        assert new != old
        pod.server.restart()  # the restart alone (what the image does)
        assert pod.server.can_login("postgres", old) and not pod.server.can_login("postgres", new)
        pod.run_hook(after)  # the rendered hook, with the rotated Secret in its environment
        assert pod.server.can_login("postgres", new) and not pod.server.can_login("postgres", old)
        with pytest.raises(PostgresError, match="password authentication failed"):
            pod.server.sql("SELECT 1", password=old)
    finally:
        pod.server.stop()


SHELLS = ("/bin/sh", "sh", "/bin/bash", "bash")
# Which images have what, with the evidence (infra/versions.py comments): the official postgres
# image is Debian bookworm-slim with postgresql-17's clients; naomi's images are python:3.11-slim
# (Debian: /bin/sh) with their Python requirements.
SHELL_IMAGES = {POSTGRES_IMAGE}


def _is_naomi(image: str) -> bool:
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return name in NAOMI_IMAGES


def _steps(obj: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(where, image, argv) of every container and lifecycle hook of the platform's own pods."""
    spec = obj.get("spec") or {}
    templates = []
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        templates.append(spec["template"]["spec"])
    elif obj["kind"] == "CronJob":
        templates.append(spec["jobTemplate"]["spec"]["template"]["spec"])
    steps = []
    for pod in templates:
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            where = f"{obj['kind']} {obj['metadata']['name']} {container['name']}"
            if container.get("command"):
                steps.append((where, str(container["image"]), list(container["command"])))
            for hook, handler in (container.get("lifecycle") or {}).items():
                if "exec" in handler:
                    steps.append(
                        (f"{where} {hook}", str(container["image"]), list(handler["exec"]["command"]))
                    )
    return steps


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_step_runs_on_an_image_that_has_its_program(renders: dict[str, Rendered], stack: str) -> None:
    problems = []
    for obj in renders[stack].kubernetes:
        if obj["metadata"].get("namespace") != PLATFORM:
            continue
        for where, image, argv in _steps(obj):
            if argv[0] in SHELLS and image not in SHELL_IMAGES and not _is_naomi(image):
                problems.append(f"{where}: {argv[0]} on {image}, which is not known to have it")
            if argv[0] == "python" and not _is_naomi(image):
                problems.append(f"{where}: python on {image}")
            if argv[0].startswith(("pg_", "psql")) and image != POSTGRES_IMAGE:
                problems.append(f"{where}: {argv[0]} on {image}")
    assert problems == []


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_rendered_shell_script_is_shellcheck_clean(renders: dict[str, Rendered], stack: str) -> None:
    import shutil
    import subprocess
    import sys

    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    scripts = [
        (where, argv[2])
        for obj in renders[stack].kubernetes
        if obj["metadata"].get("namespace") == PLATFORM
        for where, _, argv in _steps(obj)
        if argv[:2] == ["/bin/sh", "-c"]
    ]
    assert len(scripts) >= 4  # roles Job, postStart hook, dump, restore
    for where, script in scripts:
        result = subprocess.run([shellcheck, "-s", "sh", "-"], input=script, capture_output=True, text=True)
        assert result.returncode == 0, f"{where}:\n{result.stdout}"
