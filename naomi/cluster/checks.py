"""The cluster-model checks over one evaluated stack: admission, flows, placement, gateway routes.

`cluster_model(evaluation, rendered)` assembles every object that will exist (ours, the charts',
the operators'); `run_checks` judges them the way the consuming components will and returns one
list of problems per check, each naming namespace, object and the rule. The tests assert the lists
are empty for every example stack; `naomi check cluster --stack X` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from naomi.cluster import admission, operators, prometheus_operator
from naomi.cluster.flows import FlowReport, prove
from naomi.cluster.gateway import route_problems, traefik_settings
from naomi.cluster.model import ClusterModel, Expander, ModelObject, ModelPod
from naomi.cluster.placement import InventoryNode, placement_problems
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered

NETWORK_POLICIES = "naomi:platform:NetworkPolicies"


def expanders(objects: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Expander]:
    """The operators the platform runs, as functions from a custom resource to what they create:
    KubeRay 1.7.0 (`naomi.cluster.operators`) and prometheus-operator (its settings read from the
    chart-rendered operator Deployment, `naomi.cluster.prometheus_operator`)."""

    def kuberay(item: ModelObject) -> Sequence[Mapping[str, Any]]:
        return operators.expand(item.obj)

    found: dict[str, Expander] = {kind: kuberay for kind in ("RayCluster", "RayService", "RayJob")}
    found.update(prometheus_operator.operator_expanders(obj for _, obj in objects))
    return found


def cluster_model(rendered: Rendered) -> ClusterModel:
    objects = _all_objects(rendered)
    objects += flyte_executions(rendered, objects)
    return ClusterModel.from_objects(objects, expanders(objects))


def flyte_executions(
    rendered: Rendered, objects: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[tuple[str, Mapping[str, Any]]]:
    """What Flyte creates when a registered pipeline runs: a container task's pod and, for its
    Ray task, the RayJob (KubeRay then expands it), from the registration plan the stack renders
    and flyte-binary's plugin configuration (`naomi.cluster.operators` flyte_task_pod and
    flyte_ray_job, flyteplugins v1.16.8)."""
    releases = [r for r in rendered.helm if r.get("chart") == "flyte-binary"]
    plans = [
        (obj, json.loads(data))
        for _, obj in objects
        if obj.get("kind") == "ConfigMap"
        for key, data in ((obj.get("data") or {}).items())
        if key == "registration.json"
    ]
    if not releases or not plans:
        return []
    values = releases[0].get("values") or {}
    inline = ((values.get("configuration") or {}).get("inline")) or {}
    plugins = inline.get("plugins") or {}
    created: list[tuple[str, Mapping[str, Any]]] = []
    for config_map, plan in plans:
        namespace = str(config_map["metadata"]["namespace"])
        image = _registration_image(objects, namespace)
        origin = f"operator:flyte-binary {plan.get('project', 'naomi')}/{plan.get('domain', 'production')}"
        for pipeline in plan.get("pipelines") or []:
            created.append(
                (
                    origin,
                    operators.flyte_task_pod(
                        task_image=image,
                        k8s_plugin_config=plugins.get("k8s") or {},
                        namespace=namespace,
                        name=f"{pipeline}-task-00000",
                        platform_resources=inline.get("task_resources"),
                    ),
                )
            )
            shape = plan.get("rayJob")
            if shape:
                created.append(
                    (
                        origin,
                        operators.flyte_ray_job(
                            shape,
                            task_image=image,
                            plugin_config=plugins.get("ray") or {},
                            k8s_plugin_config=plugins.get("k8s") or {},
                            namespace=namespace,
                            name=f"{pipeline}-ray-00000",
                            platform_resources=inline.get("task_resources"),
                        ),
                    )
                )
    return created


def _registration_image(objects: Sequence[tuple[str, Mapping[str, Any]]], namespace: str) -> str:
    """The image Flyte runs the pipelines' tasks in: the one the registration Job registers with."""
    for _, obj in objects:
        if obj.get("kind") != "Job" or (obj.get("metadata") or {}).get("namespace") != namespace:
            continue
        for container in obj["spec"]["template"]["spec"].get("containers") or []:
            for env in container.get("env") or []:
                if env.get("name") == "NAOMI_WORKLOADS_IMAGE":
                    return str(env.get("value"))
    return "ghcr.io/naomi-mlops/naomi-workloads:0.1.0"


