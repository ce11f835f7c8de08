"""Flyte Ray tasks on the stack's pools (issue 15, defect 2), read the way Flyte and KubeRay read them.

The registration plan carries the RayJob shape of the stack's Ray pools; the production workflow
modules, imported with that plan as the registration Job imports them, register their Ray tasks
with one worker group per pool, each pinned to its architecture, with the pool's resources and
its custom resource. The custom resource travels in `rayStartParams` (flyteidl's WorkerGroupSpec
has no group-level `resources`), so the test builds the `ray start` line KubeRay v1.7.0 generates
from it (`ray-operator/controllers/ray/common/pod.go` convertParamMap, after flyteplugins v1.16.8
`go/tasks/plugins/k8s/ray/ray.go` added its own worker params) and lets bash parse it, as the
container's `bash -c` does. A workflow with a task built from the same shape runs locally on Ray.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered

flytekit = pytest.importorskip("flytekit")
from flytekit import Resources, task, workflow  # noqa: E402

from infra.flyte import TaskDefaults  # noqa: E402
from workloads.common.flyte_tasks import ray_job_config  # noqa: E402

DEFAULTS = TaskDefaults()
PI_POOL_SHAPE: dict[str, Any] = {  # edge-lab's Pi pool alone, as the plan renders it
    "headStartParams": {"num-cpus": "0"},
    "head": {"cpu": "250m", "memory": "1Gi", "cpuLimit": "1", "memoryLimit": "2Gi"},
    "workers": [
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
        }
    ],
    "autoscaling": False,
    "ttlSecondsAfterFinished": 3600,
}


def kuberay_worker_argv(params: dict[str, str], limits: dict[str, str]) -> list[str]:
    """The argv `ray start` gets in a worker pod of a Flyte RayJob.

    flyteplugins v1.16.8 ray.go adds `node-ip-address` ($MY_POD_IP by default) and
    `disable-usage-stats` to each worker group's params; kuberay v1.7.0 pod.go
    generateRayStartCommand adds `num-cpus` (CPU limit, rounded up) and `memory` (limit in bytes)
    when absent, convertParamMap writes ` --key=value ` per key in sorted order ("true" becomes a
    bare flag, "false" is dropped, but for log-color/include-dashboard/include-log-monitor), and
    the container runs `ulimit -n ...; ray start ...` under `bash -lc`."""
    params = {"node-ip-address": "$MY_POD_IP", "disable-usage-stats": "true", **params}
    cpu, memory = limits["cpu"], limits["memory"]
    params.setdefault("num-cpus", str(math.ceil(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))))
    params.setdefault("memory", str(int(memory[:-2]) * {"Mi": 2**20, "Gi": 2**30}[memory[-2:]]))
    flags = ""
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in (
            "log-color",
            "include-dashboard",
            "include-log-monitor",
        ):
            flags += f" --{key} " if value.lower() == "true" else ""
        else:
            flags += f" --{key}={value} "
    line = f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; ray start {flags}"
    # `ray` here is a shell function printing the argv bash hands it.
    script = 'ray() { printf "%s\\n" "$@"; }; ' + line
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={"MY_POD_IP": "10.1.2.3"}
    )
    return result.stdout.splitlines()


def _plan(rendered: Rendered) -> dict[str, Any]:
    (config_map,) = [
        o
        for o in rendered.kubernetes
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("workloads-registration-")
    ]
    return dict(json.loads(config_map["data"]["registration.json"]))


def test_registered_ray_tasks_run_on_the_stacks_pools(renders: dict[str, Rendered], tmp_path: Path) -> None:
    """The production QoE and MNIST Ray tasks, serialized as registration serializes them with
    edge-lab's plan: a worker group per pool (x86 and the Pi pool), each on its architecture."""
    plan_file = tmp_path / "registration.json"
    plan_file.write_text(json.dumps(_plan(renders["edge-lab"])))
    program = (
        "import json\n"
        "from flytekit.configuration import ImageConfig, SerializationSettings\n"
        "from workloads.qoe.workflow import train_task\n"
        "from workloads.mnist.workflow import mnist_train_task\n"
        "settings = SerializationSettings(image_config=ImageConfig.auto_default_image())\n"
        "print(json.dumps([t.get_custom(settings) for t in (train_task, mnist_train_task)]))\n"
    )
    env = {**os.environ, "NAOMI_REGISTRATION_PLAN": str(plan_file), "PYTHONPATH": str(PROJECT_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for custom in json.loads(result.stdout.splitlines()[-1]):
        cluster = custom["rayCluster"]
        assert not cluster.get("enableAutoscaling")  # Flyte's autoscaler sidecar would fail `restricted`
        groups = {g["groupName"]: g for g in cluster["workerGroupSpec"]}
        assert list(groups) == ["x86", "pi"]
        for name, arch, memory in (("x86", "amd64", "4Gi"), ("pi", "arm64", "2Gi")):
            pod = groups[name]["k8sPod"]["podSpec"]
            assert pod["nodeSelector"] == {"kubernetes.io/arch": arch}
            (container,) = pod["containers"]
            assert container["name"] == "ray-worker"  # merged onto the task's container (ray.go)
            assert container["resources"] == {
                "requests": {"cpu": "2", "memory": memory},
                "limits": {"cpu": "2", "memory": memory},
            }
            argv = kuberay_worker_argv(groups[name]["rayStartParams"], container["resources"]["limits"])
            (resources,) = [a for a in argv if a.startswith("--resources=")]
            assert json.loads(resources.removeprefix("--resources=")) == {name: 2}, argv
            assert "--node-ip-address=10.1.2.3" in argv and "--disable-usage-stats" in argv
        # proto3 JSON leaves zero out: minReplicas 0 is absent
        assert groups["pi"]["replicas"] == 1 and groups["pi"].get("minReplicas", 0) == 0
        assert cluster["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}


def test_without_a_plan_the_default_shape_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local runs (no registration plan): one x86 group on amd64, as the default stack renders."""
    from workloads.common.flyte_tasks import DEFAULT_RAY_JOB, ray_job_shape

    monkeypatch.delenv("NAOMI_REGISTRATION_PLAN", raising=False)
    assert ray_job_shape() is DEFAULT_RAY_JOB
    (group,) = ray_job_config().worker_node_config
    assert (group.group_name, group.replicas, group.min_replicas, group.max_replicas) == ("x86", 1, 0, 2)
    assert group.pod_template.pod_spec.node_selector == {"kubernetes.io/arch": "amd64"}
    assert group.ray_start_params == {"resources": "'{\"x86\":1}'"}


def test_a_shape_serializes_as_flytes_ray_plugin_reads_it() -> None:
    from flytekit.configuration import ImageConfig, SerializationSettings

    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    custom = squares_on_ray.get_custom(settings)
    (worker,) = custom["rayCluster"]["workerGroupSpec"]
    assert worker["groupName"] == "pi" and (worker.get("minReplicas", 0), worker["maxReplicas"]) == (0, 2)
    assert worker["rayStartParams"] == {"resources": "'{\"pi\":2}'"}
    assert custom["shutdownAfterJobFinishes"] is True and custom["ttlSecondsAfterFinished"] == 3600


@task(task_config=ray_job_config(PI_POOL_SHAPE), requests=Resources(cpu=DEFAULTS.cpu, mem=DEFAULTS.memory))
def squares_on_ray(n: int) -> int:
    import ray

    @ray.remote
    def square(x: int) -> int:
        return x * x

    return sum(ray.get([square.remote(i) for i in range(n)]))


@task(requests=Resources(cpu=DEFAULTS.cpu, mem=DEFAULTS.memory))
def plus_one(total: int) -> int:
    return total + 1


@workflow
def ray_smoke(n: int = 10) -> int:
    return plus_one(total=squares_on_ray(n=n))


def test_workflow_with_a_ray_task_runs_locally_end_to_end(ray_session: object) -> None:
    # flytekit's local execution joins the running Ray (ignore_reinit_error) instead of starting one.
    assert ray_smoke(n=10) == sum(i * i for i in range(10)) + 1
