"""The pods prometheus-operator v0.93 builds from the chart's Prometheus and Alertmanager resources.

The chart is kube-prometheus-stack 88.5.3 rendered with the values the platform sets
(`infra.monitoring.monitoring_values`); the operator's flags come from the rendered Deployment.
Cases marked "upstream" port expectations from prometheus-operator's own tests at v0.93.0
(pkg/prometheus/server/statefulset_test.go, pkg/alertmanager/statefulset_test.go,
pkg/operator/config_reloader_test_lib.go, pkg/k8s/merge_test.go), so the model follows the code.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from infra.monitoring import MonitoringArgs, monitoring_values, pods_of
from infra.profiles import PROFILES
from naomi import policy
from naomi.cluster import admission, netpol
from naomi.cluster import prometheus_operator as po
from naomi.cluster.model import ClusterModel
from tests.conftest import require_shared
from tests.contracts import NETWORK

NAMESPACE = "naomi-monitoring"
PROMETHEUS = "monitoring-kube-prometheus-prometheus"
ALERTMANAGER = "monitoring-kube-prometheus-alertmanager"
RELOADER_IMAGE = "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"
EDGE = PROFILES["edge"]

# The reloader resources the operator uses when no --config-reloader-* flag is given
# (cmd/operator/main.go defaultReloaderCPU/defaultReloaderMemory).
OPERATOR_DEFAULT_RELOADER = {
    "requests": {"cpu": "10m", "memory": "50Mi"},
    "limits": {"cpu": "10m", "memory": "50Mi"},
}


def _values() -> dict[str, Any]:
    args = MonitoringArgs(
        namespace=NAMESPACE,
        base_url="https://10.0.0.5:30443",
        retention="7d",
        prometheus=EDGE.prometheus,
        prometheus_volume=EDGE.prometheus_volume,
        alertmanager=EDGE.alertmanager,
        grafana=EDGE.grafana,
        operator=EDGE.prometheus_operator,
        kube_state_metrics=EDGE.kube_state_metrics,
        trigger_webhook_url="http://trigger.naomi-workloads.svc.cluster.local:8080/alerts",
        network=NETWORK,
    )
    return monitoring_values(args)


def _render(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    from helm_python import Chart

    archive = require_shared("reference/chart-archives/kube-prometheus-stack-88.5.3.tgz")
    with Chart.load(str(archive)) as chart:
        templates = chart.render(dict(values), name="monitoring", namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(templates.items())
        if path.endswith((".yaml", ".yml"))  # not NOTES.txt
        for document in yaml.safe_load_all(text)
        if document
    ]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.fixture(scope="module")
def chart() -> list[dict[str, Any]]:
    return _render(_values())


@pytest.fixture(scope="module")
def settings(chart: list[dict[str, Any]]) -> po.OperatorSettings:
    return po.operator_settings(_one(chart, "Deployment", "monitoring-kube-prometheus-operator"))


def _without_reloader_values() -> dict[str, Any]:
    """Our values as they were before `prometheusOperator.prometheusConfigReloader` was set."""
    values = copy.deepcopy(_values())
    del values["prometheusOperator"]["prometheusConfigReloader"]
    return values


@pytest.fixture(scope="module")
def unfixed_chart() -> list[dict[str, Any]]:
    return _render(_without_reloader_values())


@pytest.fixture(scope="module")
def unfixed_settings(unfixed_chart: list[dict[str, Any]]) -> po.OperatorSettings:
    return po.operator_settings(_one(unfixed_chart, "Deployment", "monitoring-kube-prometheus-operator"))


OUR_RELOADER = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}


@pytest.fixture(scope="module")
def prometheus(chart: list[dict[str, Any]], settings: po.OperatorSettings) -> list[dict[str, Any]]:
    return po.expand_prometheus(_one(chart, "Prometheus", PROMETHEUS), settings)


@pytest.fixture(scope="module")
def alertmanager(chart: list[dict[str, Any]], settings: po.OperatorSettings) -> list[dict[str, Any]]:
    return po.expand_alertmanager(_one(chart, "Alertmanager", ALERTMANAGER), settings)


def _containers(statefulset: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    spec = statefulset["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


# --- the operator's flags ---------------------------------------------------------------------------


def test_without_reloader_values_the_chart_runs_the_operator_with_zero_reloader_resources(
    unfixed_settings: po.OperatorSettings,
) -> None:
    # templates/prometheus-operator/deployment.yaml renders `| default 0` for each quantity.
    settings = unfixed_settings
    assert (settings.reloader_cpu_request, settings.reloader_cpu_limit) == ("0", "0")
    assert (settings.reloader_memory_request, settings.reloader_memory_limit) == ("0", "0")
    assert settings.reloader_resources() == {}
    assert settings.reloader_probes is False
    assert settings.local_host == "127.0.0.1"
    assert settings.reloader_image == RELOADER_IMAGE


def test_our_values_size_and_probe_the_reloaders(settings: po.OperatorSettings) -> None:
    assert settings.reloader_resources() == OUR_RELOADER
    assert settings.reloader_probes is True


def _deployment(
    *args: str, image: str = "quay.io/prometheus-operator/prometheus-operator:v0.93.1"
) -> dict[str, Any]:
    container = {"name": "operator", "image": image, "args": list(args)}
    return {
        "kind": "Deployment",
        "metadata": {"name": "op"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def test_operator_flags_parse_like_go_flag() -> None:
    defaults = po.operator_settings(_deployment())
    assert defaults.reloader_resources() == OPERATOR_DEFAULT_RELOADER
    assert defaults.local_host == "localhost" and defaults.reloader_image == RELOADER_IMAGE
    parsed = po.operator_settings(
        _deployment(
            "-config-reloader-cpu-request",  # single dash, value in the next argument
            "25m",
            "--config-reloader-memory-limit=",  # empty: Quantity.Set keeps the default
            "--enable-config-reloader-probes",  # a bare boolean is true
            "--labels=team=a,tier=b",
            "--labels=team=c",  # Map.Set merges repeats
            "--kubelet-endpoints=false",
            "start",  # the first non-flag ends the flags
            "--localhost=ignored",
        )
    )
    assert parsed.reloader_cpu_request == "25m" and parsed.reloader_memory_limit == "50Mi"
    assert parsed.reloader_probes is True
    assert parsed.labels == {"team": "c", "tier": "b"}
    assert parsed.local_host == "localhost"
    assert po.operator_settings(_deployment("--enable-config-reloader-probes=false")).reloader_probes is False
    partial = po.operator_settings(
        _deployment("--config-reloader-cpu-request=0", "--config-reloader-memory-limit=0Mi")
    )
    assert partial.reloader_resources() == {"requests": {"memory": "50Mi"}, "limits": {"cpu": "10m"}}


def test_operator_flags_the_binary_would_refuse_are_errors() -> None:
    with pytest.raises(
        ValueError, match=r"^operator argument '--no-such-flag=1': flag provided but not defined$"
    ):
        po.operator_settings(_deployment("--no-such-flag=1"))
    with pytest.raises(ValueError, match=r"^--config-reloader-cpu-limit=ten: quantities must match"):
        po.operator_settings(_deployment("--config-reloader-cpu-limit=ten"))
    with pytest.raises(ValueError, match=r"^operator flag --labels: invalid key=value pair: 'oops'$"):
        po.operator_settings(_deployment("--labels=oops"))
    with pytest.raises(ValueError, match="which resources the operator reconciles is not modelled"):
        po.operator_settings(_deployment("--namespaces=a,b"))
    with pytest.raises(ValueError, match="no prometheus-operator container"):
        po.operator_settings(_deployment(image="busybox:1"))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # upstream: pkg/operator/config_reloader_test_lib.go TestSidecarsResources, as flags.
        (("0", "0", "0", "0"), {}),
        (("0", "100m", "0", "50Mi"), {"limits": {"cpu": "100m", "memory": "50Mi"}}),
        (("100m", "0", "50Mi", "0"), {"requests": {"cpu": "100m", "memory": "50Mi"}}),
        (("0", "0", "50Mi", "50Mi"), {"limits": {"memory": "50Mi"}, "requests": {"memory": "50Mi"}}),
        (
            ("0", "100m", "50Mi", "50Mi"),
            {"limits": {"cpu": "100m", "memory": "50Mi"}, "requests": {"memory": "50Mi"}},
        ),
        (
            ("100m", "0", "50Mi", "50Mi"),
            {"limits": {"memory": "50Mi"}, "requests": {"cpu": "100m", "memory": "50Mi"}},
        ),
        (("100m", "100m", "0", "0"), {"limits": {"cpu": "100m"}, "requests": {"cpu": "100m"}}),
        (
            ("100m", "100m", "0", "50Mi"),
            {"limits": {"cpu": "100m", "memory": "50Mi"}, "requests": {"cpu": "100m"}},
        ),
        (
            ("100m", "100m", "50Mi", "0"),
            {"limits": {"cpu": "100m"}, "requests": {"cpu": "100m", "memory": "50Mi"}},
        ),
    ],
)
def test_reloader_resources_from_flags(flags: tuple[str, str, str, str], expected: dict[str, Any]) -> None:
    cpu_request, cpu_limit, memory_request, memory_limit = flags
    settings = po.operator_settings(
        _deployment(
            f"--config-reloader-cpu-request={cpu_request}",
            f"--config-reloader-cpu-limit={cpu_limit}",
            f"--config-reloader-memory-request={memory_request}",
            f"--config-reloader-memory-limit={memory_limit}",
        )
    )
    prometheus = {"kind": "Prometheus", "metadata": {"name": "p", "namespace": "ns"}}
    alertmanager = {"kind": "Alertmanager", "metadata": {"name": "a", "namespace": "ns"}}
    for statefulset in (
        po.expand_prometheus(prometheus, settings)[0],
        po.expand_alertmanager(alertmanager, settings)[0],
    ):
        reloaders = [c for name, c in _containers(statefulset).items() if name.endswith("config-reloader")]
        assert len(reloaders) == 2
        assert all(c["resources"] == expected for c in reloaders)


# --- the platform's Prometheus ----------------------------------------------------------------------


def test_prometheus_statefulset_for_our_values(prometheus: list[dict[str, Any]]) -> None:
    statefulset, service = prometheus
    assert (
        statefulset["kind"] == "StatefulSet" and statefulset["metadata"]["name"] == f"prometheus-{PROMETHEUS}"
    )
    assert statefulset["metadata"]["namespace"] == NAMESPACE
    spec = statefulset["spec"]
    assert (spec["serviceName"], spec["replicas"], spec["podManagementPolicy"]) == (
        "prometheus-operated",
        1,
        "Parallel",
    )
    selector = {
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/instance": PROMETHEUS,
        "operator.prometheus.io/name": PROMETHEUS,
        "operator.prometheus.io/shard": "0",
        "prometheus": PROMETHEUS,
    }
    assert spec["selector"] == {"matchLabels": selector}
    # The version label comes from spec.version (v3.14.0-distroless, semver pre-release "distroless").
    assert spec["template"]["metadata"]["labels"] == {
        **selector,
        "app.kubernetes.io/version": "3.14.0-distroless",
    }
    pod = spec["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["init-config-reloader"]
    assert [c["name"] for c in pod["containers"]] == ["prometheus", "config-reloader"]
    assert pod["serviceAccountName"] == "monitoring-kube-prometheus-prometheus"
    assert pod["automountServiceAccountToken"] is True
    assert pod["terminationGracePeriodSeconds"] == 600
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}  # prometheusSpec.nodeSelector
    assert pod["securityContext"] == {
        "fsGroup": 2000,
        "runAsGroup": 2000,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    server = pod["containers"][0]
    assert server["image"] == "quay.io/prometheus/prometheus:v3.14.0-distroless"
    assert server["args"] == [
        "--config.file=/etc/prometheus/config_out/prometheus.env.yaml",
        "--web.enable-lifecycle",
        "--web.external-url=https://10.0.0.5:30443/prometheus",
        "--web.route-prefix=/prometheus",
        # retention (7d) is in the configuration file from Prometheus 3.11 on, not a flag
        "--storage.tsdb.path=/prometheus",
        "--storage.tsdb.wal-compression",
        "--web.config.file=/etc/prometheus/web_config/web-config.yaml",
    ]
    assert server["ports"] == [{"name": "http-web", "containerPort": 9090, "protocol": "TCP"}]
    ready = {"httpGet": {"path": "/prometheus/-/ready", "port": "http-web"}, "timeoutSeconds": 3}
    assert server["startupProbe"] == {**ready, "periodSeconds": 15, "failureThreshold": 60}
    assert server["readinessProbe"] == {**ready, "periodSeconds": 5, "failureThreshold": 3}
    assert server["livenessProbe"] == {
        "httpGet": {"path": "/prometheus/-/healthy", "port": "http-web"},
        "timeoutSeconds": 3,
        "periodSeconds": 5,
        "failureThreshold": 6,
    }
    assert server["resources"] == EDGE.prometheus.spec()
    assert server["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    rules = [f"prometheus-{PROMETHEUS}-rulefiles-{i}" for i in range(3)]
    assert [v["name"] for v in pod["volumes"]] == ["config", "tls-assets", "config-out", *rules, "web-config"]
    assert {"name": "config-out", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {"name": f"prometheus-{PROMETHEUS}-db"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        }
    ]
    data = next(m for m in server["volumeMounts"] if m["mountPath"] == "/prometheus")
    assert data == {
        "name": f"prometheus-{PROMETHEUS}-db",
        "mountPath": "/prometheus",
        "subPath": "prometheus-db",
    }
    assert service["metadata"]["name"] == "prometheus-operated"


def test_prometheus_config_reloaders_for_our_values(prometheus: list[dict[str, Any]]) -> None:
    containers = _containers(prometheus[0])
    rules = [f"/etc/prometheus/rules/prometheus-{PROMETHEUS}-rulefiles-{i}" for i in range(3)]
    sidecar, init = containers["config-reloader"], containers["init-config-reloader"]
    assert sidecar["image"] == init["image"] == RELOADER_IMAGE
    assert sidecar["args"] == [
        "--listen-address=:8080",
        # the chart's --localhost=127.0.0.1 and the route prefix
        "--reload-url=http://127.0.0.1:9090/prometheus/-/reload",
        "--config-file=/etc/prometheus/config/prometheus.yaml.gz",
        "--config-envsubst-file=/etc/prometheus/config_out/prometheus.env.yaml",
        *(f"--watched-dir={d}" for d in rules),
        "--watched-dir=/etc/prometheus/config",
    ]
    assert init["args"][:2] == ["--watch-interval=0", "--listen-address=:8081"]
    assert sidecar["ports"] == [{"name": "reloader-web", "containerPort": 8080, "protocol": "TCP"}]
    assert init["ports"] == [{"name": "reloader-init", "containerPort": 8081, "protocol": "TCP"}]
    # prometheusOperator.prometheusConfigReloader in our values: sized, and the sidecar probed.
    assert sidecar["resources"] == init["resources"] == OUR_RELOADER
    assert {"livenessProbe", "readinessProbe"} <= sidecar.keys()
    assert sidecar["env"][1] == {"name": "SHARD", "value": "0"}


def test_alertmanager_statefulset_for_our_values(alertmanager: list[dict[str, Any]]) -> None:
    statefulset, service = alertmanager
    assert statefulset["metadata"]["name"] == f"alertmanager-{ALERTMANAGER}"
    spec = statefulset["spec"]
    assert (spec["serviceName"], spec["replicas"]) == ("alertmanager-operated", 1)
    assert "volumeClaimTemplates" not in spec  # no storage in our values: an emptyDir
    selector = {
        "app.kubernetes.io/name": "alertmanager",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": ALERTMANAGER,
        "alertmanager": ALERTMANAGER,
    }
    assert spec["selector"] == {"matchLabels": selector}
    assert spec["template"]["metadata"]["labels"] == {**selector, "app.kubernetes.io/version": "0.34.0"}
    pod = spec["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["init-config-reloader"]
    assert [c["name"] for c in pod["containers"]] == ["alertmanager", "config-reloader"]
    assert (pod["serviceAccountName"], pod["terminationGracePeriodSeconds"]) == (ALERTMANAGER, 120)
    server = pod["containers"][0]
    assert server["args"] == [
        "--config.file=/etc/alertmanager/config_out/alertmanager.env.yaml",
        "--storage.path=/alertmanager",
        "--data.retention=120h",
        "--cluster.listen-address=",  # one replica: no gossip
        "--web.listen-address=:9093",
        "--web.external-url=https://10.0.0.5:30443/alertmanager",
        "--web.route-prefix=/alertmanager",
        "--cluster.peer-name=$(POD_NAME)",
        f"--cluster.label={NAMESPACE}/{ALERTMANAGER}",
        f"--cluster.peer=alertmanager-{ALERTMANAGER}-0.alertmanager-operated:9094",
        "--cluster.reconnect-timeout=5m",
        "--web.config.file=/etc/alertmanager/web_config/web-config.yaml",
    ]
    assert server["ports"] == [
        {"name": "http-web", "containerPort": 9093, "protocol": "TCP"},
        {"name": "mesh-tcp", "containerPort": 9094, "protocol": "TCP"},
        {"name": "mesh-udp", "containerPort": 9094, "protocol": "UDP"},
    ]
    assert server["livenessProbe"] == {
        "httpGet": {"path": "/alertmanager/-/healthy", "port": "http-web"},
        "timeoutSeconds": 3,
        "failureThreshold": 10,
    }
    assert server["readinessProbe"] == {
        "httpGet": {"path": "/alertmanager/-/ready", "port": "http-web"},
        "initialDelaySeconds": 3,
        "timeoutSeconds": 3,
        "periodSeconds": 5,
        "failureThreshold": 10,
    }
    assert server["resources"] == EDGE.alertmanager.spec()
    # The trigger receiver's token (alertmanagerSpec.secrets), where the route's credentials_file points.
    token = {
        "name": "secret-trigger-receiver-token",
        "mountPath": "/etc/alertmanager/secrets/trigger-receiver-token",
        "readOnly": True,
    }
    assert token in server["volumeMounts"]
    assert {
        "name": "secret-trigger-receiver-token",
        "secret": {"secretName": "trigger-receiver-token"},
    } in pod["volumes"]
    assert {"name": f"alertmanager-{ALERTMANAGER}-db", "emptyDir": {}} in pod["volumes"]
    sidecar = pod["containers"][1]
    assert sidecar["args"] == [
        "--listen-address=:8080",
        "--web-config-file=/etc/alertmanager/web_config/web-config.yaml",
        "--reload-url=http://127.0.0.1:9093/alertmanager/-/reload",
        "--config-file=/etc/alertmanager/config/alertmanager.yaml.gz",
        "--config-envsubst-file=/etc/alertmanager/config_out/alertmanager.env.yaml",
        "--watched-dir=/etc/alertmanager/config",
        "--watched-dir=/etc/alertmanager/secrets/trigger-receiver-token",
    ]
    assert sidecar["resources"] == pod["initContainers"][0]["resources"] == OUR_RELOADER
    assert sidecar["env"][1] == {"name": "SHARD", "value": "-1"}
    assert service["metadata"]["name"] == "alertmanager-operated"


def test_governing_services(prometheus: list[dict[str, Any]], alertmanager: list[dict[str, Any]]) -> None:
    assert prometheus[1]["spec"] == {
        "clusterIP": "None",
        "ports": [{"name": "http-web", "port": 9090, "targetPort": "http-web"}],
        "selector": {"app.kubernetes.io/name": "prometheus"},
    }
    assert prometheus[1]["metadata"]["labels"]["operated-prometheus"] == "true"
    assert alertmanager[1]["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "ports": [
            {"name": "http-web", "port": 9093, "targetPort": "http-web", "protocol": "TCP"},
            {"name": "tcp-mesh", "port": 9094, "targetPort": "mesh-tcp", "protocol": "TCP"},
            {"name": "udp-mesh", "port": 9094, "targetPort": "mesh-udp", "protocol": "UDP"},
        ],
        "selector": {"app.kubernetes.io/name": "alertmanager"},
    }
    assert [o["metadata"]["ownerReferences"][0]["kind"] for o in (prometheus[1], alertmanager[1])] == [
        "Prometheus",
        "Alertmanager",
    ]


def test_services_and_policies_select_the_operator_pods(
    chart: list[dict[str, Any]], settings: po.OperatorSettings
) -> None:
    """The chart's Services and the project's pod selectors (NetworkPolicies, flows) find the pods
    the operator builds, on the ports they name."""
    model = ClusterModel.from_objects([("helm", o) for o in chart], po.expanders(settings))
    assert sorted(p.owner for p in model.pods if p.origin.startswith("operator:")) == [
        f"StatefulSet {NAMESPACE}/alertmanager-{ALERTMANAGER}",
        f"StatefulSet {NAMESPACE}/prometheus-{PROMETHEUS}",
    ]
    endpoints = [pod.endpoint() for pod in model.pods]

    def backends(service: str, port: int) -> list[tuple[str, int]]:
        found = netpol.service_backends(
            _one([i.obj for i in model.objects], "Service", service), endpoints, port
        )
        return [(pod.name, target) for pod, target in found]

    prometheus_pod = f"StatefulSet {NAMESPACE}/prometheus-{PROMETHEUS}"
    alertmanager_pod = f"StatefulSet {NAMESPACE}/alertmanager-{ALERTMANAGER}"
    assert backends(PROMETHEUS, 9090) == [(prometheus_pod, 9090)]
    assert backends(PROMETHEUS, 8080) == [(prometheus_pod, 8080)]  # the chart's reloader-web port
    assert backends("prometheus-operated", 9090) == [(prometheus_pod, 9090)]
    assert backends(ALERTMANAGER, 9093) == [(alertmanager_pod, 9093)]
    assert backends("alertmanager-operated", 9094) == [(alertmanager_pod, 9094), (alertmanager_pod, 9094)]
    pods = pods_of(NAMESPACE)
    for role, owner in (("prometheus", prometheus_pod), ("alertmanager", alertmanager_pod)):
        selector = pods[role].labels
        assert [p.owner for p in model.pods if all(p.labels.get(k) == v for k, v in selector.items())] == [
            owner
        ]


def test_the_cluster_checks_judge_the_operator_pods(chart: list[dict[str, Any]]) -> None:
    """`operator_expanders` over the chart's objects feeds `naomi.cluster.checks`: the operator's pods
    pass restricted admission in a restricted namespace, and Prometheus' PVC-backed pod is pinned to
    the data nodes by the values' nodeSelector (Alertmanager keeps an emptyDir)."""
    from naomi.cluster.checks import admission_problems
    from naomi.cluster.placement import InventoryNode, placement_problems

    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    model = ClusterModel.from_objects(
        [("pulumi", namespace), *(("helm", o) for o in chart)], po.operator_expanders(chart)
    )
    operated = [p for p in model.pods if p.origin.startswith("operator:")]
    assert len(operated) == 2
    assert [p for p in admission_problems(model) if "(operator:" in p] == []
    prometheus_pod = next(p for p in operated if p.labels["app.kubernetes.io/name"] == "prometheus")
    assert prometheus_pod.spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    claims = {
        i.describe(): bool(i.obj["spec"].get("volumeClaimTemplates")) for i in model.of_kind("StatefulSet")
    }
    inputs = [(p.owner, p.spec, claims[p.owner]) for p in operated]
    assert sorted((owner, claims) for owner, _, claims in inputs) == [
        (f"StatefulSet {NAMESPACE}/alertmanager-{ALERTMANAGER}", False),
        (f"StatefulSet {NAMESPACE}/prometheus-{PROMETHEUS}", True),
    ]
    nodes = [
        InventoryNode("x86", {"kubernetes.io/arch": "amd64"}),
        InventoryNode("pi", {"kubernetes.io/arch": "arm64", "naomi.io/board": "rpi5"}),
    ]
    assert placement_problems(inputs, nodes) == []
    # Without the selector the TSDB could land on the Pi's SD card.
    unpinned = [
        (owner, {k: v for k, v in spec.items() if k != "nodeSelector"}, c) for owner, spec, c in inputs
    ]
    assert placement_problems(unpinned, nodes) == [
        f"StatefulSet {NAMESPACE}/prometheus-{PROMETHEUS}: keeps data on a volume and may land on "
        "Raspberry Pi pi (its SD card); label the node naomi.io/storage=true to allow it"
    ]
    assert po.operator_expanders([namespace]) == {}


