"""The pods KubeRay and Flyte build from the rendered resources (naomi.cluster.operators).

Expected names, labels, ports and command lines are written out here, not recomputed; the
generated command lines also go through the real bash to see the argv `ray start` would get.
The model follows flytekit's real serialisation of a Ray task (checked against
flytekitplugins-ray when installed). Defects owned elsewhere are strict xfails naming the fix.
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from naomi.cluster import operators
from naomi.cluster.operators import OperatorRefusal
from naomi.render.tree import Rendered

RAY_RESOURCES = ("RayCluster", "RayService")
SHAPE: dict[str, Any] = {  # the Ray shape agreed with the workloads team
    "headStartParams": {"num-cpus": "0"},
    "head": {"cpu": "500m", "memory": "1Gi", "cpuLimit": "1", "memoryLimit": "2Gi"},
    "workers": [
        {
            "group": "x86",
            "arch": "amd64",
            "replicas": 1,
            "min": 0,
            "max": 2,
            "cpu": "1",
            "memory": "2Gi",
            "cpuLimit": "2",
            "memoryLimit": "4Gi",
        }
    ],
    "autoscaling": False,
    "ttlSecondsAfterFinished": 3600,
}
TASK_IMAGE = "ghcr.io/naomi-mlops/naomi-workloads:0.1.0"

# Pods per custom resource: (namespace, name) -> pod names, in creation order.
EXPECTED_PODS = {
    "edge-lab": {
        ("naomi-ray", "ray"): ["ray-head-00000", "ray-x86-worker-00000"],
        ("naomi-serving", "qoe"): ["qoe-00000-head-00000", "qoe-00000-x86-worker-00000"],
    },
    "lab-ha": {
        ("naomi-ray", "ray"): [
            "ray-head-00000",
            "ray-x86-worker-00000",
            "ray-x86-worker-00001",
            "ray-pi-worker-00000",
            "ray-pi-worker-00001",
        ],
        ("naomi-serving", "qoe"): [
            "qoe-00000-head-00000",
            "qoe-00000-x86-worker-00000",
            "qoe-00000-x86-worker-00001",
        ],
    },
}
ULIMIT = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; "
EDGE_LAB_COMMANDS = {
    "ray-head-00000": ULIMIT + "ray start --head  --block  --dashboard-agent-listen-port=52365  "
    "--dashboard-host=0.0.0.0  --memory=2147483648  --metrics-export-port=8080  --no-monitor  --num-cpus=0 ",
    "ray-x86-worker-00000": ULIMIT + "ray start  --address=ray-head-svc.naomi-ray.svc.cluster.local:6379  "
    "--block  --dashboard-agent-listen-port=52365  --memory=4294967296  --metrics-export-port=8080  "
    "--num-cpus=2  --object-store-memory=1073741824  --resources='{\"x86\":2}' ",
    "qoe-00000-x86-worker-00000": ULIMIT
    + "ray start  --address=qoe-00000-head-svc.naomi-serving.svc.cluster.local:6379  --block  "
    "--dashboard-agent-listen-port=52365  --memory=1073741824  --metrics-export-port=8080  --num-cpus=1  "
    "--object-store-memory=268435456  --resources='{\"x86\":1}' ",
}


def _ray_resources(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.kubernetes if o["kind"] in RAY_RESOURCES]


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Pod"}


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        c for c in [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])] if c["name"] == name
    ]
    return found


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _scaled_up(obj: dict[str, Any]) -> dict[str, Any]:
    """The resource with one replica in every worker group (what the autoscaler does to a pool at 0)."""
    scaled = copy.deepcopy(obj)
    spec = scaled["spec"].get("rayClusterConfig", scaled["spec"])
    for group in spec["workerGroupSpecs"]:
        group["replicas"] = max(group["replicas"], 1)
    return scaled


def _flyte_plugins(rendered: Rendered) -> dict[str, Any]:
    (release,) = [r for r in rendered.helm if r["chart"] == "flyte-binary"]
    inline: dict[str, Any] = release["values"]["configuration"]["inline"]
    return inline


@pytest.mark.parametrize("stack", ["edge-lab", "lab-ha"])
def test_every_ray_resource_expands_into_the_pods_kuberay_creates(
    renders: dict[str, Rendered], stack: str
) -> None:
    found = {}
    for obj in _ray_resources(renders[stack]):
        objects = operators.expand(obj)
        found[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = list(_pods(objects))
    assert found == EXPECTED_PODS[stack]


@pytest.mark.parametrize("stack", ["edge-lab", "lab-ha"])
def test_pods_carry_kuberay_labels_containers_and_ports(renders: dict[str, Rendered], stack: str) -> None:
    for obj in _ray_resources(renders[stack]):
        objects = operators.expand(obj)
        cluster = (
            f"{obj['metadata']['name']}-00000" if obj["kind"] == "RayService" else obj["metadata"]["name"]
        )
        for pod in _pods(objects).values():
            labels = pod["metadata"]["labels"]
            head = labels["ray.io/node-type"] == "head"
            assert labels["ray.io/cluster"] == cluster
            assert labels["ray.io/is-ray-node"] == "yes"
            assert labels["app.kubernetes.io/created-by"] == "kuberay-operator"
            assert labels["app.kubernetes.io/part-of"] == "naomi"  # ours survive
            spec = pod["spec"]
            if head:
                assert labels["ray.io/group"] == "headgroup"
                assert labels["app.kubernetes.io/name"] == "kuberay"  # ours no longer override it
                assert [c["name"] for c in spec["containers"]] == ["ray-head", "autoscaler"]
                assert "initContainers" not in spec
                ports = {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}
                serve = {"serve": 8000} if obj["kind"] == "RayService" else {}
                assert ports == {
                    "gcs-server": 6379,
                    "dashboard": 8265,
                    "client": 10001,
                    "metrics": 8080,
                    **serve,
                }
                assert spec["serviceAccountName"] == cluster  # KubeRay's autoscaler account
                assert operators.token_mounted(spec)
            else:
                assert labels["ray.io/group"] == labels["naomi.io/ray-pool"]
                assert [c["name"] for c in spec["containers"]] == ["ray-worker"]
                assert [c["name"] for c in spec["initContainers"]] == ["wait-gcs-ready"]
                serve_port = [{"name": "serve", "containerPort": 8000}] if obj["kind"] == "RayService" else []
                assert spec["containers"][0]["ports"] == [
                    {"name": "metrics", "containerPort": 8080},
                    *serve_port,
                ]
                assert not operators.token_mounted(spec)
            if obj["kind"] == "RayService":
                assert labels["ray.io/serve"] == ("false" if head else "true")
                assert labels["naomi.io/rayservice"] == obj["metadata"]["name"]


def test_head_service_and_kuberay_objects(renders: dict[str, Rendered]) -> None:
    (cluster,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayCluster"]
    objects = operators.expand_ray_cluster(cluster)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "Pod"]
    assert kinds == [
        ("ServiceAccount", "ray"),
        ("Role", "ray"),
        ("RoleBinding", "ray"),
        ("Service", "ray-head-svc"),
    ]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == "None"  # headless ClusterIP: nothing on node ports
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("client", 10001),
        ("dashboard", 8265),
        ("gcs-server", 6379),
        ("metrics", 8080),
    ]
    head = _pods(objects)["ray-head-00000"]
    assert all(head["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ray", "namespace": "naomi-ray"}]


def test_generated_command_lines_for_each_group(renders: dict[str, Rendered]) -> None:
    pods: dict[str, dict[str, Any]] = {}
    for obj in _ray_resources(renders["edge-lab"]):
        pods |= _pods(operators.expand(obj))
    for name, expected in EDGE_LAB_COMMANDS.items():
        ray = pods[name]["spec"]["containers"][0]
        assert ray["command"] == ["/bin/bash", "-c", "--"]
        assert ray["args"] == [expected]
        assert _env(ray)["KUBERAY_GEN_RAY_START_CMD"] == expected.removeprefix(ULIMIT)


@pytest.mark.parametrize("stack", ["edge-lab", "lab-ha"])
def test_bash_hands_ray_start_its_custom_resource_as_json(renders: dict[str, Rendered], stack: str) -> None:
    """The container's command through the real bash, with `ray` a function printing its argv."""
    for obj in _ray_resources(renders[stack]):
        template = obj["spec"].get("rayClusterConfig", obj["spec"])
        for pod in _pods(operators.expand(_scaled_up(obj))).values():
            if pod["metadata"]["labels"]["ray.io/node-type"] != "worker":
                continue
            ray = pod["spec"]["containers"][0]
            script = "ray() { printf '%s\\n' \"$@\"; }; " + ray["args"][0]
            result = subprocess.run([*ray["command"], script], capture_output=True, text=True, check=True)
            argv = result.stdout.splitlines()
            (resources,) = [a.removeprefix("--resources=") for a in argv if a.startswith("--resources=")]
            group = pod["metadata"]["labels"]["ray.io/group"]
            (spec,) = [g for g in template["workerGroupSpecs"] if g["groupName"] == group]
            cpus = operators.quantity_value(
                spec["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
            )
            assert _json(resources) == {group: cpus}, (
                f"{pod['metadata']['name']}: ray start gets --resources={resources}"
            )
            head_service = f"{pod['metadata']['labels']['ray.io/cluster']}-head-svc"
            assert argv[:2] == [
                "start",
                f"--address={head_service}.{pod['metadata']['namespace']}.svc.cluster.local:6379",
            ]


def test_token_auth_reaches_every_ray_process(renders: dict[str, Rendered]) -> None:
    for obj in _ray_resources(renders["lab-ha"]):
        objects = operators.expand(obj)
        # Ours (authOptions.secretName, the platform cluster) or the one KubeRay makes (RayService).
        named = (obj["spec"].get("authOptions") or {}).get("secretName")
        if named is None:
            (secret,) = [o for o in objects if o["kind"] == "Secret"]
            named = secret["metadata"]["name"]
        else:
            assert not [o for o in objects if o["kind"] == "Secret"]
        reference = {"secretKeyRef": {"name": named, "key": "auth_token"}}
        for pod in _pods(objects).values():
            for container in [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])]:
                env = _env(container)
                assert env["RAY_AUTH_MODE"] == "token", container["name"]
                assert env["RAY_AUTH_TOKEN"] == reference, container["name"]


