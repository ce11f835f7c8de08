"""The platform as a real cluster sees it: every pod admitted, every flow proven, data off the Pis,
every gateway route served — over everything that will exist (ours, the charts', the operators').
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from naomi.cluster import admission
from naomi.cluster.checks import (
    admission_problems,
    cluster_model,
    declared_flows,
    inventory,
    run_checks,
)
from naomi.cluster.flows import prove
from naomi.cluster.model import ClusterModel
from naomi.cluster.placement import placement_problems
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS


@pytest.fixture(scope="module")
def reports(evaluations: dict[str, Evaluation], renders: dict[str, Rendered]) -> dict[str, Any]:
    return {stack: run_checks(evaluations[stack], renders[stack]) for stack in EXAMPLE_STACKS}


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_pod_passes_its_namespaces_pod_security_level(reports: dict[str, Any], stack: str) -> None:
    assert reports[stack].admission == []


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_declared_flow_is_allowed_and_nothing_undeclared_is_open(
    reports: dict[str, Any], stack: str
) -> None:
    report = reports[stack].flow_report
    assert report is not None and len(report.results) > 30, "no flows proven: the check would be vacuous"
    assert all(result.connections > 0 for result in report.results)
    assert reports[stack].flows == []


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_traefik_serves_every_route_it_is_given(reports: dict[str, Any], stack: str) -> None:
    assert reports[stack].gateway == []


def test_the_model_holds_chart_and_operator_pods(renders: dict[str, Rendered]) -> None:
    origins = {pod.origin.split(":")[0] for pod in cluster_model(renders["edge-lab"]).pods}
    assert origins >= {"pulumi", "helm", "operator"}


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_stateful_pods_keep_their_data_off_the_raspberry_pis(reports: dict[str, Any], stack: str) -> None:
    assert reports[stack].placement == []


def _with_pod_change(rendered: Rendered, kind: str, name: str, change: Any) -> ClusterModel:
    objects = []
    for origin, obj in [
        (o.origin, o.obj) for o in cluster_model(rendered).objects if not o.origin.startswith("operator:")
    ]:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            obj = copy.deepcopy(dict(obj))
            change(obj)
        objects.append((origin, obj))
    return ClusterModel.from_objects(objects, cluster_model(rendered).expanders)


def test_host_network_in_a_restricted_namespace_is_rejected(renders: dict[str, Rendered]) -> None:
    def host_network(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["hostNetwork"] = True

    model = _with_pod_change(renders["edge-lab"], "Deployment", "mlflow", host_network)
    problems = admission_problems(model)
    # The API server defaults hostPort to containerPort in a hostNetwork pod, hence the second rule.
    assert problems == [
        "Deployment naomi-platform/mlflow (pulumi): rejected by restricted (hostNamespaces): "
        "host namespaces (hostNetwork=true)",
        "Deployment naomi-platform/mlflow (pulumi) containers mlflow, metrics: rejected by restricted "
        '(hostPorts): hostPort (containers "mlflow", "metrics" use hostPorts 5000, 9102)',
    ]
    assert admission.enforced_level(model.namespace_labels("naomi-platform"))[0] == "restricted"


def test_a_stateful_pod_without_placement_may_land_on_a_pi(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    def unpin(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"].pop("nodeSelector", None)

    model = _with_pod_change(renders["edge-lab"], "StatefulSet", "postgres", unpin)
    claims = [
        (pod.owner, pod.spec, pod.owner.startswith("StatefulSet"))
        for pod in model.pods
        if "postgres" in pod.owner
    ]
    problems = placement_problems(claims, inventory(evaluations["edge-lab"]))
    assert (
        "StatefulSet naomi-platform/postgres: keeps data on a volume and may land on Raspberry Pi pi-1 (its SD card); label the node naomi.io/storage=true to allow it"
        in problems
    )


def test_policies_derived_without_one_declared_flow_fail_its_proof(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    """Drop the gateway -> MLflow flow from the policies' source list: the proof names it."""
    from infra.contract import Flow, Pods, Port
    from infra.network import network_policies

    def endpoint(raw: dict[str, Any]) -> Any:
        from infra.contract import Addresses

        if "pods" in raw:
            return Pods(raw["pods"]["namespace"], raw["pods"]["labels"], raw["pods"]["name"])
        a = raw["addresses"]
        return Addresses(a["name"], tuple(a["cidrs"]), tuple(a["excluded"]), a["nodeLocal"])

    declared = declared_flows(evaluations["edge-lab"])
    flows = [
        Flow(
            endpoint(f["source"]),
            endpoint(f["destination"]),
            tuple(Port(p["port"], p["protocol"]) for p in f["ports"]),
            f["why"],
        )
        for f in declared
        if f["why"] != "gateway route /mlflow"
    ]
    assert len(flows) == len(declared) - 1
    namespaces = sorted(
        {n for n in (o.namespace for o in cluster_model(renders["edge-lab"]).of_kind("NetworkPolicy"))}
    )
    model = cluster_model(renders["edge-lab"])
    objects = [
        (o.origin, o.obj)
        for o in model.objects
        if o.kind != "NetworkPolicy" and not o.origin.startswith("operator:")
    ]
    objects += [("pulumi", policy) for policy in network_policies(flows, namespaces)]
    report = prove(ClusterModel.from_objects(objects, model.expanders), declared)
    failed = [r for r in report.results if not r.allowed and r.flow.why == "gateway route /mlflow"]
    assert failed, report.failures
    assert (
        failed[0]
        .problems[0]
        .startswith(
            "DENIED naomi-gateway/Deployment naomi-gateway/traefik -> naomi-platform/Deployment naomi-platform/mlflow"
        )
    ), failed[0].problems


def test_kuberays_own_calls_to_the_heads_are_derived_from_the_model(renders: dict[str, Rendered]) -> None:
    """What the operator does, whatever our components declare: the dashboard of every head, and the
    Serve proxy of a RayService's head (its ray.io/serve label), unless the RayService excludes
    its head from the serve Service."""
    from naomi.cluster.flows import kuberay_flows

    model = cluster_model(renders["edge-lab"])
    ports = {flow.destination.describe(): flow.ports for flow in kuberay_flows(model)}
    assert ports["naomi-serving/Pod naomi-serving/qoe-00000-head-00000"] == ((8265, "TCP"), (8000, "TCP"))
    assert ports["naomi-ray/Pod naomi-ray/ray-head-00000"] == ((8265, "TCP"),)
    objects = [
        (o.origin, copy.deepcopy(o.obj)) for o in model.objects if not o.origin.startswith("operator:")
    ]
    for _, obj in objects:
        if obj["kind"] == "RayService":
            obj["spec"]["excludeHeadPodFromServeSvc"] = True
    excluded = ClusterModel.from_objects(objects, model.expanders)
    ports = {flow.destination.describe(): flow.ports for flow in kuberay_flows(excluded)}
    assert ports["naomi-serving/Pod naomi-serving/qoe-00000-head-00000"] == ((8265, "TCP"),)
