"""`naomi verify`: what runs without a cluster. The route check against the real Traefik serving the
edge-lab gateway, readiness over canned API objects, the probe pods (admitted at restricted, their
script under real BusyBox where it is installed), the report, and the CLI's refusals."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from naomi import verify
from naomi.cluster import admission, netpol
from naomi.cluster.checks import cluster_model
from naomi.cluster.model import SYSTEM_PODS
from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from naomi.verify import HttpResponse, Probe, ProbeTarget, Result
from tests.test_gateway_traefik import LocalGateway, gateway_objects, local_gateway

STACK = "edge-lab"


@pytest.fixture(scope="module")
def objects(renders: dict[str, Rendered]) -> list[dict[str, Any]]:
    return gateway_objects(renders[STACK])


@pytest.fixture(scope="module")
def expected(evaluations: dict[str, Evaluation], renders: dict[str, Rendered]) -> verify.Expectations:
    return verify.expectations(evaluations[STACK], renders[STACK])


@pytest.fixture(scope="module")
def gateway(
    objects: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    with local_gateway(objects, tmp_path_factory.mktemp("traefik")) as running:
        yield running


# --- the route check on the real Traefik ---------------------------------------------------------


def test_the_route_check_passes_on_the_rendered_gateway(gateway: LocalGateway) -> None:
    results = verify.check_routes(gateway.client, gateway.traefik.base_url, gateway.routes, gateway.passwords)
    assert [r for r in results if r.status != "ok"] == []
    assert len(results) == sum(len(route.prefixes) for route in gateway.routes) == 13
    details = {r.subject: r.detail for r in results}
    assert (
        details["/ray (ray-dashboard -> naomi-ray/ray-head-svc:8265)"]
        == "401 without credentials, HTTP 200 as admin"
    )
    assert (
        details["/mlflow (mlflow -> naomi-platform/mlflow:5000)"]
        == "the service answered HTTP 200 (its own login)"
    )


def test_the_route_check_fails_with_a_wrong_password(gateway: LocalGateway) -> None:
    routes = [route for route in gateway.routes if route.name in ("prometheus", "mlflow")]
    results = verify.check_routes(
        gateway.client, gateway.traefik.base_url, routes, {"admin": "not-the-password"}
    )
    assert [(r.subject.split()[0], r.status, r.detail) for r in results] == [
        ("/mlflow", "ok", "the service answered HTTP 200 (its own login)"),
        ("/prometheus", "fail", "with admin's password: HTTP 401"),
    ]


def test_the_route_check_catches_a_route_that_lost_its_auth(
    objects: list[dict[str, Any]], expected: verify.Expectations, tmp_path: Path
) -> None:
    # The cluster runs a prometheus route without the basic-auth middleware; the render says auth.
    changed = json.loads(json.dumps(objects))
    for obj in changed:
        if obj.get("kind") == "IngressRoute" and obj["metadata"]["name"] == "prometheus":
            rule = obj["spec"]["routes"][0]
            rule["middlewares"] = [m for m in rule["middlewares"] if m["name"] != "basic-auth"]
    routes = [route for route in expected.routes if route.name in ("alertmanager", "prometheus")]
    with local_gateway(changed, tmp_path, routes=routes) as running:
        results = verify.check_routes(
            running.client, running.traefik.base_url, running.routes, running.passwords
        )
    assert results[0].status == "ok"  # alertmanager, untouched
    failed = [r for r in results if r.status == "fail"]
    assert [(r.subject, r.detail) for r in failed] == [
        (
            "/prometheus (prometheus -> naomi-monitoring/monitoring-kube-prometheus-prometheus:9090)",
            'without credentials: HTTP 200 (expected 401 Basic realm="naomi"); '
            "with a wrong password: HTTP 200 (expected 401)",
        )
    ]


def _ready_workloads(expected: verify.Expectations) -> dict[str, list[dict[str, Any]]]:
    """The render's workloads and one per Helm release, each as the API shows it when ready."""
    ready = {
        "Deployment": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
        "StatefulSet": {"observedGeneration": 1, "readyReplicas": 1, "availableReplicas": 1},
        "RayCluster": {
            "conditions": [{"type": t, "status": "True"} for t in ("HeadPodReady", "RayClusterProvisioned")]
        },
        "RayService": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints"}]
        },
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for kind, namespace, name in expected.workloads:
        metadata = {"name": name, "namespace": namespace, "generation": 1}
        found.setdefault(kind, []).append(
            {"metadata": metadata, "spec": {"replicas": 1}, "status": ready[kind]}
        )
    for namespace, release in expected.releases:
        annotations = {verify.HELM_RELEASE_ANNOTATION: release}
        metadata = {"name": release, "namespace": namespace, "generation": 1, "annotations": annotations}
        found["Deployment"].append(
            {"metadata": metadata, "spec": {"replicas": 1}, "status": ready["Deployment"]}
        )
    return found


