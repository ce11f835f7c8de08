"""A flytekit workflow with a RayJobConfig task, configured from what the platform renders, run locally.

On the cluster the task becomes a RayJob with the edge-lab `pi` pool's worker group (resources,
custom resource, object-store memory) and the platform's task defaults; here flytekit's local
execution runs the same code on a local Ray (inside `unshare -n`).
"""

from __future__ import annotations

import json

import pytest

flytekit = pytest.importorskip("flytekit")
from flytekit import Resources, task, workflow  # noqa: E402
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig  # noqa: E402

from infra.flyte import TaskDefaults  # noqa: E402
from infra.profiles import PROFILES  # noqa: E402
from infra.ray import RayPlatformArgs, RayPool, worker_group  # noqa: E402

POOL = RayPool(name="pi", arch="arm64", min=0, max=2, cpu="2", memory="2Gi")  # edge-lab's Pi pool
GROUP = worker_group(
    RayPlatformArgs(
        namespace="naomi-workloads",
        pools=(POOL,),
        head=PROFILES["edge"].ray_head,
        operator=PROFILES["edge"].ray_operator,
    ),
    POOL,
)
DEFAULTS = TaskDefaults()
# Flyte's Ray plugin has no group-level `resources`: the custom resource travels in the start
# params and must carry its own shell quotes (KubeRay pastes them raw into `bash -c`).
START_PARAMS = {
    **GROUP["rayStartParams"],
    "num-cpus": GROUP["resources"]["cpu"],
    "resources": "'"
    + json.dumps({POOL.name: int(GROUP["resources"][POOL.name])}, separators=(",", ":"))
    + "'",
}
WORKER_RESOURCES = GROUP["template"]["spec"]["containers"][0]["resources"]

RAY_CONFIG = RayJobConfig(
    head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
    worker_node_config=[
        WorkerNodeConfig(
            group_name=GROUP["groupName"],
            replicas=max(GROUP["minReplicas"], 1),
            min_replicas=GROUP["minReplicas"],
            max_replicas=GROUP["maxReplicas"],
            ray_start_params=START_PARAMS,
            requests=Resources(
                cpu=WORKER_RESOURCES["requests"]["cpu"], mem=WORKER_RESOURCES["requests"]["memory"]
            ),
            limits=Resources(cpu=WORKER_RESOURCES["limits"]["cpu"], mem=WORKER_RESOURCES["limits"]["memory"]),
        )
    ],
    enable_autoscaling=True,
    shutdown_after_job_finishes=True,
    ttl_seconds_after_finished=3600,
)


@task(task_config=RAY_CONFIG, requests=Resources(cpu=DEFAULTS.cpu, mem=DEFAULTS.memory))
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


def test_ray_task_carries_the_pool_config() -> None:
    from flytekit.configuration import ImageConfig, SerializationSettings

    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    custom = squares_on_ray.get_custom(settings)
    worker = custom["rayCluster"]["workerGroupSpec"][0]
    assert worker["groupName"] == "pi" and worker["maxReplicas"] == 2
    assert json.loads(worker["rayStartParams"]["resources"].strip("'")) == {"pi": 2}
    assert worker["rayStartParams"]["object-store-memory"] == str(2**29)
    assert custom["shutdownAfterJobFinishes"] is True


def test_workflow_with_a_ray_task_runs_locally_end_to_end(ray_session: object) -> None:
    # flytekit's local execution joins the running Ray (ignore_reinit_error) instead of starting one.
    assert ray_smoke(n=10) == sum(i * i for i in range(10)) + 1