def _all_objects(rendered: Rendered) -> list[tuple[str, Mapping[str, Any]]]:
    every = getattr(rendered, "all_objects", None)
    if callable(every):
        return list(every())
    return [("pulumi", obj) for obj in rendered.kubernetes]


def declared_flows(evaluation: Evaluation) -> list[Mapping[str, Any]]:
    return [
        flow for outputs in evaluation.outputs_of(NETWORK_POLICIES) for flow in outputs.get("flows") or []
    ]


def inventory(evaluation: Evaluation) -> list[InventoryNode] | None:
    """The nodes with the labels they will carry (microk8s mode), or None for an existing cluster."""
    raw = evaluation.config.get("naomi:cluster")
    cluster = json.loads(raw) if raw else {}
    if cluster.get("mode") != "microk8s":
        return None
    nodes = []
    for node in cluster.get("nodes") or []:
        labels = {
            "kubernetes.io/arch": str(node["arch"]),  # set by the kubelet
            "kubernetes.io/hostname": str(node["name"]),
            "naomi.io/board": str(node.get("board") or "generic"),
            "naomi.io/role": str(node.get("role") or "worker"),
            **{str(k): str(v) for k, v in (node.get("labels") or {}).items()},
        }
        nodes.append(InventoryNode(str(node["name"]), labels))
    return nodes


@dataclass
class CheckReport:
    admission: list[str] = field(default_factory=list)
    flows: list[str] = field(default_factory=list)
    placement: list[str] = field(default_factory=list)
    gateway: list[str] = field(default_factory=list)
    flow_report: FlowReport | None = None

    @property
    def problems(self) -> list[str]:
        return [
            *(f"admission: {p}" for p in self.admission),
            *(f"flows: {p}" for p in self.flows),
            *(f"placement: {p}" for p in self.placement),
            *(f"gateway: {p}" for p in self.gateway),
        ]


def admission_problems(model: ClusterModel) -> list[str]:
    """Pod Security admission of every pod against its namespace's `enforce` level."""
    problems = []
    for pod in model.pods:
        level, version = admission.enforced_level(model.namespace_labels(pod.namespace))
        violations = admission.evaluate_pod(pod.metadata, pod.spec, level, version)
        for violation in violations:
            containers = f" containers {', '.join(violation.containers)}" if violation.containers else ""
            problems.append(
                f"{pod.owner} ({pod.origin}){containers}: rejected by {level} ({violation.check}): {violation.message}"
            )
    return problems


def _placement_inputs(model: ClusterModel) -> list[tuple[str, Mapping[str, Any], bool]]:
    claims = {
        item.describe(): bool((item.obj.get("spec") or {}).get("volumeClaimTemplates"))
        for item in model.objects
        if item.kind == "StatefulSet"
    }
    pods: list[ModelPod] = model.pods
    return [(pod.owner, pod.spec, claims.get(pod.owner, False)) for pod in pods]


def run_checks(evaluation: Evaluation, rendered: Rendered) -> CheckReport:
    model = cluster_model(rendered)
    report = CheckReport()
    report.admission = admission_problems(model)
    report.flow_report = prove(model, declared_flows(evaluation))
    report.flows = report.flow_report.failures
    report.placement = placement_problems(_placement_inputs(model), inventory(evaluation))
    settings = traefik_settings(item.obj for item in model.objects)
    if settings is not None:
        report.gateway = route_problems([item.obj for item in model.objects], settings)
    return report
