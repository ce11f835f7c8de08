"""Platform II in the render: KubeRay pools per architecture, Flyte with Ray, monitoring."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from infra.versions import RAY_IMAGES, RAY_PYTHON, RAY_VERSION, arm64_capable
from naomi import policy
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS
from tests.contracts import NETWORK, Backend


def _one(rendered: Rendered, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    (match,) = [
        o
        for o in rendered.kubernetes
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and namespace in (None, o["metadata"].get("namespace"))
    ]
    return match


def _release(rendered: Rendered, chart: str) -> dict[str, Any]:
    (match,) = [r for r in rendered.helm if r["chart"] == chart]
    return match


def _groups(rendered: Rendered) -> dict[str, dict[str, Any]]:
    cluster = _one(rendered, "RayCluster", "ray")
    return {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}


def test_ray_images_declare_the_same_ray_and_python() -> None:
    pattern = re.compile(r":(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d)(?P<minor>\d+)-cpu(?P<arch>-aarch64)?$")
    parsed = {arch: pattern.search(image) for arch, image in RAY_IMAGES.items()}
    assert all(parsed.values()), RAY_IMAGES
    assert {m["ray"] for m in parsed.values() if m} == {RAY_VERSION}
    assert {f"{m['py']}.{m['minor']}" for m in parsed.values() if m} == {RAY_PYTHON}
    assert parsed["arm64"] and parsed["arm64"]["arch"] == "-aarch64"
    assert parsed["amd64"] and parsed["amd64"]["arch"] is None


def test_ray_cluster_has_a_pool_per_architecture(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    cluster = _one(rendered, "RayCluster", "ray")
    assert cluster["spec"]["rayVersion"] == RAY_VERSION
    assert cluster["spec"]["authOptions"] == {"mode": "token", "secretName": "ray-auth-token"}
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = _groups(rendered)
    assert set(groups) == {"x86", "pi"}
    for name, arch in (("x86", "amd64"), ("pi", "arm64")):
        spec = groups[name]["template"]["spec"]
        assert spec["nodeSelector"] == {"kubernetes.io/arch": arch}
        assert spec["containers"][0]["image"] == RAY_IMAGES[arch]
        # Group-level resources: KubeRay quotes them for bash itself (rayStartParams did not).
        assert groups[name]["resources"] == {"cpu": "2", name: "2"}
        shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
    pi = groups["pi"]
    assert (pi["minReplicas"], pi["maxReplicas"], pi["replicas"]) == (0, 2, 0)
    assert pi["rayStartParams"]["object-store-memory"] == str(2 * 2**30 // 4)
    assert pi["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "512Mi"


def test_gcs_fault_tolerance_only_where_configured(renders: dict[str, Rendered]) -> None:
    lab = _one(renders["lab-ha"], "RayCluster", "ray")["spec"]["gcsFaultToleranceOptions"]
    assert lab["redisAddress"] == "redis.naomi-ray.svc.cluster.local:6379"
    assert lab["redisPassword"] == {"valueFrom": {"secretKeyRef": {"name": "ray-redis", "key": "password"}}}
    assert (
        _one(renders["lab-ha"], "Secret", "ray-redis")["stringData"]["password"]
        == "<secret:ray-redis:result>"
    )
    assert "gcsFaultToleranceOptions" not in _one(renders["edge-lab"], "RayCluster", "ray")["spec"]


def _plan(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in yaml.safe_load(rendered.files["plan.yaml"])["resources"]}


def test_custom_resources_depend_on_their_operator_release(renders: dict[str, Rendered]) -> None:
    plan = _plan(renders["edge-lab"])

    def depends(name: str) -> set[str]:
        return {d.rsplit("::", 1)[-1] for d in plan[name]["dependsOn"]}

    assert "ray-operator" in depends("ray-cluster")
    assert "monitoring" in depends("ray-head-monitor") and "monitoring" in depends("ray-worker-monitor")
    for route in ("gateway-mlflow", "gateway-grafana", "gateway-flyte", "gateway-basic-auth"):
        assert "gateway" in depends(route), route


def test_flyte_uses_platform_postgres_and_object_store_with_the_ray_plugin(
    renders: dict[str, Rendered],
) -> None:
    values = _release(renders["edge-lab"], "flyte-binary")["values"]
    database = values["configuration"]["database"]
    assert database["host"] == "postgres.naomi-platform.svc.cluster.local"
    assert database["passwordPath"] == "/var/run/secrets/flyte-db/password" and "password" not in database
    s3 = values["configuration"]["storage"]["providerConfig"]["s3"]
    assert s3["endpoint"] == "http://object-store.naomi-platform.svc.cluster.local:9000"
    assert s3["authType"] == "iam" and "secretKey" not in s3
    plugins = values["enabled_plugins"]["tasks"]["task-plugins"]
    assert "ray" in plugins["enabled-plugins"] and plugins["default-for-task-types"]["ray"] == "ray"
    k8s_plugin = values["configuration"]["inline"]["plugins"]["k8s"]
    assert k8s_plugin["default-env-from-secrets"] == ["flyte-task-storage", "flyte-task-mlflow"]
    assert {"NAOMI_STORE": "s3://datasets"} in k8s_plugin["default-env-vars"]
    task_mlflow = _one(renders["edge-lab"], "Secret", "flyte-task-mlflow")["stringData"]
    assert task_mlflow["MLFLOW_TRACKING_URI"] == "http://mlflow.naomi-platform.svc.cluster.local:5000/mlflow"
    assert values["configuration"]["inline"]["namespace_mapping"] == {"template": "naomi-workloads"}
    assert values["service"] == {"type": "ClusterIP"} and values["ingress"] == {"create": False}
    assert values["deployment"]["image"]["tag"] == "v1.16.8"
    task_storage = _one(renders["edge-lab"], "Secret", "flyte-task-storage")
    assert task_storage["metadata"]["namespace"] == "naomi-workloads"
    assert task_storage["stringData"]["AWS_SECRET_ACCESS_KEY"] == "<secret:object-store-flyte:result>"


def test_no_ray_client_anywhere(renders: dict[str, Rendered]) -> None:
    for stack, rendered in renders.items():
        for path, text in rendered.files.items():
            assert "ray://" not in text, (stack, path)


def test_monitoring_grafana_admin_from_secret_and_anonymous_off(renders: dict[str, Rendered]) -> None:
    values = _release(renders["edge-lab"], "kube-prometheus-stack")["values"]
    grafana = values["grafana"]
    assert grafana["admin"]["existingSecret"] == "grafana-admin"
    assert grafana["grafana.ini"]["auth.anonymous"] == {"enabled": False}
    assert "adminPassword" not in grafana
    assert _one(renders["edge-lab"], "Secret", "grafana-admin")["stringData"]["admin-password"].startswith(
        "<secret:"
    )
    spec = values["prometheus"]["prometheusSpec"]
    assert (
        spec["routePrefix"] == "/prometheus"
        and spec["externalUrl"] == "https://192.168.50.10:30443/prometheus"
    )
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert values["nodeExporter"] == {"enabled": False}


def test_ray_dashboards_are_generated_from_the_pinned_ray(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    dashboards = [
        o
        for o in rendered.kubernetes
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    names = {name for o in dashboards for name in o["data"]}
    assert {"ray-rayDefaultDashboard.json", "ray-rayServeDashboard.json", "naomi-overview.json"} <= names
    default = next(
        json.loads(o["data"]["ray-rayDefaultDashboard.json"])
        for o in dashboards
        if "ray-rayDefaultDashboard.json" in o["data"]
    )
    exprs = json.dumps(default)
    assert "ray_" in exprs
    overview = next(
        json.loads(o["data"]["naomi-overview.json"]) for o in dashboards if "naomi-overview.json" in o["data"]
    )
    titles = {p["title"] for p in overview["panels"]}
    assert {"Allocatable CPU by architecture", "Serving p99 latency", "Retraining triggers fired"} <= titles


def test_dashboards_and_uis_are_routed_behind_the_gateway(renders: dict[str, Rendered]) -> None:
    routes = {r["metadata"]["name"]: r for r in renders["edge-lab"].kubernetes if r["kind"] == "IngressRoute"}
    assert set(routes) == {
        "mlflow",
        "object-store-console",
        "grafana",
        "prometheus",
        "alertmanager",
        "ray-dashboard",
        "flyte",
        "flyte-grpc",
        "serving-qoe",
        "serving-qoe-edge",
    }
    for name in (
        "prometheus",
        "alertmanager",
        "ray-dashboard",
        "flyte",
        "flyte-grpc",
        "object-store-console",
        "serving-qoe",
        "serving-qoe-edge",
    ):
        assert "basic-auth" in {m["name"] for m in routes[name]["spec"]["routes"][0]["middlewares"]}, name
    ray = routes["ray-dashboard"]["spec"]["routes"][0]["services"][0]
    assert (ray["name"], ray["namespace"], ray["port"]) == ("ray-head-svc", "naomi-ray", 8265)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_pods_that_can_land_on_arm64_use_arm64_capable_images(
    renders: dict[str, Rendered], stack: str
) -> None:
    objects = renders[stack].kubernetes
    problems = [p for o in objects for p in policy.arch_selection(o, arm64_capable)]
    assert problems == []
    assert any(policy.pod_specs(o) for o in objects if o["kind"] == "RayCluster")


def test_arch_check_catches_an_amd64_image_without_selector(renders: dict[str, Rendered]) -> None:
    cluster = json.loads(json.dumps(_one(renders["edge-lab"], "RayCluster", "ray")))
    cluster["spec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["image"] = RAY_IMAGES["amd64"]
    problems = policy.arch_selection(cluster, arm64_capable)
    assert problems == [
        f"RayCluster naomi-ray/ray: image {RAY_IMAGES['amd64']} is amd64-only but the pod may land on arm64",
        f"RayCluster naomi-ray/ray: image {RAY_IMAGES['amd64']} cannot run on the arm64 nodes it is pinned to",
    ]


def test_monitoring_off_removes_monitors_and_routes(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    dev = renders["dev"]  # dev turns monitoring off
    assert not [o for o in dev.kubernetes if o["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert "grafana" not in {o["metadata"]["name"] for o in dev.kubernetes if o["kind"] == "IngressRoute"}
    assert "grafanaAdmin" not in evaluations["dev"].outputs


def test_mlflow_and_flyte_are_scraped(renders: dict[str, Rendered]) -> None:
    rendered = renders["edge-lab"]
    monitor = _one(rendered, "ServiceMonitor", "mlflow")["spec"]["endpoints"][0]
    assert monitor["path"] == "/metrics"
    # a metrics-only login, never the Secret holding basic_auth.ini and the Flask key
    assert monitor["basicAuth"]["password"] == {"name": "mlflow-metrics", "key": "password"}
    mlflow = next(
        o for o in rendered.kubernetes if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow"
    )
    command = mlflow["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--expose-prometheus") + 1] == "/tmp/prometheus"
    assert (
        _one(rendered, "PodMonitor", "flyte-binary")["spec"]["podMetricsEndpoints"][0]["portNumber"] == 10254
    )
    # Prometheus may reach exactly the declared targets (the cluster model proves the flows).
    ingress = _one(rendered, "NetworkPolicy", "ingress-mlflow", namespace="naomi-platform")["spec"]["ingress"]
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    assert any(
        rule["from"][0]["podSelector"]["matchLabels"] == prometheus
        and rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]  # the metrics sidecar
        for rule in ingress
    )


def test_alertmanager_routes_trigger_alerts_to_the_receiver() -> None:
    from infra.monitoring import MonitoringArgs, monitoring_values
    from infra.profiles import PROFILES

    edge = PROFILES["edge"]
    args = MonitoringArgs(
        namespace="naomi-monitoring",
        base_url="https://10.0.0.5:30443",
        retention="7d",
        prometheus=edge.prometheus,
        prometheus_volume="10Gi",
        alertmanager=edge.alertmanager,
        grafana=edge.grafana,
        operator=edge.prometheus_operator,
        kube_state_metrics=edge.kube_state_metrics,
        trigger_webhook_url="http://trigger.naomi-workloads.svc.cluster.local:8080/alerts",
        network=NETWORK,
    )
    config = monitoring_values(args)["alertmanager"]["config"]
    (route,) = config["route"]["routes"]
    assert route["receiver"] == "retraining-trigger" and route["matchers"] == ['naomi_trigger=~".+"']
    receiver = next(r for r in config["receivers"] if r["name"] == "retraining-trigger")
    assert receiver["webhook_configs"][0]["url"].endswith(":8080/alerts")
    without = monitoring_values(MonitoringArgs(**{**args.__dict__, "trigger_webhook_url": None}))
    assert without["alertmanager"]["config"]["route"]["routes"] == []


def test_replicated_mlflow_gets_a_disruption_budget() -> None:
    from naomi.render.engine import evaluate
    from naomi.render.tree import render

    def program() -> None:
        from infra.mlflow import Mlflow, MlflowArgs
        from infra.profiles import PROFILES

        Mlflow(
            "mlflow",
            MlflowArgs(
                namespace="naomi-platform",
                resources=PROFILES["lab"].mlflow,
                backend_uri_secret="postgres-mlflow",
                auth_database_uri="sqlite:///x",
                object_store_endpoint="http://s3:9000",
                object_store_secret="s3",
                external_host="10.0.0.5",
                image="ghcr.io/naomi-mlops/naomi-mlflow:0.1.0",
                database=Backend("postgres"),
                object_store=Backend("object-store"),
                replicas=2,
            ),
        )

    rendered = render(evaluate(program, "pdb", {}, []))
    (budget,) = [o for o in rendered.kubernetes if o["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    (deployment,) = [o for o in rendered.kubernetes if o["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0}


def test_ray_token_is_generated_exported_and_what_kuberay_uses(
    renders: dict[str, Rendered], evaluations: dict[str, Evaluation]
) -> None:
    from naomi.cluster import operators

    rendered = renders["edge-lab"]
    cluster = _one(rendered, "RayCluster", "ray")
    assert cluster["spec"]["authOptions"] == {"mode": "token", "secretName": "ray-auth-token"}
    secret = _one(rendered, "Secret", "ray-auth-token", namespace="naomi-ray")
    assert secret["stringData"]["auth_token"] == "<secret:ray-auth-token:result>"
    assert "rayAuthToken" in evaluations["edge-lab"].secret_outputs
    created = operators.expand_ray_cluster(cluster)
    assert not [o for o in created if o["kind"] == "Secret"]  # KubeRay makes none of its own
    head = next(
        o for o in created if o["kind"] == "Pod" and o["metadata"]["labels"]["ray.io/node-type"] == "head"
    )
    token = next(e for e in head["spec"]["containers"][0]["env"] if e["name"] == "RAY_AUTH_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "ray-auth-token", "key": "auth_token"}
