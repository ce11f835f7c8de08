"""The workloads layer as rendered: registration Job versioned by the code the image runs, the
RayJob shape of the stack's pools, seed Job, launch plans for schedules with the stored dataset,
PrometheusRule + Alertmanager route + receiver (with its state in the object store) for metric
triggers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.workloads import release_workloads_version, workloads_version
from naomi.paths import PROJECT_DIR
from naomi.render.diff import diff_files, render_source
from naomi.render.tree import Rendered
from tests.project_copy import copy_project


def _one(rendered: Rendered, kind: str, name: str, namespace: str = "naomi-workloads") -> dict[str, Any]:
    (found,) = [
        o
        for o in rendered.kubernetes
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    return found


def test_registration_job_carries_the_code_version_and_the_schedules(renders: dict[str, Rendered]) -> None:
    version = workloads_version(PROJECT_DIR)
    rendered = renders["lab-ha"]
    job = _one(rendered, "Job", f"workloads-register-{version[:10]}")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "python",
        "-m",
        "workloads.register",
        "--plan",
        "/etc/naomi/registration.json",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FLYTE_ENDPOINT"] == "flyte-binary-grpc.naomi-platform.svc.cluster.local:8089"
    assert env["NAOMI_WORKLOADS_IMAGE"] == container["image"] and "@sha256:" in container["image"]
    plan = json.loads(
        _one(rendered, "ConfigMap", f"workloads-registration-{version[:10]}")["data"]["registration.json"]
    )
    assert plan["version"] == version and plan["pipelines"] == ["qoe", "mnist"]
    # Retrains learn the stored dataset (defect 6): the launch plans pass its key.
    assert plan["schedules"] == [
        {
            "name": "qoe-nightly",
            "workflow": "qoe_train",
            "cron": "0 3 * * *",
            "inputs": {"dataset": "datasets/qoe/reports.parquet"},
        },
        {
            "name": "mnist-weekly",
            "workflow": "mnist_train",
            "cron": "0 4 * * 0",
            "inputs": {"dataset": "datasets/mnist/digits.npz"},
        },
    ]
    assert yaml.safe_load(rendered.files["outputs.yaml"])["workloadsVersion"] == version
    # It asks MLflow whether a champion exists (else the first training runs).
    assert {e["name"] for e in container["env"]} >= {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_PASSWORD"}


def test_registration_plan_carries_the_rayjob_shape_of_the_stacks_pools(renders: dict[str, Rendered]) -> None:
    """Defect 2: Flyte Ray tasks run on the stack's pools (edge-lab: x86 and the Pi pool)."""
    version = release_workloads_version(PROJECT_DIR)
    plan = json.loads(
        _one(renders["edge-lab"], "ConfigMap", f"workloads-registration-{version[:10]}")["data"][
            "registration.json"
        ]
    )
    assert plan["rayJob"] == {
        "headStartParams": {"num-cpus": "0"},
        "head": {"cpu": "250m", "memory": "1Gi", "cpuLimit": "1", "memoryLimit": "2Gi"},  # edge profile
        "workers": [
            {
                "group": "x86",
                "arch": "amd64",
                "replicas": 1,
                "min": 1,
                "max": 2,
                "cpu": "2",
                "memory": "4Gi",
                "cpuLimit": "2",
                "memoryLimit": "4Gi",
            },
            {
                "group": "pi",
                "arch": "arm64",
                "replicas": 1,
                "min": 0,
                "max": 2,
                "cpu": "2",
                "memory": "2Gi",
                "cpuLimit": "2",
                "memoryLimit": "2Gi",
            },
        ],
        "autoscaling": False,
        "ttlSecondsAfterFinished": 3600,
    }