def test_autoscaler_sidecar_takes_our_options_and_the_head_image(renders: dict[str, Rendered]) -> None:
    (cluster,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayCluster"]
    head = _pods(operators.expand_ray_cluster(cluster))["ray-head-00000"]
    autoscaler = _container(head, "autoscaler")
    options = cluster["spec"]["autoscalerOptions"]
    assert autoscaler["securityContext"] == options["securityContext"]
    assert autoscaler["resources"] == options["resources"]
    assert autoscaler["image"] == head["spec"]["containers"][0]["image"]
    assert autoscaler["args"] == [operators.AUTOSCALER_START]
    assert {"mountPath": "/tmp/ray", "name": "ray-logs"} in autoscaler["volumeMounts"]


def test_probes_kuberay_adds(renders: dict[str, Rendered]) -> None:
    pods: dict[str, dict[str, Any]] = {}
    for obj in _ray_resources(renders["edge-lab"]):
        pods |= _pods(operators.expand(obj))
    http = {"httpGet": {"path": "/api/healthz", "port": 52365}}
    for name in ("ray-head-00000", "ray-x86-worker-00000", "qoe-00000-head-00000"):
        ray = pods[name]["spec"]["containers"][0]
        assert ray["livenessProbe"]["httpGet"] == http["httpGet"]  # Ray 2.60 >= 2.53: one HTTP check
        assert ray["readinessProbe"]["httpGet"] == http["httpGet"]
    serve_worker = pods["qoe-00000-x86-worker-00000"]["spec"]["containers"][0]["readinessProbe"]
    assert serve_worker["exec"]["command"] == [
        "bash",
        "-c",
        "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success && "
        "wget --tries 1 -T 10 -q -O- http://localhost:8000/-/healthz | grep success",
    ]
    assert serve_worker["failureThreshold"] == 1


def test_gcs_fault_tolerance_wires_redis_into_the_head(renders: dict[str, Rendered]) -> None:
    (cluster,) = [o for o in renders["lab-ha"].kubernetes if o["kind"] == "RayCluster"]
    pods = _pods(operators.expand_ray_cluster(cluster))
    head = pods["ray-head-00000"]["spec"]["containers"][0]
    env = _env(head)
    assert env["RAY_REDIS_ADDRESS"] == "redis.naomi-ray.svc.cluster.local:6379"
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"key": "password", "name": "ray-redis"}}
    assert " --redis-password=$REDIS_PASSWORD " in head["args"][0]
    assert (
        _env(pods["ray-x86-worker-00000"]["spec"]["containers"][0])["RAY_gcs_rpc_server_reconnect_timeout_s"]
        == "600"
    )
    job = operators.redis_cleanup_job(cluster)
    assert job is not None and job["metadata"]["name"] == "ray-redis-cleanup"
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["ray-head"]