# --- our rules and Pod Security ------------------------------------------------------------------------


def test_without_reloader_values_the_chart_flags_break_the_requests_limits_and_probes_rule(
    unfixed_chart: list[dict[str, Any]], unfixed_settings: po.OperatorSettings
) -> None:
    prometheus = po.expand_prometheus(_one(unfixed_chart, "Prometheus", PROMETHEUS), unfixed_settings)
    alertmanager = po.expand_alertmanager(_one(unfixed_chart, "Alertmanager", ALERTMANAGER), unfixed_settings)
    for statefulset in (prometheus[0], alertmanager[0]):
        where = f"StatefulSet {NAMESPACE}/{statefulset['metadata']['name']} container"
        missing = [
            f"{where} {c}: no {r} {s}"
            for c in ("init-config-reloader", "config-reloader")
            for s in ("request", "limit")
            for r in ("cpu", "memory")
        ]
        assert policy.resources_probes_and_images(statefulset) == [
            *missing,
            f"{where} config-reloader: no readinessProbe",
            f"{where} config-reloader: no livenessProbe",
        ]


def test_prometheus_config_reloader_values_fix_it() -> None:
    """`prometheusOperator.prometheusConfigReloader` in the chart's values becomes the operator's
    --config-reloader-* and --enable-config-reloader-probes flags."""
    values = _without_reloader_values()
    values["prometheusOperator"]["prometheusConfigReloader"] = {
        "resources": OPERATOR_DEFAULT_RELOADER,
        "enableProbe": True,
    }
    objects = _render(values)
    deployment = _one(objects, "Deployment", "monitoring-kube-prometheus-operator")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if "config-reloader-" in a] == [
        "--config-reloader-cpu-request=10m",
        "--config-reloader-cpu-limit=10m",
        "--config-reloader-memory-request=50Mi",
        "--config-reloader-memory-limit=50Mi",
        "--enable-config-reloader-probes=true",
    ]
    settings = po.operator_settings(deployment)
    for statefulset in (
        po.expand_prometheus(_one(objects, "Prometheus", PROMETHEUS), settings)[0],
        po.expand_alertmanager(_one(objects, "Alertmanager", ALERTMANAGER), settings)[0],
    ):
        assert policy.resources_probes_and_images(statefulset) == []
        containers = _containers(statefulset)
        assert containers["config-reloader"]["resources"] == OPERATOR_DEFAULT_RELOADER
        handler = {"httpGet": {"path": "/healthz", "port": 8080}}
        assert (
            containers["config-reloader"]["readinessProbe"]
            == containers["config-reloader"]["livenessProbe"]
            == handler
        )
        assert "readinessProbe" not in containers["init-config-reloader"]


