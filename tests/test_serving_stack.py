"""serving.models[] renders: RayService or Deployment+Service+HPA, routed with auth, and editing one
model's version or alias changes that model's objects and nothing else."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.serving import SERVE_APPS
from naomi.paths import PROJECT_DIR
from naomi.render.diff import diff_files
from naomi.render.engine import evaluate, load_stack_file, stack_program
from naomi.render.tree import Rendered, render
from stacks.config import SERVE_APP_MODELS
from workloads.common.serve_env import SERVE_PROCESS_ENV


def _one(rendered: Rendered, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in rendered.kubernetes if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _edge_lab_with(models: list[dict[str, Any]]) -> Rendered:
    config, secrets = load_stack_file(PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml")
    config = {**config, "naomi:serving": json.dumps({"models": models})}
    return render(evaluate(stack_program(PROJECT_DIR), "edge-lab", config, secrets))


def _models() -> list[dict[str, Any]]:
    config, _ = load_stack_file(PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml")
    return list(json.loads(config["naomi:serving"])["models"])


def test_serve_apps_exist_for_every_model_the_config_accepts() -> None:
    assert set(SERVE_APPS) == set(SERVE_APP_MODELS)
    for target in SERVE_APPS.values():
        module, _, attribute = target.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        assert f"def {attribute}(" in Path(spec.origin).read_text(encoding="utf-8"), target


def test_ray_serve_model_is_a_rayservice_on_its_pool(renders: dict[str, Rendered]) -> None:
    service = _one(renders["edge-lab"], "RayService", "qoe")["spec"]
    (application,) = yaml.safe_load(service["serveConfigV2"])["applications"]
    assert application["import_path"] == SERVE_APPS["qoe"]
    assert application["args"]["model_uri"] == "models:/qoe@champion"
    assert (application["args"]["num_replicas"], application["args"]["max_replicas"]) == (1, 3)
    assert service["upgradeStrategy"] == {"type": "NewCluster"}
    cluster = service["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}
    (worker,) = cluster["workerGroupSpecs"]
    pod = worker["template"]["spec"]
    assert worker["groupName"] == "x86" and pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/naomi-mlops/naomi-ray:0.1.0"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    # Every Ray process of the RayService runs Serve as the benchmark and the tests measured it
    # (HAProxy ingress, direct ingress: workloads/common/serve_env.py); the head runs a proxy too.
    for ray_container in (container, cluster["headGroupSpec"]["template"]["spec"]["containers"][0]):
        for name, value in SERVE_PROCESS_ENV.items():
            assert {"name": name, "value": value} in ray_container["env"], name
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"name": "mlflow-client", "key": "password"}
    # Every replica signs feedback ids with the model's one key (any replica scores feedback).
    assert env["NAOMI_FEEDBACK_KEY"] == {"name": "qoe-feedback-key", "key": "key"}


def test_deployment_model_runs_the_generic_server_on_arm64(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    deployment = _one(rendered, "Deployment", "qoe-edge")["spec"]
    pod = deployment["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/naomi-mlops/naomi-model-server:0.1.0"
    assert container["args"] == ["--model-uri", "models:/qoe/1"]
    # Ready with a model loaded or none to load (a bare cluster); alive whenever it answers.
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    key = next(e for e in container["env"] if e["name"] == "NAOMI_FEEDBACK_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "qoe-edge-feedback-key", "key": "key"}
    hpa = _one(rendered, "HorizontalPodAutoscaler", "qoe-edge")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    assert _one(rendered, "Service", "qoe-edge")["spec"]["type"] == "ClusterIP"
    route = _one(rendered, "IngressRoute", "serving-qoe-edge")["spec"]["routes"][0]
    assert "basic-auth" in {m["name"] for m in route["middlewares"]}
    assert route["match"].startswith("Path(`/serving/qoe-edge`) || PathPrefix(`/serving/qoe-edge/`)")
    (secret,) = [
        o
        for o in rendered.kubernetes
        if o["kind"] == "Secret"
        and o["metadata"] == {**o["metadata"], "name": "mlflow-client", "namespace": "naomi-serving"}
    ]
    assert secret["stringData"]["password"].startswith("<secret")


@pytest.mark.parametrize(
    ("index", "change", "expected"),
    [
        (1, {"version": 2}, "k8s/naomi-serving/Deployment-qoe-edge.yaml"),
        (0, {"alias": "candidate"}, "k8s/naomi-serving/RayService-qoe.yaml"),
    ],
    ids=["deployment-version", "ray-serve-alias"],
)
def test_editing_one_model_changes_only_that_model(
    renders: dict[str, Rendered], index: int, change: dict[str, Any], expected: str
) -> None:
    models = _models()
    models[index] = {k: v for k, v in models[index].items() if k not in ("version", "alias")} | change
    head = _edge_lab_with(models)
    delta = diff_files(renders["edge-lab"].files, head.files)
    assert (delta.added, delta.removed, list(delta.changed)) == ([], [], [expected])
    value = f"models:/qoe/{change['version']}" if "version" in change else f"models:/qoe@{change['alias']}"
    assert value in delta.changed[expected]


def test_pinned_pool_or_unknown_app_is_a_config_error() -> None:
    from pulumi import RunError

    models = _models()
    with pytest.raises(RunError, match=r"naomi:serving\.models\[0\]\.runtime.*no Ray Serve application"):
        _edge_lab_with([{**models[0], "model": "fraud"}])
    with pytest.raises(RunError, match=r"naomi:serving\.models\[1\]\.pool.*belongs to runtime 'ray-serve'"):
        _edge_lab_with([models[0], {**models[1], "pool": "pi"}])