def test_scheduled_launch_plans_build_offline() -> None:
    pytest.importorskip("flytekit")
    from workloads.register import scheduled_launch_plans

    (plan,) = scheduled_launch_plans(
        {
            "schedules": [
                {"name": "qoe-nightly", "workflow": "qoe_train", "cron": "0 3 * * *", "inputs": {"epochs": 3}}
            ]
        }
    )
    assert plan.name == "naomi.qoe-nightly" and plan.schedule.cron_schedule.schedule == "0 3 * * *"
    assert plan.parameters.parameters["epochs"].default.scalar.primitive.integer == 3
    with pytest.raises(ValueError, match="unknown workflow"):
        scheduled_launch_plans(
            {"schedules": [{"name": "x", "workflow": "fraud_train", "cron": "* * * * *", "inputs": {}}]}
        )


def test_metric_trigger_renders_rule_route_and_receiver(renders: dict[str, Rendered]) -> None:
    rendered = renders["lab-ha"]
    groups = {
        g["name"]: g["rules"] for g in _one(rendered, "PrometheusRule", "naomi-retraining")["spec"]["groups"]
    }
    (alert,) = groups["naomi-retraining"]
    assert alert["expr"] == "naomi:qoe_abs_error:mean5m > 500" and alert["for"] == "15m"
    assert alert["labels"]["naomi_trigger"] == "qoe-error"
    # Over the series the serving apps export (the chain test runs them through promtool).
    quality = {r["record"]: r["expr"] for r in groups["naomi-model-quality"]}
    assert quality["naomi:qoe_abs_error:mean5m"] == (
        'sum(rate({__name__=~"(ray_)?naomi_serving_feedback_error_total",model="qoe"}[5m])) / '
        'sum(rate({__name__=~"(ray_)?naomi_serving_feedback_total",model="qoe"}[5m]))'
    )
    rules = json.loads(_one(rendered, "ConfigMap", "trigger-rules")["data"]["triggers.json"])
    assert rules == {
        "triggers": [
            {
                "name": "qoe-error",
                "workflow": "qoe_train",
                "inputs": {"dataset": "datasets/qoe/reports.parquet", "epochs": 20},
                "cooldownSeconds": 21600,
            }
        ]
    }
    receiver = _one(rendered, "Deployment", "trigger-receiver")["spec"]
    assert receiver["replicas"] == 1 and receiver["strategy"] == {"type": "Recreate"}
    # Its memory (handled alerts, last launch) is kept in the object store (defect 8).
    env = {e["name"]: e for e in receiver["template"]["spec"]["containers"][0]["env"]}
    assert env["NAOMI_STORE"]["value"] == "s3://datasets"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "flyte-task-storage"
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # it never talks to MLflow
    (monitoring,) = [r for r in rendered.helm if r["chart"] == "kube-prometheus-stack"]
    alertmanager = monitoring["values"]["alertmanager"]
    (route,) = alertmanager["config"]["route"]["routes"]
    receivers = {r["name"]: r for r in alertmanager["config"]["receivers"]}
    (webhook,) = receivers[route["receiver"]]["webhook_configs"]
    assert webhook["url"] == "http://trigger-receiver.naomi-workloads.svc.cluster.local:8080/alerts"
    assert webhook["max_alerts"] == 20  # bounded notifications
    assert webhook["http_config"]["authorization"]["credentials_file"].startswith(
        "/etc/alertmanager/secrets/trigger-receiver-token/"
    )
    assert alertmanager["alertmanagerSpec"]["secrets"] == ["trigger-receiver-token"]
    _one(rendered, "Secret", "trigger-receiver-token", namespace="naomi-monitoring")
    (rule,) = _one(rendered, "NetworkPolicy", "ingress-trigger-receiver")["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alertmanager"}
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "naomi-monitoring"
    }


def test_dev_without_monitoring_has_no_receiver(renders: dict[str, Rendered]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in renders["dev"].kubernetes}
    assert ("Deployment", "trigger-receiver") not in kinds
    assert any(kind == "Job" and name.startswith("workloads-seed-") for kind, name in kinds)