def test_both_resource_fields_are_refused_as_kuberay_does(renders: dict[str, Rendered]) -> None:
    (cluster,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayCluster"]
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = "2"
    broken["spec"]["workerGroupSpecs"][0]["resources"] = {"x86": "2"}
    with pytest.raises(OperatorRefusal) as refusal:
        operators.expand_ray_cluster(broken)
    assert str(refusal.value) == (
        "resource fields should not be set in both rayStartParams and Resources for x86 group; please use only one"
    )


def test_serve_service_needs_a_serve_port_on_the_head() -> None:
    service = _flyte_free_ray_service()
    assert operators.reconcile_errors(service) == [
        "Please specify a port named 'serve' (or with the prefix 'serve-', e.g. 'serve-grpc') in the Ray head "
        "container; otherwise, the Kubernetes service for Ray Serve will not be created."
    ]
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["ports"] = [{"name": "serve", "containerPort": 8000}]
    objects = operators.expand_ray_service(service)
    (serve,) = [o for o in objects if o["metadata"]["name"] == "svc-serve-svc"]
    assert serve["spec"] == {
        "selector": {"ray.io/cluster": "svc-00000", "ray.io/serve": "true"},
        "ports": [{"name": "serve", "port": 8000}],
    }
    assert operators.reconcile_errors(service) == []


def _flyte_free_ray_service() -> dict[str, Any]:
    container = {
        "name": "ray-head",
        "image": "ray:2.60.0",
        "ports": [{"name": "dashboard", "containerPort": 8265}],
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {"template": {"spec": {"containers": [container]}}},
                "workerGroupSpecs": [],
            }
        },
    }