def test_a_whole_run_against_the_real_traefik_and_a_canned_cluster(
    objects: list[dict[str, Any]], expected: verify.Expectations, renders: dict[str, Rendered], tmp_path: Path
) -> None:
    """`verify.verify` as the CLI runs it: the gateway is the real Traefik on the rendered routes
    with the real QoE serving app behind /serving/qoe; the cluster is canned, every workload ready,
    every probe connecting but the undeclared one, the operator's webhooks answering."""
    pytest.importorskip("fastapi")
    np = pytest.importorskip("numpy")
    from workloads.common.serving import serve_locally
    from workloads.qoe.serving import ModelInfo, create_app

    route = expected.smoke_route()
    assert route is not None and route.prefixes == ("/serving/qoe",)
    pods = _live_pods(renders[STACK])
    cluster = WebhookCluster(
        True,
        {**_ready_workloads(expected), "Pod": pods},
        _keeps_the_policies_promises(pods, expected),
    )
    info = ModelInfo(name="qoe", version="7", window=4, features=3)
    server, port = serve_locally(create_app(lambda windows: np.asarray(windows).sum(axis=(1, 2)), info))
    try:
        with local_gateway(objects, tmp_path, servers={route.service: f"http://127.0.0.1:{port}"}) as running:
            results = verify.verify(
                expected, cluster, running.client, running.traefik.base_url, running.passwords
            )
    finally:
        server.should_exit = True
    assert [r for r in results if r.status == "fail"] == []
    assert {r.check for r in results} == set(verify.SECTIONS)
    assert results[-1] == Result("smoke", "/serving/qoe/predict", "ok", "model qoe version 7: [0.0]")
    report = verify.report_markdown(STACK, results)
    assert report.count("\n## ") == len(verify.SECTIONS)
    assert (
        "| ok | prometheus-operator webhooks (dry-run PrometheusRule in naomi-workloads): validate |"
        in report
    )


# --- readiness over canned API objects -----------------------------------------------------------


def _deployment(wanted: int, generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": wanted},
        "status": {"observedGeneration": 2, **status},
    }


@pytest.mark.parametrize(
    ("obj", "verdict"),
    [
        (_deployment(2, updatedReplicas=2, replicas=2, availableReplicas=2), (True, "2/2 available")),
        (
            _deployment(2, generation=3, updatedReplicas=2, availableReplicas=2),
            (False, "waiting for the spec update to be observed"),
        ),
        (
            _deployment(2, updatedReplicas=1, replicas=2, availableReplicas=2),
            (False, "1 of 2 new replicas updated"),
        ),
        (
            _deployment(2, updatedReplicas=2, replicas=3, availableReplicas=2),
            (False, "1 old replicas pending termination"),
        ),
        (
            _deployment(2, updatedReplicas=2, replicas=2, availableReplicas=1),
            (False, "1 of 2 updated replicas available"),
        ),
        (
            _deployment(1, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]),
            (False, "exceeded its progress deadline"),
        ),
    ],
)
def test_deployments_are_judged_as_kubectl_rollout_status_does(
    obj: dict[str, Any], verdict: tuple[bool, str]
) -> None:
    assert verify.deployment_ready(obj) == verdict


def test_statefulsets_need_ready_available_and_current_replicas() -> None:
    base = {"metadata": {"generation": 1}, "spec": {"replicas": 1}}
    done = {
        "observedGeneration": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "currentRevision": "a",
        "updateRevision": "a",
    }
    assert verify.statefulset_ready({**base, "status": done}) == (True, "1/1 available")
    assert verify.statefulset_ready({**base, "status": {**done, "readyReplicas": 0}}) == (False, "0/1 ready")
    assert verify.statefulset_ready({**base, "status": {**done, "updateRevision": "b"}}) == (
        False,
        "rolling update to b not complete",
    )
    assert verify.statefulset_ready({**base, "status": {}})[1] == "waiting for the spec update to be observed"