def _pod_security(statefulset: Mapping[str, Any]) -> list[str]:
    template = statefulset["spec"]["template"]
    return [v.message for v in admission.evaluate_pod(template["metadata"], template["spec"], "restricted")]


def test_pod_security_restricted_holds_through_the_chart_security_context(
    chart: list[dict[str, Any]], settings: po.OperatorSettings
) -> None:
    for kind, name, expand in (
        ("Prometheus", PROMETHEUS, po.expand_prometheus),
        ("Alertmanager", ALERTMANAGER, po.expand_alertmanager),
    ):
        resource = _one(chart, kind, name)
        assert _pod_security(expand(resource, settings)[0]) == []
        # The operator sets no runAsNonRoot or seccomp profile on its containers: without the
        # chart's pod securityContext (`<component>Spec.securityContext`) restricted fails.
        bare = copy.deepcopy(resource)
        del bare["spec"]["securityContext"]
        containers = ('"init-config-reloader", ', f'"{kind.lower()}", "config-reloader"')
        names = "".join(containers)
        assert _pod_security(expand(bare, settings)[0]) == [
            f"runAsNonRoot != true (pod or containers {names} must set securityContext.runAsNonRoot=true)",
            f"seccompProfile (pod or containers {names} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost")',
        ]


# --- upstream cases --------------------------------------------------------------------------------

