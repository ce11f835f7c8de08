"""What every pipeline's Flyte tasks share: resources, the RayJob shape, where state lives, model
objects in the store, and which MLflow to register in.

The RayJob shape comes from the stack's Ray pools: the registration Job's plan carries it under
`rayJob` (`infra.workloads.ray_job_shape`) and `workloads.register` points `NAOMI_REGISTRATION_PLAN`
at the plan before the workflow modules are imported, so each Ray task is registered with one worker
group per pool. Local runs (no plan) use `DEFAULT_RAY_JOB`. What Flyte's Ray plugin and KubeRay make
of it, read at their pinned versions:
- flyteplugins v1.16.8 `go/tasks/plugins/k8s/ray/ray.go` builds each worker pod from the task's own
  pod spec (the naomi-workloads image, multi-arch) with the group's pod template merged over it,
  and passes the group's `rayStartParams` to KubeRay unchanged; flyteidl's WorkerGroupSpec has no
  group-level `resources`, so the pool's custom resource must travel in `rayStartParams`;
- kuberay v1.7.0 `ray-operator/controllers/ray/common/pod.go` (convertParamMap) pastes each param
  as ` --<key>=<value> ` into the `ray start` line it runs under `bash -c`: the JSON of `resources`
  is single-quoted, exactly as KubeRay quotes it itself (updateRayStartParamsResources);
- flytekitplugins-ray 1.16.31 (`task.py`) ignores a worker's pod template when requests/limits are
  given separately, so resources go into the pod template next to the node selector;
- autoscaling stays off: Flyte's autoscaler container carries no securityContext, which the
  workloads namespace's `restricted` Pod Security level rejects.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from flytekit import PodTemplate, Resources
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

from workloads.common.registry import use_local_mlflow
from workloads.common.storage import Store, checkpoint_location, store_from_environment

TASK_REQUESTS = Resources(cpu="500m", mem="1Gi")
PLAN_ENV = "NAOMI_REGISTRATION_PLAN"
ARCH_LABEL = "kubernetes.io/arch"
# The shape of a RayJob when no plan says otherwise (local runs): as the stack renders it.
DEFAULT_RAY_JOB: dict[str, Any] = {
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


def ray_job_shape() -> dict[str, Any]:
    """The plan's `rayJob` when `NAOMI_REGISTRATION_PLAN` names a plan, else the default."""
    path = os.environ.get(PLAN_ENV)
    if not path:
        return DEFAULT_RAY_JOB
    shape = json.loads(Path(path).read_text(encoding="utf-8")).get("rayJob")
    return shape if shape else DEFAULT_RAY_JOB


def whole_cpus(quantity: str) -> int:
    """The CPUs a pool's custom resource counts: the pool's CPU quantity, at least 1 (as infra.ray)."""
    cores = int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    return max(int(cores), 1)


def quoted_resources(resources: dict[str, int]) -> str:
    """`rayStartParams.resources` as KubeRay needs it on its `bash -c` line: single-quoted JSON."""
    return "'" + json.dumps(resources, separators=(",", ":"), sort_keys=True) + "'"


def _pod_template(container: str, group: dict[str, Any], arch: str | None) -> PodTemplate:
    from kubernetes.client import V1Container, V1PodSpec, V1ResourceRequirements

    resources = V1ResourceRequirements(
        requests={"cpu": group["cpu"], "memory": group["memory"]},
        limits={"cpu": group["cpuLimit"], "memory": group["memoryLimit"]},
    )
    spec = V1PodSpec(
        containers=[V1Container(name=container, resources=resources)],
        node_selector={ARCH_LABEL: arch} if arch else None,
    )
    return PodTemplate(pod_spec=spec, primary_container_name=container)


def ray_job_config(shape: dict[str, Any] | None = None) -> RayJobConfig:
    """flytekitplugins-ray's RayJobConfig for `shape` (default: `ray_job_shape()`): a CPU-less head,
    one worker group per pool on its architecture with its resources and custom resource."""
    shape = shape if shape is not None else ray_job_shape()
    workers = [
        WorkerNodeConfig(
            group_name=group["group"],
            replicas=int(group["replicas"]),
            min_replicas=int(group["min"]),
            max_replicas=int(group["max"]),
            ray_start_params={"resources": quoted_resources({group["group"]: whole_cpus(group["cpu"])})},
            pod_template=_pod_template("ray-worker", group, group["arch"]),
        )
        for group in shape["workers"]
    ]
    return RayJobConfig(
        head_node_config=HeadNodeConfig(
            ray_start_params=dict(shape["headStartParams"]),
            pod_template=_pod_template("ray-head", shape["head"], None),
        ),
        worker_node_config=workers,
        enable_autoscaling=bool(shape["autoscaling"]),
        shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=int(shape["ttlSecondsAfterFinished"]),
    )


def state_dir() -> Path:
    """Local state when not on the cluster: `NAOMI_STATE`, default `.naomi/state`."""
    return Path(os.environ.get("NAOMI_STATE", ".naomi/state"))


def task_store() -> Store:
    """The task's object store: `NAOMI_STORE` (s3://bucket on the cluster), else the local state folder."""
    return store_from_environment(state_dir() / "objects")


def task_checkpoints(store: Store) -> tuple[str, Any]:
    """Ray Train's storage for `store` (the bucket on S3, else the local state folder)."""
    return checkpoint_location(store, state_dir() / "checkpoints")


def put_trained(store: Store, prefix: str, model: Any, config: dict[str, Any], history: list[Any]) -> str:
    """`<prefix>/latest.pt` (the model) and `<prefix>/latest-history.json` (config, per-epoch
    metrics) for the evaluation and registration tasks; returns the model's key."""
    import torch

    buffer = io.BytesIO()
    torch.save(model, buffer)
    key = f"{prefix}/latest.pt"
    store.put(key, buffer.getvalue())
    store.put(f"{prefix}/latest-history.json", json.dumps({"config": config, "history": history}).encode())
    return key


def get_model(store: Store, key: str) -> Any:
    """A model saved by `put_trained`, in eval mode (pickled by our own tasks: trusted)."""
    import torch

    return torch.load(io.BytesIO(store.get(key)), weights_only=False).eval()


def use_task_mlflow(experiment: str) -> None:
    """MLflow from `MLFLOW_TRACKING_URI` (the platform sets it on the cluster), else local sqlite."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        use_local_mlflow(state_dir() / "mlflow", experiment)