def test_daemonsets_need_every_scheduled_pod_updated_and_available() -> None:
    base = {"metadata": {"generation": 1}}
    status = {
        "observedGeneration": 1,
        "desiredNumberScheduled": 4,
        "updatedNumberScheduled": 4,
        "numberAvailable": 3,
    }
    assert verify.daemonset_ready({**base, "status": status}) == (False, "3 of 4 pods available")
    assert verify.daemonset_ready({**base, "status": {**status, "numberAvailable": 4}}) == (
        True,
        "4/4 available",
    )


def test_ray_clusters_and_services_are_judged_by_their_kuberay_conditions() -> None:
    def conditions(**states: str) -> list[dict[str, str]]:
        return [{"type": kind, "status": status, "reason": "R"} for kind, status in states.items()]

    workers = {"readyWorkerReplicas": 1, "desiredWorkerReplicas": 2}
    ready = {
        "status": {**workers, "conditions": conditions(HeadPodReady="True", RayClusterProvisioned="True")}
    }
    assert verify.raycluster_ready(ready) == (True, "head ready; 1/2 workers ready")
    head_down = {
        "status": {**workers, "conditions": conditions(HeadPodReady="False", RayClusterProvisioned="True")}
    }
    assert verify.raycluster_ready(head_down) == (False, "head not ready (R); 1/2 workers ready")
    assert verify.raycluster_ready({"status": {"state": "ready"}}) == (True, "state ready; 0/0 workers ready")
    assert verify.rayservice_ready({"status": {"conditions": conditions(Ready="True")}}) == (
        True,
        "ready (R)",
    )
    assert verify.rayservice_ready({"status": {"conditions": conditions(Ready="False")}})[0] is False
    assert verify.rayservice_ready({"status": {}}) == (False, "no Ready condition yet")