# The operator configuration of the upstream tests (statefulset_test.go defaultTestConfig).
UPSTREAM_SETTINGS = po.OperatorSettings(
    reloader_image="quay.io/prometheus-operator/prometheus-config-reloader:latest",
    reloader_cpu_request="100m",
    reloader_cpu_limit="100m",
    reloader_memory_request="50Mi",
    reloader_memory_limit="50Mi",
)


def _prometheus(name: str = "test", labels: Mapping[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns"}
    if labels is not None:
        metadata["labels"] = dict(labels)
    return {"kind": "Prometheus", "metadata": metadata, "spec": spec}


def test_upstream_prometheus_statefulset_volume_initial() -> None:
    # pkg/prometheus/server/statefulset_test.go TestStatefulSetVolumeInitial (one TLS shard).
    objects = po.expand_prometheus(
        _prometheus("volume-init-test", secrets=["test-secret1"]),
        UPSTREAM_SETTINGS,
        rule_config_maps=["rules-configmap-one"],
    )
    pod = objects[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "config-out", "readOnly": True, "mountPath": "/etc/prometheus/config_out"},
        {"name": "tls-assets", "readOnly": True, "mountPath": "/etc/prometheus/certs"},
        {"name": "prometheus-volume-init-test-db", "mountPath": "/prometheus"},
        {
            "name": "secret-test-secret1",
            "readOnly": True,
            "mountPath": "/etc/prometheus/secrets/test-secret1",
        },
        {
            "name": "rules-configmap-one",
            "readOnly": True,
            "mountPath": "/etc/prometheus/rules/rules-configmap-one",
        },
        {
            "name": "web-config",
            "readOnly": True,
            "mountPath": "/etc/prometheus/web_config/web-config.yaml",
            "subPath": "web-config.yaml",
        },
    ]
    assert pod["volumes"] == [
        {"name": "config", "secret": {"secretName": "prometheus-volume-init-test"}},
        {
            "name": "tls-assets",
            "projected": {"sources": [{"secret": {"name": "prometheus-volume-init-test-tls-assets-0"}}]},
        },
        {"name": "config-out", "emptyDir": {"medium": "Memory"}},
        {"name": "secret-test-secret1", "secret": {"secretName": "test-secret1"}},
        {"name": "rules-configmap-one", "configMap": {"name": "rules-configmap-one", "optional": True}},
        {"name": "web-config", "secret": {"secretName": "prometheus-volume-init-test-web-config"}},
        {"name": "prometheus-volume-init-test-db", "emptyDir": {}},
    ]


def test_upstream_prometheus_labels_and_annotations() -> None:
    # TestStatefulSetLabelingAndAnnotations (the input-hash annotation is not modelled).
    resource = _prometheus(labels={"testlabel": "testlabelvalue"})
    resource["metadata"]["annotations"] = {
        "testannotation": "testannotationvalue",
        "kubectl.kubernetes.io/last-applied-configuration": "something",
        "kubectl.kubernetes.io/something": "something",
    }
    statefulset = po.expand_prometheus(resource, UPSTREAM_SETTINGS)[0]
    assert statefulset["metadata"]["labels"] == {
        "testlabel": "testlabelvalue",
        "operator.prometheus.io/name": "test",
        "operator.prometheus.io/shard": "0",
        "operator.prometheus.io/mode": "server",
        "managed-by": "prometheus-operator",
        "prometheus": "test",
        "app.kubernetes.io/instance": "test",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/name": "prometheus",
    }
    assert statefulset["metadata"]["annotations"] == {"testannotation": "testannotationvalue"}
    assert statefulset["spec"]["template"]["metadata"]["labels"] == {
        "prometheus": "test",
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/version": "3.13.1",  # operator.DefaultPrometheusVersion, "v" trimmed
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": "test",
        "operator.prometheus.io/name": "test",
        "operator.prometheus.io/shard": "0",
    }
    # TestPodLabelsAnnotations / TestPodLabelsShouldNotBeSelectorLabels.
    labelled = po.expand_prometheus(
        _prometheus(
            podMetadata={"labels": {"testlabel": "testvalue"}, "annotations": {"testannotation": "testvalue"}}
        ),
        UPSTREAM_SETTINGS,
    )[0]["spec"]
    assert labelled["template"]["metadata"]["labels"]["testlabel"] == "testvalue"
    assert labelled["template"]["metadata"]["annotations"]["testannotation"] == "testvalue"
    assert "testlabel" not in labelled["selector"]["matchLabels"]


def test_upstream_prometheus_listen_local() -> None:
    # TestListenLocal: loopback only, exec probes through curl or wget, no container port.
    server = po.expand_prometheus(_prometheus(listenLocal=True), UPSTREAM_SETTINGS)[0]["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert "--web.listen-address=127.0.0.1:9090" in server["args"]

    def handler(path: str) -> dict[str, Any]:
        url = f"http://localhost:9090{path}"
        command = (
            f'if [ -x "$(command -v curl)" ]; then exec curl --fail {url}; '
            f'elif [ -x "$(command -v wget)" ]; then exec wget -q -O /dev/null {url}; else exit 1; fi'
        )
        return {"exec": {"command": ["sh", "-c", command]}}

    assert server["startupProbe"] == {
        **handler("/-/ready"),
        "timeoutSeconds": 3,
        "periodSeconds": 15,
        "failureThreshold": 60,
    }
    assert server["livenessProbe"] == {
        **handler("/-/healthy"),
        "timeoutSeconds": 3,
        "periodSeconds": 5,
        "failureThreshold": 6,
    }
    assert server["readinessProbe"] == {
        **handler("/-/ready"),
        "timeoutSeconds": 3,
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    assert "ports" not in server


def test_upstream_prometheus_config_reloader_args() -> None:
    # TestConfigReloader with no rule ConfigMaps. Upstream's init-container expectation
    # ("--listen-address=:8080") is never checked (it loops over Containers); CreateConfigReloader
    # gives init containers :8081, as pkg/operator/config_reloader_test.go TestCreateInitConfigReloader asserts.
    containers = _containers(po.expand_prometheus(_prometheus(), UPSTREAM_SETTINGS, rule_config_maps=[])[0])
    assert containers["config-reloader"]["args"] == [
        "--listen-address=:8080",
        "--reload-url=http://localhost:9090/-/reload",
        "--config-file=/etc/prometheus/config/prometheus.yaml.gz",
        "--config-envsubst-file=/etc/prometheus/config_out/prometheus.env.yaml",
        "--watched-dir=/etc/prometheus/config",
    ]
    assert containers["init-config-reloader"]["args"] == [
        "--watch-interval=0",
        "--listen-address=:8081",
        "--config-file=/etc/prometheus/config/prometheus.yaml.gz",
        "--config-envsubst-file=/etc/prometheus/config_out/prometheus.env.yaml",
        "--watched-dir=/etc/prometheus/config",
    ]
    assert {"name": "SHARD", "value": "0"} in containers["config-reloader"]["env"]


def test_upstream_prometheus_storage_and_shards() -> None:
    # TestStatefulSetPVC, TestStatefulSetEmptyDir, TestExpectedStatefulSetShardNames.
    claim = {"metadata": {"annotations": {"a": "b"}}, "spec": {"storageClassName": "storageclass"}}
    statefulset = po.expand_prometheus(
        _prometheus(storage={"volumeClaimTemplate": claim}), UPSTREAM_SETTINGS
    )[0]
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    assert template == {
        "metadata": {"name": "prometheus-test-db", "annotations": {"a": "b"}},
        "spec": {"storageClassName": "storageclass", "accessModes": ["ReadWriteOnce"]},
    }
    empty = po.expand_prometheus(_prometheus(storage={"emptyDir": {"medium": "Memory"}}), UPSTREAM_SETTINGS)[
        0
    ]["spec"]
    assert {"name": "prometheus-test-db", "emptyDir": {"medium": "Memory"}} in empty["template"]["spec"][
        "volumes"
    ]
    assert "volumeClaimTemplates" not in empty
    sharded = po.expand_prometheus(_prometheus(shards=3), UPSTREAM_SETTINGS)
    assert [o["metadata"]["name"] for o in sharded] == [
        "prometheus-test",
        "prometheus-test-shard-1",
        "prometheus-test-shard-2",
        "prometheus-operated",
    ]
    assert [o["spec"]["selector"]["matchLabels"]["operator.prometheus.io/shard"] for o in sharded[:3]] == [
        "0",
        "1",
        "2",
    ]


def _alertmanager(name: str = "test", **spec: Any) -> dict[str, Any]:
    return {"kind": "Alertmanager", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def test_upstream_alertmanager_labels() -> None:
    # pkg/alertmanager/statefulset_test.go TestStatefulSetLabelingAndAnnotations.
    resource = _alertmanager()
    resource["metadata"]["labels"] = {"testlabel": "testlabelvalue"}
    statefulset = po.expand_alertmanager(resource, UPSTREAM_SETTINGS)[0]
    assert statefulset["metadata"]["labels"] == {
        "testlabel": "testlabelvalue",
        "managed-by": "prometheus-operator",
        "alertmanager": "test",
        "app.kubernetes.io/instance": "test",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/name": "alertmanager",
    }
    assert statefulset["spec"]["template"]["metadata"]["labels"] == {
        "alertmanager": "test",
        "app.kubernetes.io/name": "alertmanager",
        "app.kubernetes.io/version": "0.33.1",  # operator.DefaultAlertmanagerVersion
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": "test",
    }
    # makeStatefulSet: a 200Mi memory request when the resource sets none.
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "200Mi"}
    }


def _alertmanager_args(
    resource: dict[str, Any], settings: po.OperatorSettings = UPSTREAM_SETTINGS
) -> list[str]:
    args: list[str] = po.expand_alertmanager(resource, settings)[0]["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    return args


def test_upstream_alertmanager_cluster_arguments() -> None:
    # TestMakeStatefulSetSpecPeersWithoutClusterDomain / WithClusterDomain (at the default version,
    # not v0.15.3: versions before 0.24 are refused), TestClusterListenAddressFor*.
    resource = _alertmanager("alertmanager", replicas=1)
    resource["metadata"]["namespace"] = "monitoring"
    assert "--cluster.peer=alertmanager-alertmanager-0.alertmanager-operated:9094" in _alertmanager_args(
        resource
    )
    with_domain = po.OperatorSettings(**{**UPSTREAM_SETTINGS.__dict__, "cluster_domain": "custom.cluster"})
    expected = (
        "--cluster.peer=alertmanager-alertmanager-0.alertmanager-operated.monitoring.svc.custom.cluster.:9094"
    )
    assert expected in _alertmanager_args(resource, with_domain)
    assert "--cluster.listen-address=" in _alertmanager_args(_alertmanager(replicas=1))
    assert "--cluster.listen-address=" not in _alertmanager_args(
        _alertmanager(replicas=1, forceEnableClusterMode=True)
    )
    assert "--cluster.listen-address=[$(POD_IP)]:9094" in _alertmanager_args(_alertmanager(replicas=3))
    assert "--web.route-prefix=/" in _alertmanager_args(
        _alertmanager()
    )  # TestMakeStatefulSetSpecWebRoutePrefix


def test_upstream_alertmanager_secrets_and_reloader() -> None:
    # TestAdditionalSecretsMounted and TestConfigReloader.
    statefulset = po.expand_alertmanager(_alertmanager(secrets=["secret1", "secret2"]), UPSTREAM_SETTINGS)[0]
    pod = statefulset["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert {"secret1", "secret2"} <= secrets
    mounts = {(m["name"], m["mountPath"]) for m in pod["containers"][0]["volumeMounts"]}
    assert {
        ("secret-secret1", "/etc/alertmanager/secrets/secret1"),
        ("secret-secret2", "/etc/alertmanager/secrets/secret2"),
    } <= mounts
    plain = _containers(po.expand_alertmanager(_alertmanager(), UPSTREAM_SETTINGS)[0])
    assert plain["config-reloader"]["args"] == [
        "--listen-address=:8080",
        "--web-config-file=/etc/alertmanager/web_config/web-config.yaml",
        "--reload-url=http://localhost:9093/-/reload",
        "--config-file=/etc/alertmanager/config/alertmanager.yaml.gz",
        "--config-envsubst-file=/etc/alertmanager/config_out/alertmanager.env.yaml",
        "--watched-dir=/etc/alertmanager/config",
    ]
    assert plain["init-config-reloader"]["args"] == [
        "--watch-interval=0",
        "--listen-address=:8081",
        "--config-file=/etc/alertmanager/config/alertmanager.yaml.gz",
        "--config-envsubst-file=/etc/alertmanager/config_out/alertmanager.env.yaml",
        "--watched-dir=/etc/alertmanager/config",
    ]


def _container(name: str, image: str, *ports: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name}
    if image:
        container["image"] = image
    if ports:
        container["ports"] = list(ports)
    return container


PORT_1A = {"name": "portA", "containerPort": 1}
PORT_1B = {"name": "portB", "containerPort": 1}
PORT_2A = {"name": "portA", "containerPort": 2}


@pytest.mark.parametrize(
    ("base", "patches", "result"),
    [
        # upstream: pkg/k8s/merge_test.go TestPodLabelsAnnotations, case by case.
        ([], [], []),
        ([_container("c1", "image:A")], [], [_container("c1", "image:A")]),
        ([], [_container("c1", "image:A")], [_container("c1", "image:A")]),
        (
            [_container("c1", "image:A")],
            [_container("c2", "image:A")],
            [_container("c1", "image:A"), _container("c2", "image:A")],
        ),
        (
            [_container("c1", "image:A", PORT_1A)],
            [_container("c2", "image:A", PORT_1B)],
            [_container("c1", "image:A", PORT_1A), _container("c2", "image:A", PORT_1B)],
        ),
        ([_container("c1", "image:A")], [_container("c1", "image:B")], [_container("c1", "image:B")]),
        (
            [_container("c1", "image:A", PORT_1A)],
            [_container("c1", "image:B", PORT_1A)],
            [_container("c1", "image:B", PORT_1A)],
        ),
        (
            [_container("c1", "image:A"), _container("c2", "image:A")],
            [_container("c2", "image:B"), _container("c1", "image:B")],
            [_container("c1", "image:B"), _container("c2", "image:B")],
        ),
        # a port added by the patch comes first (strategic merge's mergeSortedSlice)
        (
            [_container("c1", "image:A", PORT_1A)],
            [_container("c1", "image:A", PORT_2A)],
            [_container("c1", "image:A", PORT_2A, PORT_1A)],
        ),
        (
            [_container("c1", "image:A", PORT_1A)],
            [_container("c1", "image:A", PORT_1B)],
            [_container("c1", "image:A", PORT_1B)],
        ),
        (
            [_container("c1", "image:A")],
            [_container("c1", "", PORT_1A)],
            [_container("c1", "image:A", PORT_1A)],
        ),
    ],
)
def test_upstream_merge_patch_containers(
    base: list[dict[str, Any]], patches: list[dict[str, Any]], result: list[dict[str, Any]]
) -> None:
    assert po.merge_patch_containers(base, patches) == result


def test_upstream_merge_patch_probe_handlers() -> None:
    # TestMergePatchContainersProbeHandlerSanitization: the override's handler replaces another type.
    http = {"httpGet": {"path": "/health", "port": 8080}}
    tcp = {"tcpSocket": {"port": 8080}}
    base = [{"name": "c1", "readinessProbe": http, "livenessProbe": http}]
    merged = po.merge_patch_containers(base, [{"name": "c1", "readinessProbe": tcp}])
    assert merged == [{"name": "c1", "readinessProbe": tcp, "livenessProbe": http}]
    same = po.merge_patch_containers(
        [{"name": "c1", "readinessProbe": {"httpGet": {"path": "/old", "port": 8080}}}],
        [{"name": "c1", "readinessProbe": http}],
    )
    assert same == [{"name": "c1", "readinessProbe": http}]


def test_a_containers_override_can_size_the_reloader(
    unfixed_chart: list[dict[str, Any]], unfixed_settings: po.OperatorSettings
) -> None:
    """The other way to give the reloader resources: `prometheusSpec.containers` patches the
    operator's container by name (maps merge, env merges by name)."""
    chart, settings = unfixed_chart, unfixed_settings
    resource = copy.deepcopy(_one(chart, "Prometheus", PROMETHEUS))
    resource["spec"]["containers"] = [
        {
            "name": "config-reloader",
            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
            "env": [{"name": "SHARD", "value": "7"}, {"name": "EXTRA", "value": "1"}],
        }
    ]
    sidecar = _containers(po.expand_prometheus(resource, settings)[0])["config-reloader"]
    assert sidecar["resources"] == {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}
    # Strategic merge order: POD_NAME came before the patched SHARD, the added EXTRA follows it.
    assert sidecar["env"] == [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SHARD", "value": "7"},
        {"name": "EXTRA", "value": "1"},
    ]
    assert sidecar["args"][0] == "--listen-address=:8080"  # untouched fields stay


# --- what is not modelled ---------------------------------------------------------------------------


def test_unmodelled_fields_are_refused_and_config_only_fields_ignored() -> None:
    message = (
        "Prometheus ns/test: spec.thanos changes the pods prometheus-operator builds and is not modelled "
        "(naomi.cluster.prometheus_operator)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        po.expand_prometheus(_prometheus(thanos={}), UPSTREAM_SETTINGS)
    with pytest.raises(
        ValueError, match=r"^Prometheus ns/test: spec.reloadStrategy ProcessSignal is not modelled"
    ):
        po.expand_prometheus(_prometheus(reloadStrategy="ProcessSignal"), UPSTREAM_SETTINGS)
    with pytest.raises(ValueError, match=r"^Alertmanager ns/test: spec.clusterTLS changes the pods"):
        po.expand_alertmanager(_alertmanager(clusterTLS={}), UPSTREAM_SETTINGS)
    with pytest.raises(
        ValueError, match=r"^can't set arguments which are already managed by the operator: web.route-prefix$"
    ):
        po.expand_prometheus(
            _prometheus(additionalArgs=[{"name": "web.route-prefix", "value": "/x"}]), UPSTREAM_SETTINGS
        )
    plain = po.expand_prometheus(_prometheus(), UPSTREAM_SETTINGS)
    configured = po.expand_prometheus(
        _prometheus(scrapeInterval="15s", externalLabels={"a": "b"}), UPSTREAM_SETTINGS
    )
    assert configured == plain


def test_the_operator_skips_paused_resources_and_those_of_another_controller() -> None:
    resource = _prometheus()
    resource["metadata"]["annotations"] = {"operator.prometheus.io/controller-id": "other"}
    assert po.expand_prometheus(resource, UPSTREAM_SETTINGS) == []
    mine = po.OperatorSettings(**{**UPSTREAM_SETTINGS.__dict__, "controller_id": "other"})
    assert len(po.expand_prometheus(resource, mine)) == 2
    assert po.expand_prometheus(_prometheus(), mine) == []
    assert po.expand_prometheus(_prometheus(paused=True), UPSTREAM_SETTINGS) == []
    assert po.expand_alertmanager(_alertmanager(paused=True), UPSTREAM_SETTINGS) == []


@pytest.mark.parametrize(("maximum", "period", "threshold"), [(None, 15, 60), (600, 60, 10), (90, 45, 2)])
def test_upstream_prometheus_startup_probe(maximum: int | None, period: int, threshold: int) -> None:
    # TestStartupProbeTimeoutSeconds (+ one case of the ceiling arithmetic).
    spec = {} if maximum is None else {"maximumStartupDurationSeconds": maximum}
    server = po.expand_prometheus(_prometheus(**spec), UPSTREAM_SETTINGS)[0]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert (server["startupProbe"]["periodSeconds"], server["startupProbe"]["failureThreshold"]) == (
        period,
        threshold,
    )
