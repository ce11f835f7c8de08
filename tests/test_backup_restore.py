"""Backups that restore (issue 17, defect 3): docs/runbooks/backup-restore.md executed, command by
command, against the rendered objects on real servers.

The runbook's kubectl commands are done to the render (`Kubectl`: `create job --from=cronjob/...`
runs the CronJob's pod as rendered, `wait` checks it succeeded, `logs` prints what a container
printed, `scale deployment/mlflow` stops or starts the MLflow pod, `set env --local` edits the Job on
its way to `create -f -`); a command it does not know fails the test, so the page cannot drift from
what is tested. Source: the session's platform (MLflow as rendered on PostgreSQL, data logged by the
training login), dumps uploaded to an S3 server on loopback, retention applied. Then a disaster:
a fresh PostgreSQL initialised from the Secret (what the image does with an empty volume) and the
Restore block run there. MLflow on the restored server shows the runs, registered models and aliases
it had; the older set, chosen by its stamp, restores the older state.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from minio.commonconfig import CopySource

from naomi.paths import PROJECT_DIR, shared_dir
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.local_cluster import LocalCluster, MlflowPod, PodRun, PostgresPod
from tests.platform_model import (
    PLATFORM,
    Platform,
    admin_login,
    client_login,
    log_model,
    predicts,
    shared_platform,
    signed_in,
    user_login,
)

RUNBOOK = PROJECT_DIR / "docs" / "runbooks" / "backup-restore.md"
STAMP = "%Y%m%dT%H%M%SZ"


def runbook_blocks() -> dict[str, list[list[str]]]:
    """`## Section` -> its ```bash blocks, each a list of commands."""
    sections: dict[str, list[list[str]]] = {}
    for part in re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        sections[title.strip()] = [
            [line.strip() for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)
        ]
    return sections


@dataclass
class Kubectl:
    """The kubectl commands of the runbook, done to one LocalCluster (what the API server and the
    controllers would do with them)."""

    cluster: LocalCluster
    mlflow: MlflowPod
    chart_deployments: set[str]  # Deployments the Helm releases render (not run here)
    jobs: dict[str, PodRun] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    def run(self, line: str) -> str:
        stdin = ""
        for command in line.split(" | "):
            stdin = self._one(shlex.split(command), stdin)
        self.printed.append(stdin)
        return stdin

    def _one(self, words: list[str], stdin: str) -> str:
        assert words[0] == "kubectl", words
        namespace = words[words.index("-n") + 1] if "-n" in words else PLATFORM
        args = [w for i, w in enumerate(words[1:], 1) if w != "-n" and words[i - 1] != "-n"]
        verb = args[0]
        flags = {
            a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else "") for a in args if a.startswith("--")
        }
        plain = [
            a
            for i, a in enumerate(args)
            if not a.startswith("-") and args[i - 1] not in ("-o", "-c", "-f", "-l")
        ]
        if verb == "create" and plain[1:2] == ["job"]:
            source = flags["--from"].removeprefix("cronjob/")
            job = self.cluster.job_from_cronjob(namespace, source, plain[-1])
            if flags.get("--dry-run") == "client":
                return yaml.safe_dump(job)
            return self._create(job)
        if verb == "create" and args[1:3] == ["-f", "-"]:
            return self._create(yaml.safe_load(stdin))
        if verb == "set" and plain[1:2] == ["env"] and "--local" in flags:
            job = yaml.safe_load(stdin)
            container = args[args.index("-c") + 1]
            pod = job["spec"]["template"]["spec"]
            target = next(
                c for c in [*(pod.get("initContainers") or []), *pod["containers"]] if c["name"] == container
            )
            for assignment in (a for a in plain[2:] if "=" in a):
                name, value = assignment.split("=", 1)
                target["env"] = [e for e in target.get("env") or [] if e["name"] != name] + [
                    {"name": name, "value": value}
                ]
            return yaml.safe_dump(job)
        if verb == "wait":
            (name,) = [a.removeprefix("job/") for a in plain if a.startswith("job/")] or plain[2:3]
            assert plain[1] in ("jobs", "job") or plain[1].startswith("job/"), plain
            assert flags["--for"] == "condition=complete"
            run = self.jobs[name]
            assert run.succeeded, f"job {name}: {run.containers[-1].output[-3000:]}"
            return ""
        if verb == "logs":
            selector = args[args.index("-l") + 1] if "-l" in args else ""
            # the Job controller labels its pods job-name=<job>
            (name,) = [a.removeprefix("job/") for a in plain if a.startswith("job/")] or [
                selector.removeprefix("job-name=")
            ]
            return self.jobs[name].logs(args[args.index("-c") + 1])
        if verb == "scale":
            replicas = int(flags["--replicas"])
            target = plain[1] if "/" in plain[1] else f"{plain[1]}/{plain[2]}"
            if target == "deployment/mlflow":
                if replicas == 0:
                    self.mlflow.stop()
                elif not self.mlflow.processes:
                    self.mlflow.start(self.cluster)
                return ""
            assert target.removeprefix("deployment/") in self.chart_deployments, target
            return ""  # a chart's Deployment: not running here
        raise AssertionError(f"no local model for this runbook command: {' '.join(words)}")

    def _create(self, job: dict[str, Any]) -> str:
        name = job["metadata"]["name"]
        assert name not in self.jobs, f"jobs.batch {name!r} already exists"
        self.jobs[name] = self.cluster.run_pod(job["metadata"]["namespace"], job["spec"]["template"]["spec"])
        return f"job.batch/{name} created\n"


def _chart_deployments(rendered: Rendered) -> set[str]:
    """The Deployments the flyte-binary chart renders with our values (the runbook scales one)."""
    archives = (shared_dir() or Path("/nonexistent")) / "reference" / "chart-archives"
    release = next(h for h in rendered.helm if h["chart"] == "flyte-binary")
    archive = next(archives.glob(f"flyte-binary-{release['version']}.tgz"), None)
    if archive is None:
        pytest.skip("../shared/reference/chart-archives not found")
    import helm_python

    with helm_python.Chart.load(str(archive)) as chart:
        rendered_chart = chart.render(
            release["values"], name=release["release"], namespace=release["namespace"], is_install=True
        )
    return {
        doc["metadata"]["name"]
        for text in rendered_chart.values()
        for doc in yaml.safe_load_all(text)
        if doc and doc.get("kind") == "Deployment"
    }


def snapshot(url: str, login: tuple[str, str]) -> dict[str, Any]:
    """Experiments with their run counts, registered models with their versions and aliases."""

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{url}{path}", json=body, auth=login, timeout=60)
        response.raise_for_status()
        return dict(response.json())

    experiments = call("/api/2.0/mlflow/experiments/search", {"max_results": 1000}).get("experiments", [])
    runs: dict[str, int] = {}
    for experiment in experiments:
        count, token = 0, ""
        while True:
            page = call(
                "/api/2.0/mlflow/runs/search",
                {"experiment_ids": [experiment["experiment_id"]], "max_results": 1000, "page_token": token},
            )
            count += len(page.get("runs", []))
            token = page.get("next_page_token", "")
            if not token:
                break
        runs[experiment["name"]] = count
    models = {}
    listed = httpx.get(
        f"{url}/api/2.0/mlflow/registered-models/search", params={"max_results": 1000}, auth=login, timeout=60
    ).json()
    for model in listed.get("registered_models", []):
        versions = httpx.get(
            f"{url}/api/2.0/mlflow/model-versions/search",
            params={"filter": f"name='{model['name']}'"},
            auth=login,
            timeout=60,
        ).json()
        models[model["name"]] = {
            "versions": sorted(int(v["version"]) for v in versions.get("model_versions", [])),
            "aliases": {a["alias"]: a["version"] for a in model.get("aliases", [])},
        }
    return {"runs": runs, "models": models}


@pytest.fixture(scope="module")
def platform(evaluations: dict[str, Evaluation], tmp_path_factory: pytest.TempPathFactory) -> Platform:
    pytest.importorskip("mlflow")
    return shared_platform(evaluations["edge-lab"], tmp_path_factory.mktemp("platform"))


def _backup_sets(platform: Platform) -> list[str]:
    stamps = {
        obj.object_name.split("/")[1]
        for obj in platform.s3.client.list_objects("backups", prefix="postgres/", recursive=True)
    }
    return sorted(stamps)


@pytest.mark.slow
def test_the_runbook_backs_up_prunes_and_restores_into_a_fresh_server(
    platform: Platform, renders: dict[str, Rendered], tmp_path: Path
) -> None:
    s3, source = platform.s3.client, platform.cluster
    # Yesterday: some runs and a model, backed up by the CronJob as rendered, that set dated a day back.
    with signed_in(platform.mlflow.url, *user_login(source, "training")) as mlflow:
        log_model(mlflow, experiment="qoe", model="qoe", runs=2)
    before = set(_backup_sets(platform))
    first = source.run_job(source.job_from_cronjob(PLATFORM, "postgres-backup", "yesterday"))
    assert "kept " in first.logs("upload")
    (taken,) = set(_backup_sets(platform)) - before
    yesterday = (datetime.strptime(taken, STAMP).replace(tzinfo=UTC) - timedelta(days=1)).strftime(STAMP)
    for obj in list(s3.list_objects("backups", prefix=f"postgres/{taken}/", recursive=True)):
        s3.copy_object(
            "backups", obj.object_name.replace(taken, yesterday), CopySource("backups", obj.object_name)
        )
        s3.remove_object("backups", obj.object_name)
    older = snapshot(platform.mlflow.url, admin_login(source))
    # Sets the retention must remove: complete but 30 days old, and an incomplete one 3 days old.
    now = datetime.now(UTC)
    stale = (now - timedelta(days=30)).strftime(STAMP)
    broken = (now - timedelta(days=3)).strftime(STAMP)
    for key in (
        f"postgres/{stale}/mlflow.dump",
        f"postgres/{stale}/COMPLETE",
        f"postgres/{broken}/mlflow.dump",
    ):
        s3.put_object("backups", key, io.BytesIO(b"x"), 1)
    # Today: more runs, a new version, the alias moved.
    with signed_in(platform.mlflow.url, *user_login(source, "training")) as mlflow:
        log_model(mlflow, experiment="qoe", model="qoe", runs=3)
    expected = snapshot(platform.mlflow.url, admin_login(source))
    assert expected != older

    blocks = runbook_blocks()
    (backup_block,) = blocks["Back up now and list the dumps"]
    deployments = _chart_deployments(renders["edge-lab"])
    kubectl = Kubectl(source, platform.mlflow, deployments)
    for command in backup_block:
        kubectl.run(command)
    log = kubectl.printed[-1]  # `kubectl logs job/backup-now -c upload`
    kept = re.findall(r"^kept (\w+): (.*) \(\d+ bytes\)$", log, flags=re.MULTILINE)
    assert [stamp for stamp, _ in kept][:1] == [yesterday] and len(kept) == 2, log
    assert all(databases == "flyte mlflow mlflow_auth" for _, databases in kept), log
    newest = kept[-1][0]
    assert f"pruned {stale} (older than 7 days)" in log and f"pruned {broken} (incomplete)" in log, log
    assert _backup_sets(platform) == [yesterday, newest]

    # The disaster: Postgres comes back on an empty volume.
    restore_block, chosen_block = blocks["Restore"]
    fresh = LocalCluster(source.objects, source.values, tmp_path / "fresh", services=dict(source.services))
    postgres = PostgresPod(fresh)
    mlflow_pod = MlflowPod()
    try:
        kubectl = Kubectl(fresh, mlflow_pod, deployments)
        for command in restore_block:
            kubectl.run(command)
        restored_log = kubectl.jobs["restore-now"].logs("restore")
        assert (
            f"restored mlflow from {newest}" in restored_log
            and f"restored mlflow_auth from {newest}" in restored_log
        )
        assert snapshot(mlflow_pod.url, admin_login(fresh)) == expected
        uri, username, password = client_login(fresh, "naomi-serving")
        assert f":{mlflow_pod.port}/" in uri  # the restored server's MLflow
        with signed_in(uri, username, password) as mlflow:
            assert predicts(mlflow, "models:/qoe@champion")  # the files: same object store
    finally:
        mlflow_pod.stop()
        postgres.server.stop()

    # An older set, chosen by its stamp, on another fresh server (its data checked in the database).
    other = LocalCluster(source.objects, source.values, tmp_path / "other", services=dict(source.services))
    postgres = PostgresPod(other)
    try:
        kubectl = Kubectl(other, MlflowPod(), deployments)
        for command in chosen_block:
            kubectl.run(command.replace("<stamp>", yesterday))
        assert f"restored mlflow from {yesterday}" in kubectl.jobs["restore-chosen"].logs("restore")
        runs = postgres.server.sql(
            "SELECT count(*) FROM runs r JOIN experiments e USING (experiment_id) WHERE e.name = 'qoe'",
            database="mlflow",
        )
        assert int(runs) == older["runs"]["qoe"] < expected["runs"]["qoe"]
    finally:
        postgres.server.stop()


def test_the_runbook_fetches_the_dump_it_restores() -> None:
    """The old page restored `< mlflow.dump` that nothing had fetched, and listed dumps with
    `mc mirror --quiet`, which prints nothing: the restore must fetch, the listing must print."""
    blocks = runbook_blocks()
    restore = " ".join(blocks["Restore"][0])
    assert "--from=cronjob/postgres-restore" in restore
    assert "< mlflow.dump" not in RUNBOOK.read_text()
    assert "logs job/backup-now -c upload" in " ".join(blocks["Back up now and list the dumps"][0])


def test_the_restore_cronjob_fetches_then_restores_as_the_superuser(renders: dict[str, Rendered]) -> None:
    cronjob = next(
        o
        for o in renders["edge-lab"].kubernetes
        if o["kind"] == "CronJob" and o["metadata"]["name"] == "postgres-restore"
    )
    assert cronjob["spec"]["suspend"] is True
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    (restore,) = pod["containers"]
    assert fetch["command"][-3:] == ["fetch", "--to", "/backup"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in fetch["env"]}
    assert env["BACKUP_SET"] == "latest"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "object-store-backup", "key": "secretKey"}
    }
    script = restore["command"][-1]
    assert 'pg_restore --exit-on-error --single-transaction -d "$db" "/backup/$db.dump"' in script
    assert "ALTER ROLE mlflow WITH LOGIN PASSWORD :'pw';" in script  # a fresh server has no roles
    assert json.dumps(restore["env"]).count("PASSWORD_") == 3


def test_the_backup_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/backup_restore.py --smoke: 200 runs backed up and restored by the rendered CronJobs."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "backup_restore.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^backup \(.*\): \d+\.\d s$", result.stdout, flags=re.MULTILINE), result.stdout
    assert "restored: 200 runs" in result.stdout
