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
    return ClusterModel.from_objects(objects, expanders(objects))


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