def test_pods_say_why_they_are_not_ready() -> None:
    crashing = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "mlflow", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        }
    }
    assert verify.pod_state(crashing) == (False, "Running: container mlflow CrashLoopBackOff")
    pending = {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/4 nodes are available"}],
        }
    }
    assert verify.pod_state(pending) == (False, "Pending: not scheduled (0/4 nodes are available)")
    assert verify.pod_state({"status": {"phase": "Succeeded"}}) == (True, "succeeded")
    assert verify.job_state(
        {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    ) == (
        "fail",
        "failed: BackoffLimitExceeded",
    )


class FakeCluster:
    """Canned API objects; probe pods 'connect' where `connects(namespace, labels, ip, port)` says."""

    def __init__(
        self, objects: Mapping[str, list[dict[str, Any]]], connects: Any = None, log: str | None = None
    ) -> None:
        self.objects = objects
        self.connects = connects or (lambda namespace, labels, ip, port: True)
        self.log = log
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects.get(kind, [])
            if obj["metadata"].get("namespace") == namespace
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in (labels or {}).items())
        ]

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        self.created.append(json.loads(json.dumps(manifest)))

    def wait_for_pod(self, namespace: str, name: str, timeout_seconds: float) -> dict[str, Any]:
        return {"status": {"phase": "Succeeded"}}

    def pod_log(self, namespace: str, name: str) -> str:
        if self.log is not None:
            return self.log
        pod = next(p for p in self.created if p["metadata"]["name"] == name)
        script = pod["spec"]["containers"][0]["command"][2]
        labels = pod["metadata"]["labels"]
        return "".join(
            f"naomi-probe {ip} {port} {'open' if self.connects(namespace, labels, ip, int(port)) else 'closed'}\n"
            for ip, port in re.findall(r"nc -z -w 3 (\S+) (\d+);", script)
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        self.deleted.append((namespace, name))

    def dry_run_create(self, kind: str, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("no dry runs expected")


def _meta(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def test_the_workload_check_reports_every_workload_missing_objects_and_helm_releases() -> None:
    ready = {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 1}
    cluster = FakeCluster(
        {
            "Deployment": [
                {"metadata": _meta("mlflow", "p", generation=1), "spec": {"replicas": 1}, "status": ready},
                {
                    "metadata": _meta(
                        "traefik", "g", generation=1, annotations={verify.HELM_RELEASE_ANNOTATION: "traefik"}
                    ),
                    "spec": {"replicas": 1},
                    "status": {**ready, "availableReplicas": 0},
                },
            ],
            "Pod": [
                {
                    "metadata": _meta("mlflow-1", "p"),
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                },
                {"metadata": _meta("traefik-1", "g"), "status": {"phase": "Pending"}},
                {
                    "metadata": _meta("seed-1", "p", ownerReferences=[{"kind": "Job"}]),
                    "status": {"phase": "Failed"},
                },
            ],
        }
    )
    results = verify.check_workloads(
        cluster,
        ["g", "p"],
        [("Deployment", "p", "mlflow"), ("StatefulSet", "p", "postgres")],
        [("g", "traefik"), ("p", "flyte-binary")],
    )
    assert [(r.subject, r.status, r.detail) for r in results] == [
        ("Deployment g/traefik", "fail", "0 of 1 updated replicas available (Helm release traefik)"),
        ("Pod g/traefik-1", "fail", "Pending: not ready"),
        ("pods in g", "ok", "0 ready or finished"),
        ("Deployment p/mlflow", "ok", "1/1 available"),
        ("pods in p", "ok", "1 ready or finished"),
        ("StatefulSet p/postgres", "fail", "in the render, not on the cluster"),
        ("Helm release g/traefik", "fail", "0/1 workloads ready"),
        ("Helm release p/flyte-binary", "fail", "no workload of this release found"),
    ]


# --- probe pods ----------------------------------------------------------------------------------


def _probe() -> Probe:
    return Probe(
        "naomi-gateway",
        {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-naomi-gateway"},
        [ProbeTarget("gateway -> mlflow", "10.1.2.3", 5000)],
    )


def test_the_probe_pod_is_admitted_at_restricted() -> None:
    pod = verify.probe_pod(_probe())
    assert admission.evaluate_manifest(pod, "restricted") == []
    assert admission.evaluate_manifest(pod, "restricted", "1.25") == []


def test_the_probe_pod_carries_the_source_labels_and_is_never_ready() -> None:
    pod = verify.probe_pod(_probe())
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/name": "traefik",
        "app.kubernetes.io/instance": "traefik-naomi-gateway",
        verify.PROBE_LABEL: "true",
    }
    assert pod["spec"]["readinessGates"] == [{"conditionType": "naomi.io/never-ready"}]
    assert pod["spec"]["containers"][0]["image"] == "docker.io/library/busybox:1.37.0"
    assert pod["spec"]["activeDeadlineSeconds"] == 64
    assert pod["spec"]["containers"][0]["command"][:2] == ["sh", "-c"]


def test_the_probe_script_takes_only_addresses_and_ports() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        verify.probe_script([ProbeTarget("x", "10.0.0.1; rm -rf /", 80)])
    assert verify.probe_script([ProbeTarget("x", "fd00::1", 5432)]).splitlines()[1] == (
        'if nc -z -w 3 fd00::1 5432; then r=open; else r=closed; fi; echo "naomi-probe fd00::1 5432 $r"'
    )


def test_the_probe_script_under_busybox_without_nc_z_says_so(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (apt-get install busybox)")
    for applet in ("sh", "nc", "grep"):
        (tmp_path / applet).symlink_to(busybox)
    if (
        "invalid option"
        not in subprocess.run(
            [str(tmp_path / "nc"), "-z", "127.0.0.1", "1"], capture_output=True, text=True, check=False
        ).stderr
    ):
        pytest.skip("this busybox has nc -z (the official image's build): the error path cannot be shown")
    script = verify.probe_script([ProbeTarget("x", "127.0.0.1", 1)])
    done = subprocess.run(
        [str(tmp_path / "sh"), "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},
        check=False,
    )
    assert (done.returncode, verify.parse_probe_log(done.stdout)) == (
        3,
        verify.ProbeLog({}, "this nc has no -z"),
    )


def _live_pods(rendered: Rendered) -> list[dict[str, Any]]:
    """Every pod of the model as the API would list it between pipeline runs: running, an address
    each, its ports (the pods Flyte starts per execution are not there)."""
    pods = []
    model_pods = [p for p in cluster_model(rendered).pods if not p.origin.startswith("operator:flyte")]
    model_pods = [p for p in model_pods if "RayJob" not in p.origin]
    for index, pod in enumerate([*model_pods, *SYSTEM_PODS]):
        name = re.sub(r"[^a-z0-9-]", "-", pod.owner.split(" ", 1)[1].split("/", 1)[1].lower())
        pods.append(
            {
                "metadata": {"name": f"{name}-0", "namespace": pod.namespace, "labels": dict(pod.labels)},
                "spec": {"containers": list(pod.spec.get("containers") or [])},
                "status": {
                    "phase": "Running",
                    "podIP": f"10.1.{index // 250}.{index % 250 + 1}",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    return pods


def test_every_declared_cross_namespace_flow_is_planned_or_says_why_not(
    expected: verify.Expectations, renders: dict[str, Rendered]
) -> None:
    cluster = FakeCluster({"Pod": _live_pods(renders[STACK])})
    probes, results = verify.plan_probes(cluster, expected.flows, expected.policies, expected.namespaces)
    planned = [target for probe in probes for target in probe.targets if target.expect_open]
    crossing = [
        f
        for f in expected.flows
        if "pods" in f["source"]
        and "pods" in f["destination"]
        and f["source"]["pods"]["namespace"] != f["destination"]["pods"]["namespace"]
    ]
    # Every port of every crossing flow is planned, or a row says why not.
    for flow in crossing:
        source, destination = flow["source"]["pods"], flow["destination"]["pods"]
        subject = (
            f"{verify.PodSide(source['namespace'], source['labels']).describe()} -> "
            f"{verify.PodSide(destination['namespace'], destination['labels']).describe()}"
        )
        for port in flow["ports"]:
            label = f"{subject} {port['port']}/{port['protocol']}"
            assert any(t.flow.startswith(f"{label}: ") for t in planned) or any(
                r.subject in (subject, label) for r in results
            ), label
    # Only the Ray heads Flyte starts per task have no pod to try between runs.
    assert [(r.subject, r.detail) for r in results if r.status == "warn"] == [
        (
            "naomi-ray [app.kubernetes.io/instance=kuberay-operator,app.kubernetes.io/name=kuberay-operator]"
            " -> naomi-workloads [ray.io/node-type=head]",
            "no running destination pod to try (none selected right now)",
        )
    ]
    assert {r.detail for r in results if r.status == "skip"} == {
        "only TCP is tried (a UDP send proves nothing)"
    }
    # One probe per source group, labelled with its selector.
    traefik = next(p for p in probes if p.namespace == "naomi-gateway" and p.labels)
    assert traefik.labels == {
        "app.kubernetes.io/instance": "traefik-naomi-gateway",
        "app.kubernetes.io/name": "traefik",
    }
    assert {t.flow.split(":")[0] for t in traefik.targets} >= {
        "naomi-gateway [app.kubernetes.io/instance=traefik-naomi-gateway,app.kubernetes.io/name=traefik] -> "
        "naomi-platform [app.kubernetes.io/instance=mlflow,app.kubernetes.io/name=mlflow] http/TCP"
    }
    # The undeclared connection: a probe without labels, to a destination the policies close to it.
    undeclared = [t for p in probes for t in p.targets if not t.expect_open]
    assert len(undeclared) == 1
    probe = next(p for p in probes if undeclared[0] in p.targets)
    assert probe.labels == {}
    destination = next(
        pod for pod in _live_pods(renders[STACK]) if pod["status"]["podIP"] == undeclared[0].ip
    )
    decision = expected.policies.decide(
        netpol.Pod(probe.namespace, "probe", {verify.PROBE_LABEL: "true"}),
        verify._as_netpol_pod(destination),
        undeclared[0].port,
    )
    assert not decision.allowed, decision.explain()


def _keeps_the_policies_promises(pods: list[dict[str, Any]], expected: verify.Expectations) -> Any:
    """A cluster's connect verdict that agrees with the render: everything declared connects, the
    one undeclared connection `plan_probes` picks does not."""
    probes, _ = verify.plan_probes(
        FakeCluster({"Pod": pods}), expected.flows, expected.policies, expected.namespaces
    )
    ((namespace, target),) = [(p.namespace, t) for p in probes for t in p.targets if not t.expect_open]

    def connects(where: str, labels: Mapping[str, str], ip: str, port: int) -> bool:
        return (where, set(labels), ip, port) != (namespace, {verify.PROBE_LABEL}, target.ip, target.port)

    return connects


def test_probe_results_say_which_way_the_cluster_disagrees(
    expected: verify.Expectations, renders: dict[str, Rendered]
) -> None:
    pods = {"Pod": _live_pods(renders[STACK])}
    honest = FakeCluster(pods, _keeps_the_policies_promises(pods["Pod"], expected))
    results = verify.check_flows(honest, expected.flows, expected.policies, expected.namespaces)
    assert [r for r in results if r.status == "fail"] == []
    targets = sum(
        len(re.findall("nc -z -w 3 ", p["spec"]["containers"][0]["command"][2])) for p in honest.created
    )
    assert sum(1 for r in results if r.status == "ok") == targets > 10
    assert sorted(honest.deleted) == sorted(
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in honest.created
    )
    # A cluster without NetworkPolicy enforcement (a CNI that ignores policies): everything opens.
    open_cluster = FakeCluster(pods)
    failed = [
        r
        for r in verify.check_flows(open_cluster, expected.flows, expected.policies, expected.namespaces)
        if r.status == "fail"
    ]
    assert len(failed) == 1
    assert failed[0].subject.startswith("undeclared: ")
    assert failed[0].detail.endswith("connected: the cluster allows what the rendered policies deny")


def test_a_probe_the_api_refuses_is_a_failed_row_and_is_still_deleted() -> None:
    class Refusing(FakeCluster):
        def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> None:
            raise verify.KubernetesError(403, 'pods "x" is forbidden: exceeded quota')

    cluster = Refusing({})
    results = verify.run_probes(cluster, [_probe()])
    name = _probe().name
    assert results == [
        Result(
            "flows",
            "gateway -> mlflow",
            "fail",
            f'probe pod naomi-gateway/{name}: HTTP 403: pods "x" is forbidden: exceeded quota',
        )
    ]
    assert cluster.deleted == [("naomi-gateway", name)]


def test_a_probe_image_without_nc_z_fails_every_target_with_the_reason() -> None:
    cluster = FakeCluster({}, log="naomi-probe-error: this nc has no -z\n")
    results = verify.run_probes(cluster, [_probe()])
    assert [r.detail for r in results] == [f"probe pod naomi-gateway/{_probe().name}: this nc has no -z"]


# --- admission webhooks --------------------------------------------------------------------------


class WebhookCluster(FakeCluster):
    """The API server's answers to dry-run PrometheusRules, with or without the operator's webhooks."""

    def __init__(
        self,
        reachable: bool | None,
        objects: Mapping[str, list[dict[str, Any]]] | None = None,
        connects: Any = None,
    ) -> None:
        super().__init__(objects or {}, connects)
        self.reachable = reachable

    def dry_run_create(self, kind: str, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.reachable is None:
            raise verify.KubernetesError(404, "the server could not find the requested resource")
        invalid = manifest["spec"]["groups"][0]["rules"][0]["expr"] == "rate("
        if self.reachable and invalid:
            raise verify.KubernetesError(
                400,
                'admission webhook "prometheusrulevalidate.monitoring.coreos.com" denied the request: '
                "Rules are not valid",
            )
        stored = json.loads(json.dumps(manifest))
        if self.reachable:
            stored["metadata"]["annotations"] = {verify.VALIDATED_ANNOTATION: "true"}
        return stored


def test_the_webhook_check_tells_a_reached_webhook_from_a_silent_one() -> None:
    assert [(r.status, r.detail) for r in verify.check_webhooks(WebhookCluster(True), "naomi-workloads")] == [
        ("ok", "the rule came back with prometheus-operator-validated"),
        ("ok", "an invalid rule was refused by the webhook"),
    ]
    assert [
        (r.status, r.detail) for r in verify.check_webhooks(WebhookCluster(False), "naomi-workloads")
    ] == [
        ("fail", "no prometheus-operator-validated annotation: the API server did not reach the webhook"),
        ("fail", "an invalid rule (expr 'rate(') was accepted: the API server did not reach the webhook"),
    ]
    assert [r.status for r in verify.check_webhooks(WebhookCluster(None), "naomi-workloads")] == ["skip"]


def test_only_the_webhook_can_refuse_the_invalid_rule(reference: Any) -> None:
    import promql_parser

    from naomi.validate import validate_object

    # Both pass the CRD schema (the API server's own check): the refusal can only be the webhook's.
    for expression in ("vector(1)", "rate("):
        validate_object(verify.webhook_rule("naomi-workloads", expression), "1.32", reference)
    promql_parser.parse("vector(1)")
    with pytest.raises(ValueError):
        promql_parser.parse("rate(")


# --- smoke request, report, stack outputs --------------------------------------------------------


def test_the_smoke_request_is_what_the_serving_apps_parse() -> None:
    pytest.importorskip("numpy")
    from workloads.common.serving import parse_tensor
    from workloads.qoe.serving import ModelInfo, parse_windows

    windows = verify.smoke_request({"input": {"window": 12, "features": 5}})
    assert parse_windows(windows, ModelInfo("qoe", "1", 12, 5)).shape == (1, 12, 5)
    inputs = verify.smoke_request({"input": {"shape": [-1, 8, 8], "columns": []}})
    assert parse_tensor(inputs, "inputs", (None, 8, 8), ("rows", "items", "items")).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="does not describe the input"):
        verify.smoke_request({"status": "ok"})


class CannedClient:
    def __init__(self, answers: Mapping[tuple[str, str], HttpResponse]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, bytes | None]] = []

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> HttpResponse:
        self.sent.append((method, url, body))
        return self.answers[(method, url)]


def test_a_serving_app_without_a_model_is_a_warning(expected: verify.Expectations) -> None:
    route = expected.smoke_route()
    assert route is not None
    client = CannedClient(
        {("GET", "https://gw/serving/qoe/healthz"): HttpResponse(503, {}, b'{"error": "no model yet"}')}
    )
    assert verify.check_smoke(client, "https://gw", route, {"admin": "pw"}) == Result(
        "smoke",
        "/serving/qoe/predict",
        "warn",
        'serving is up without a model yet: {"error": "no model yet"}',
    )


def test_the_report_is_markdown_with_one_table_per_check() -> None:
    results = [
        Result("workloads", "Deployment p/mlflow", "ok", "1/1 available"),
        Result("routes", "/ray (ray-dashboard -> x)", "fail", "without credentials: HTTP 200 | odd"),
        Result("smoke", "/serving/qoe/predict", "warn", "no model"),
    ]
    assert verify.report_markdown("edge-lab", results, ["gateway https://gw"]) == (
        "# naomi verify: edge-lab\n"
        "\n"
        "3 checks: 1 ok, 1 failed, 1 warnings, 0 skipped\n"
        "- gateway https://gw\n"
        "\n"
        "## Workloads\n"
        "\n"
        "| status | what | detail |\n"
        "|---|---|---|\n"
        "| ok | Deployment p/mlflow | 1/1 available |\n"
        "\n"
        "## Gateway routes\n"
        "\n"
        "| status | what | detail |\n"
        "|---|---|---|\n"
        "| fail | /ray (ray-dashboard -> x) | without credentials: HTTP 200 \\| odd |\n"
        "\n"
        "## Smoke prediction\n"
        "\n"
        "| status | what | detail |\n"
        "|---|---|---|\n"
        "| warn | /serving/qoe/predict | no model |\n"
    )
    assert verify.failed(results) and not verify.failed(results[:1])


def test_the_gateway_url_comes_from_the_exported_urls() -> None:
    outputs = {
        "urls": {"mlflow": "https://192.168.50.10:30443/mlflow/", "ray": "https://192.168.50.10:30443/ray/"}
    }
    assert verify.gateway_base_url(outputs) == "https://192.168.50.10:30443"
    with pytest.raises(verify.VerifyError) as error:
        verify.gateway_base_url({"urls": {}})
    assert str(error.value) == "cannot tell the gateway URL from the stack outputs (urls: none)"


# --- the CLI's refusals --------------------------------------------------------------------------


def _naomi(*args: str, path: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}import sys; from naomi.cli import main; sys.argv = ['naomi', *{list(args)!r}]; main()"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, "COLUMNS": "200"},
        cwd=PROJECT_DIR,
        check=False,
    )


def _fake_pulumi(folder: Path, outputs: Mapping[str, Any]) -> str:
    fake = folder / "pulumi"
    fake.write_text(f"#!/bin/sh\n[ \"$4\" = edge-lab ] || exit 3\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    fake.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_verify_without_the_pulumi_cli_is_one_line(tmp_path: Path) -> None:
    result = _naomi("verify", "--stack", "edge-lab", path=str(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: pulumi CLI not found; naomi verify reads: pulumi stack output --stack edge-lab "
        "--show-secrets --json\n"
    )


def test_verify_without_a_kubeconfig_is_one_line(tmp_path: Path) -> None:
    path = _fake_pulumi(tmp_path, {"urls": {"mlflow": "https://192.168.50.10:30443/mlflow/"}})
    result = _naomi("verify", "--stack", "edge-lab", path=path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: no kubeconfig: the stack exports none and --kubeconfig was not given\n"
    missing = _naomi("verify", "--stack", "edge-lab", "--kubeconfig", str(tmp_path / "nope"), path=path)
    assert (missing.returncode, missing.stderr) == (
        2,
        f"error: --kubeconfig: no such file: {tmp_path / 'nope'}\n",
    )


def test_verify_without_the_kubernetes_client_says_how_to_get_it(tmp_path: Path) -> None:
    path = _fake_pulumi(tmp_path, {"kubeconfig": "apiVersion: v1\nkind: Config\n"})
    result = _naomi(
        "verify", "--stack", "edge-lab", path=path, prelude="import sys; sys.modules['kubernetes'] = None; "
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: the kubernetes Python client is not installed: pip install 'kubernetes>=31' "
        "(or install naomi with the workloads extra)\n"
    )


# --- the Kubernetes API facade over the official client -----------------------------------------


def test_the_cluster_api_calls_the_rest_paths_with_the_kubeconfig_credentials() -> None:
    """A recording HTTP server in place of the API server: the paths, selectors, bodies and bearer
    token the pinned kubernetes client sends for our calls (not the API server's semantics)."""
    pytest.importorskip("kubernetes")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str, str | None, str]] = []

    class ApiServer(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            seen.append((self.command, self.path, self.headers.get("Authorization"), body))
            status, data = 200, {"items": [{"metadata": {"name": "web-0"}}], "status": {"phase": "Succeeded"}}
            if self.path.startswith("/apis/ray.io/"):
                status, data = (
                    404,
                    {"kind": "Status", "message": "the server could not find the requested resource"},
                )
            if self.command == "POST":
                status, data = 403, {"kind": "Status", "message": 'pods "p" is forbidden: exceeded quota'}
            if self.command == "POST" and "prometheusrules" in self.path:
                status, data = 201, json.loads(body)
            payload = (
                b"naomi-probe 10.1.0.1 80 open\n" if self.path.endswith("/log") else json.dumps(data).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    kubeconfig = f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{server.server_address[1]}"}}}}]
users: [{{name: u, user: {{token: the-token}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    try:
        api = verify.ClusterApi(kubeconfig)
        assert api.list("Pod", "naomi-serving", {"ray.io/node-type": "head", "app": "x"}) == [
            {"metadata": {"name": "web-0"}}
        ]
        assert api.list("RayService", "naomi-serving") == []  # no KubeRay CRDs: nothing to judge
        with pytest.raises(verify.KubernetesError, match='HTTP 403: pods "p" is forbidden: exceeded quota'):
            api.create_pod("naomi-serving", {"kind": "Pod", "metadata": {"name": "p"}})
        assert api.wait_for_pod("naomi-serving", "p", 5)["status"] == {"phase": "Succeeded"}
        assert api.pod_log("naomi-serving", "p") == "naomi-probe 10.1.0.1 80 open\n"
        api.delete_pod("naomi-serving", "p")
        rule = verify.webhook_rule("naomi-workloads", "vector(1)")
        assert api.dry_run_create("PrometheusRule", "naomi-workloads", rule) == rule
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [
        (
            "GET",
            "/api/v1/namespaces/naomi-serving/pods?labelSelector=app%3Dx%2Cray.io/node-type%3Dhead",
            "Bearer the-token",
            "",
        ),
        ("GET", "/apis/ray.io/v1/namespaces/naomi-serving/rayservices", "Bearer the-token", ""),
        (
            "POST",
            "/api/v1/namespaces/naomi-serving/pods",
            "Bearer the-token",
            '{"kind": "Pod", "metadata": {"name": "p"}}',
        ),
        ("GET", "/api/v1/namespaces/naomi-serving/pods/p", "Bearer the-token", ""),
        ("GET", "/api/v1/namespaces/naomi-serving/pods/p/log", "Bearer the-token", ""),
        (
            "DELETE",
            "/api/v1/namespaces/naomi-serving/pods/p",
            "Bearer the-token",
            '{"gracePeriodSeconds": 0}',
        ),
        (
            "POST",
            "/apis/monitoring.coreos.com/v1/namespaces/naomi-workloads/prometheusrules?dryRun=All",
            "Bearer the-token",
            json.dumps(verify.webhook_rule("naomi-workloads", "vector(1)")),
        ),
    ]


def test_a_render_without_chart_objects_says_so_in_the_report(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    import dataclasses

    bare = dataclasses.replace(renders[STACK], chart_objects=[], charts_missing=["traefik 41.3.0"])
    expected = verify.expectations(evaluations[STACK], bare)
    assert expected.notes == (
        "charts not in the render (not cached): traefik 41.3.0; their workloads are judged as found",
    )
    assert ("Deployment", "naomi-gateway", "traefik") not in expected.workloads
    assert ("Deployment", "naomi-platform", "mlflow") in expected.workloads
