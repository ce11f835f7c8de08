"""The workloads layer as rendered: registration Job versioned by the workloads code, seed Job,
launch plans for schedules, PrometheusRule + Alertmanager route + receiver for metric triggers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.workloads import workloads_version
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
    assert plan["schedules"] == [
        {"name": "qoe-nightly", "workflow": "qoe_train", "cron": "0 3 * * *", "inputs": {}},
        {"name": "mnist-weekly", "workflow": "mnist_train", "cron": "0 4 * * 0", "inputs": {}},
    ]
    assert yaml.safe_load(rendered.files["outputs.yaml"])["workloadsVersion"] == version


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
    assert {r["record"] for r in groups["naomi-model-quality"]} >= {"naomi:qoe_abs_error:mean5m"}
    rules = json.loads(_one(rendered, "ConfigMap", "trigger-rules")["data"]["triggers.json"])
    assert rules == {
        "triggers": [
            {"name": "qoe-error", "workflow": "qoe_train", "inputs": {"epochs": 20}, "cooldownSeconds": 21600}
        ]
    }
    receiver = _one(rendered, "Deployment", "trigger-receiver")["spec"]
    assert receiver["replicas"] == 1 and receiver["strategy"] == {"type": "Recreate"}
    (monitoring,) = [r for r in rendered.helm if r["chart"] == "kube-prometheus-stack"]
    alertmanager = monitoring["values"]["alertmanager"]
    (route,) = alertmanager["config"]["route"]["routes"]
    receivers = {r["name"]: r for r in alertmanager["config"]["receivers"]}
    (webhook,) = receivers[route["receiver"]]["webhook_configs"]
    assert webhook["url"] == "http://trigger-receiver.naomi-workloads.svc.cluster.local:8080/alerts"
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


def test_version_changes_if_and_only_if_the_workloads_code_changes(
    tmp_path: Path, renders: dict[str, Rendered]
) -> None:
    project = copy_project(tmp_path / "project")
    same = render_source(project, "edge-lab", tmp_path / "same")
    assert diff_files(renders["edge-lab"].files, same).empty  # unchanged code: nothing changes
    (project / "README.md").write_text("docs only\n", encoding="utf-8")
    assert workloads_version(project) == workloads_version(PROJECT_DIR)
    model = project / "workloads" / "qoe" / "model.py"
    model.write_text(model.read_text(encoding="utf-8") + "\n# tuned\n", encoding="utf-8")
    new_version = workloads_version(project)
    assert new_version != workloads_version(PROJECT_DIR)
    delta = diff_files(same, render_source(project, "edge-lab", tmp_path / "changed"))
    touched = {*delta.added, *delta.removed, *delta.changed}
    assert f"k8s/naomi-workloads/Job-workloads-register-{new_version[:10]}.yaml" in delta.added
    assert all(p.startswith("k8s/naomi-workloads/") or p in ("outputs.yaml", "plan.yaml") for p in touched), (
        touched
    )