@pytest.mark.parametrize("stack", ["edge-lab", "lab-ha"])
def test_every_rayservice_gets_its_serve_service(renders: dict[str, Rendered], stack: str) -> None:
    for obj in renders[stack].kubernetes:
        if obj["kind"] == "RayService":
            assert operators.reconcile_errors(obj) == []


def test_rayservice_head_service_selects_the_head(renders: dict[str, Rendered]) -> None:
    (service,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayService"]
    objects = operators.expand_ray_service(service)
    (head_service,) = [o for o in objects if o["metadata"]["name"] == "qoe-head-svc"]
    head = _pods(objects)["qoe-00000-head-00000"]
    assert head_service["spec"]["selector"].items() <= head["metadata"]["labels"].items()


def test_rayservice_cluster_is_created_with_the_owner_labels(renders: dict[str, Rendered]) -> None:
    (service,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayService"]
    cluster = operators.expand_ray_service(service)[0]
    assert (cluster["kind"], cluster["metadata"]["name"]) == ("RayCluster", "qoe-00000")
    assert cluster["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayService"
    assert cluster["metadata"]["labels"]["app.kubernetes.io/instance"] == "qoe"  # copied from the RayService
    assert cluster["spec"] == service["spec"]["rayClusterConfig"]


# ---------------------------------------------------------------------------------------------
# Flyte


def _flyte_ray_job(rendered: Rendered, shape: dict[str, Any]) -> dict[str, Any]:
    inline = _flyte_plugins(rendered)
    return operators.flyte_ray_job(
        shape,
        task_image=TASK_IMAGE,
        plugin_config=inline["plugins"]["ray"],
        k8s_plugin_config=inline["plugins"]["k8s"],
        namespace="naomi-workloads",
        name="a1b2c3-n0-0",
        task_resources={"requests": {"cpu": "500m", "memory": "1Gi"}},
        platform_resources=inline["task_resources"],
    )


def test_flyte_ray_job_from_the_agreed_shape(renders: dict[str, Rendered]) -> None:
    job = _flyte_ray_job(renders["edge-lab"], SHAPE)
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"] == {
        "num-cpus": "0",
        "include-dashboard": "true",
        "node-ip-address": "$MY_POD_IP",
        "dashboard-host": "0.0.0.0",
        "disable-usage-stats": "true",
    }
    assert cluster["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in cluster
    assert "rayVersion" not in cluster and "authOptions" not in cluster  # Flyte sets neither
    (worker,) = cluster["workerGroupSpecs"]
    assert (worker["groupName"], worker["replicas"], worker["minReplicas"], worker["maxReplicas"]) == (
        "x86",
        1,
        0,
        2,
    )
    spec = worker["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    ray = spec["containers"][0]
    assert ray["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "1", "memory": "2Gi"},
    }
    assert ray["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert ray["envFrom"] == [
        {"secretRef": {"name": "flyte-task-storage", "optional": True}},
        {"secretRef": {"name": "flyte-task-mlflow", "optional": True}},
    ]
    assert _env(ray)["NAOMI_STORE"] == "s3://datasets"
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600 and job["spec"]["shutdownAfterJobFinishes"] is True
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert submitter["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }


def test_kuberay_runs_the_flyte_ray_job(renders: dict[str, Rendered]) -> None:
    job = _flyte_ray_job(renders["edge-lab"], SHAPE)
    objects = operators.expand_ray_job(job)
    pods = _pods(objects)
    assert list(pods) == ["a1b2c3-n0-0-00000-head-00000", "a1b2c3-n0-0-00000-x86-worker-00000"]
    head = pods["a1b2c3-n0-0-00000-head-00000"]["spec"]["containers"][0]
    assert head["args"] == [
        ULIMIT + "ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0  "
        "--disable-usage-stats  --include-dashboard=true  --memory=2147483648  --metrics-export-port=8080  "
        "--node-ip-address=$MY_POD_IP  --num-cpus=0 "
    ]
    # No rayVersion: KubeRay falls back to exec probes that need wget in the task image.
    assert head["readinessProbe"]["exec"]["command"][2].startswith(
        "wget --tries 1 -T 2 -q -O- http://localhost:52365/"
    )
    (submitter_job,) = [o for o in objects if o["kind"] == "Job"]
    submitter = submitter_job["spec"]["template"]["spec"]["containers"][0]
    assert submitter["image"] == TASK_IMAGE
    assert submitter["command"] == ["/bin/bash", "-ce", "--"]
    address = "http://a1b2c3-n0-0-00000-head-svc.naomi-workloads.svc.cluster.local:8265"
    assert (
        f" ray job submit --address {address} --no-wait --submission-id a1b2c3-n0-0-00000 -- pyflyte-execute "
        in submitter["args"][0]
    )
    assert submitter["securityContext"]["allowPrivilegeEscalation"] is False
    assert submitter_job["spec"]["backoffLimit"] == 2


def test_flyte_defaults_the_head_service_to_node_port() -> None:
    for config, service_type, headless in (
        ({}, "NodePort", False),
        ({"serviceType": "ClusterIP"}, "ClusterIP", True),
    ):
        job = operators.flyte_ray_job(
            SHAPE,
            task_image=TASK_IMAGE,
            plugin_config=config,
            k8s_plugin_config={},
            namespace="ns",
            name="job",
        )
        services = [o for o in operators.expand_ray_job(job) if o["kind"] == "Service"]
        assert [s["metadata"]["name"] for s in services] == ["job-00000-head-svc", "job-head-svc"]
        for service in services:
            assert service["spec"]["type"] == service_type
            assert (service["spec"].get("clusterIP") == "None") is headless
            assert {p["port"] for p in service["spec"]["ports"]} == {6379, 8265, 10001, 8080}


@pytest.mark.parametrize("stack", ["edge-lab", "lab-ha"])
def test_flyte_ray_heads_stay_off_node_ports(renders: dict[str, Rendered], stack: str) -> None:
    """Defect 3 (fixed in infra/flyte.py by plugins.ray.serviceType): Flyte's default NodePort would
    put GCS, client and dashboard of every RayJob on every node's ports."""
    objects = operators.expand_ray_job(_flyte_ray_job(renders[stack], SHAPE))
    assert {s["spec"].get("type", "ClusterIP") for s in objects if s["kind"] == "Service"} == {"ClusterIP"}


def test_flyte_autoscaler_sidecar_gets_no_security_context(renders: dict[str, Rendered]) -> None:
    """Defect 2: flyteidl's AutoscalerOptions has no securityContext (ray.go buildAutoscalerOptions)
    and KubeRay copies only autoscalerOptions.securityContext (pod.go mergeAutoscalerOverrides), so
    with autoscaling on the head pod has a container `restricted` Pod Security rejects."""
    shape = {**SHAPE, "autoscaling": True}
    pods = _pods(operators.expand_ray_job(_flyte_ray_job(renders["edge-lab"], shape)))
    head = pods["a1b2c3-n0-0-00000-head-00000"]
    autoscaler = _container(head, "autoscaler")
    assert "securityContext" not in autoscaler
    assert _container(head, "ray-head")["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert autoscaler["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}  # KubeRay's default
    # The head runs under KubeRay's autoscaler account (no execution account given), token mounted.
    assert head["spec"]["serviceAccountName"] == "a1b2c3-n0-0-00000" and operators.token_mounted(head["spec"])


def test_flyte_task_pod_from_the_k8s_plugin_config(renders: dict[str, Rendered]) -> None:
    inline = _flyte_plugins(renders["edge-lab"])
    pod = operators.flyte_task_pod(
        task_image=TASK_IMAGE,
        k8s_plugin_config=inline["plugins"]["k8s"],
        namespace="naomi-workloads",
        name="a1b2c3-n1-0",
        task_resources={"requests": {"cpu": "500m", "memory": "1Gi"}},
        platform_resources=inline["task_resources"],
    )
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "a1b2c3-n1-0" and container["image"] == TASK_IMAGE
    assert container["securityContext"] == inline["plugins"]["k8s"]["default-security-context"]
    assert spec["securityContext"] == inline["plugins"]["k8s"]["default-pod-security-context"]
    assert spec["restartPolicy"] == "Never"
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }
    env = _env(container)
    assert env["AWS_ENDPOINT_URL"] == "http://object-store.naomi-platform.svc.cluster.local:9000"
    assert env["FLYTE_INTERNAL_EXECUTION_PROJECT"] == "naomi"
    assert pod["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "primary_container_name": "a1b2c3-n1-0",
    }
    assert operators.token_mounted(spec)  # Flyte never sets automountServiceAccountToken


def test_task_resources_are_capped_at_the_platform_limits(renders: dict[str, Rendered]) -> None:
    inline = _flyte_plugins(renders["edge-lab"])
    pod = operators.flyte_task_pod(
        task_image=TASK_IMAGE,
        k8s_plugin_config={},
        namespace="ns",
        name="t",
        task_resources={"requests": {"cpu": "3"}, "limits": {"memory": "8Gi"}},
        platform_resources=inline["task_resources"],
    )
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def _flytekit_custom(shape: dict[str, Any]) -> dict[str, Any]:
    """The shape as a flytekitplugins-ray RayJobConfig, built the obvious way, serialised by flytekit."""
    pytest.importorskip("flytekitplugins.ray")
    from flytekit import PodTemplate
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig
    from flytekitplugins.ray.task import RayFunctionTask
    from kubernetes.client import V1Container, V1PodSpec, V1ResourceRequirements

    def template(container: str, size: dict[str, Any], arch: str | None) -> PodTemplate:
        resources = V1ResourceRequirements(
            requests={"cpu": size["cpu"], "memory": size["memory"]},
            limits={"cpu": size["cpuLimit"], "memory": size["memoryLimit"]},
        )
        selector = {"kubernetes.io/arch": arch} if arch else None
        return PodTemplate(
            pod_spec=V1PodSpec(
                containers=[V1Container(name=container, resources=resources)], node_selector=selector
            )
        )

    config = RayJobConfig(
        head_node_config=HeadNodeConfig(
            ray_start_params=shape.get("headStartParams"),
            pod_template=template("ray-head", shape["head"], None),
        ),
        worker_node_config=[
            WorkerNodeConfig(
                group_name=w["group"],
                replicas=w["replicas"],
                min_replicas=w["min"],
                max_replicas=w["max"],
                ray_start_params=w.get("startParams"),
                pod_template=template("ray-worker", w, w.get("arch")),
            )
            for w in shape["workers"]
        ],
        enable_autoscaling=shape["autoscaling"],
        shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=shape["ttlSecondsAfterFinished"],
    )

    def ray_task() -> None: ...

    task = RayFunctionTask(task_config=config, task_function=ray_task)
    custom: dict[str, Any] = task.get_custom(
        SerializationSettings(image_config=ImageConfig.auto(img_name=TASK_IMAGE))
    )
    return custom


@pytest.mark.workloads
@pytest.mark.parametrize(
    "shape",
    [
        SHAPE,
        {
            **SHAPE,
            "autoscaling": True,
            "workers": [{**SHAPE["workers"][0], "replicas": 0, "min": 1, "max": 3}],
        },
        {**SHAPE, "headStartParams": {}, "workers": [{**SHAPE["workers"][0], "arch": None, "group": "any"}]},
        {**SHAPE, "workers": [{**SHAPE["workers"][0], "startParams": {"resources": "'{\"x86\":1}'"}}]},
    ],
    ids=["agreed", "autoscaling", "no-params-no-arch", "worker-params"],
)
def test_model_reads_what_flytekit_serialises(renders: dict[str, Rendered], shape: dict[str, Any]) -> None:
    custom = _flytekit_custom(shape)
    assert operators.ray_task_custom(shape) == custom
    inline = _flyte_plugins(renders["edge-lab"])
    from_flytekit = operators.flyte_ray_job_from_custom(
        custom,
        task_image=TASK_IMAGE,
        plugin_config=inline["plugins"]["ray"],
        k8s_plugin_config=inline["plugins"]["k8s"],
        namespace="ns",
        name="job",
    )
    assert from_flytekit == operators.flyte_ray_job(
        shape,
        task_image=TASK_IMAGE,
        plugin_config=inline["plugins"]["ray"],
        k8s_plugin_config=inline["plugins"]["k8s"],
        namespace="ns",
        name="job",
    )
    (worker,) = from_flytekit["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert worker["replicas"] == shape["workers"][0]["replicas"]
    assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]


def test_quantities_round_up_like_kubernetes() -> None:
    assert [operators.quantity_value(q) for q in ("500m", "2", "1.5", "4Gi", "1e3", "1536Mi")] == [
        1,
        2,
        2,
        4 * 2**30,
        1000,
        1536 * 2**20,
    ]
    with pytest.raises(ValueError, match="quantities must match"):
        operators.quantity("2 cores")


@pytest.mark.parametrize(
    ("value", "reaches_ray"),
    [('{"pi":2}', "{pi:2}"), ("'{\"pi\":2}'", '{"pi":2}')],
    ids=["raw-json", "single-quoted"],
)
def test_flyte_worker_start_params_reach_bash_raw(value: str, reaches_ray: str) -> None:
    """Flyte has no group-level `resources`: a custom resource in a Ray task's worker start params
    is pasted into the `bash -c` line as it is, so it must carry its own shell quotes."""
    worker = {**SHAPE["workers"][0], "group": "pi", "arch": "arm64", "startParams": {"resources": value}}
    job = operators.flyte_ray_job(
        {**SHAPE, "workers": [worker]},
        task_image=TASK_IMAGE,
        plugin_config={"serviceType": "ClusterIP"},
        k8s_plugin_config={},
        namespace="ns",
        name="job",
    )
    pods = _pods(operators.expand_ray_job(job))
    ray = pods["job-00000-pi-worker-00000"]["spec"]["containers"][0]
    script = "ray() { printf '%s\\n' \"$@\"; }; " + ray["args"][0]
    argv = subprocess.run(
        [*ray["command"], script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert f"--resources={reaches_ray}" in argv