def test_version_is_the_code_the_image_runs(tmp_path: Path, renders: dict[str, Rendered]) -> None:
    """Defect 7. lab-ha builds its images: a code change changes the registered version (and the
    images). edge-lab runs the pinned release images (`images.build: false`): it registers the
    release's stamped version whatever the checkout's workloads/ says, since that is the code its
    pods run."""
    project = copy_project(tmp_path / "project")
    same = render_source(project, "lab-ha", tmp_path / "same")
    assert diff_files(renders["lab-ha"].files, same).empty  # unchanged code: nothing changes
    (project / "README.md").write_text("docs only\n", encoding="utf-8")
    assert workloads_version(project) == workloads_version(PROJECT_DIR)
    model = project / "workloads" / "qoe" / "model.py"
    model.write_text(model.read_text(encoding="utf-8") + "\n# tuned\n", encoding="utf-8")
    new_version = workloads_version(project)
    assert new_version != workloads_version(PROJECT_DIR)
    delta = diff_files(same, render_source(project, "lab-ha", tmp_path / "changed"))
    assert f"k8s/naomi-workloads/Job-workloads-register-{new_version[:10]}.yaml" in delta.added

    release = release_workloads_version(PROJECT_DIR)
    edge = yaml.safe_load(render_source(project, "edge-lab", tmp_path / "edge")["outputs.yaml"])
    assert edge["workloadsVersion"] == release != new_version


def test_release_file_names_the_pinned_release() -> None:
    from infra.versions import NAOMI_VERSION

    document = json.loads((PROJECT_DIR / "images" / "release.json").read_text())
    assert document["naomiVersion"] == NAOMI_VERSION  # a release bump restamps it
    assert len(document["workloadsVersion"]) == 16


def test_the_image_stamp_is_the_stacks_version_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    """The naomi-workloads Dockerfile's stamp step, run on the tree as the image holds it
    (/opt/naomi/workloads without caches), writes the version the stack computes; the
    registration Job's check refuses any other with a message saying what to do."""
    import re
    import shutil
    import subprocess
    import sys

    from workloads.version import VersionMismatch, check_registrable

    dockerfile = (PROJECT_DIR / "images" / "workloads" / "Dockerfile").read_text()
    (stamp_step,) = re.findall(r"^RUN (python -m workloads\.version .*)$", dockerfile, flags=re.MULTILINE)
    image_root = tmp_path / "opt" / "naomi"
    shutil.copytree(
        PROJECT_DIR / "workloads",
        image_root / "workloads",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),  # .dockerignore
    )
    command = stamp_step.replace("/opt/naomi", str(image_root)).split()
    command[0] = sys.executable
    subprocess.run(
        command, check=True, cwd=tmp_path, env={"PYTHONPATH": str(image_root)}, capture_output=True
    )
    stamped = (image_root / "WORKLOADS_VERSION").read_text().strip()
    assert stamped == workloads_version(PROJECT_DIR)
    check_registrable(stamped, "naomi-workloads@sha256:x", image_root)  # the same code: accepted
    with pytest.raises(VersionMismatch) as refused:
        check_registrable("0123456789abcdef", "ghcr.io/naomi-mlops/naomi-workloads:0.1.0", image_root)
    assert str(refused.value) == (
        f"refusing to register workloads version 0123456789abcdef: the image "
        f"ghcr.io/naomi-mlops/naomi-workloads:0.1.0 carries workloads version {stamped}. With "
        "naomi:images.build false the stack registers the release image's version "
        "(images/release.json); build the images (naomi:images.build true) to run local changes of "
        "workloads/, or update images/release.json to the release that is deployed."
    )


def test_the_first_training_runs_once_per_version_for_models_without_a_champion() -> None:
    """A bare cluster: the registration Job launches each planned pipeline whose model has no
    champion, under a name fixed by the version (Flyte starts a name once), with the stored data."""
    pytest.importorskip("flytekit")
    from workloads.register import first_trainings

    plan = {"version": "0123456789abcdef", "pipelines": ["qoe", "mnist"]}
    launches = first_trainings(plan, has_champion=lambda model: model == "mnist")
    assert [(entry.name, entry.workflow, entry.dataset, name) for entry, name in launches] == [
        ("qoe", "qoe_train", "datasets/qoe/reports.parquet", "first-qoe-0123456789abcdef")
    ]
    assert first_trainings(plan, has_champion=lambda model: True) == []
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,62}", launches[0][1])  # flyteadmin's execution name rule
