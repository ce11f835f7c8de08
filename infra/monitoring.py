"""Prometheus, Alertmanager and Grafana from the official kube-prometheus-stack chart.

Sized per profile; Grafana's admin comes from a generated Secret and anonymous access is off;
Prometheus, Alertmanager and Grafana are served under `/prometheus`, `/alertmanager` and
`/grafana` through the gateway only. Prometheus selects every ServiceMonitor, PodMonitor and
PrometheusRule in the cluster (not only the chart's). Grafana dashboards for Ray are those the
pinned Ray's own dashboard factory generates, read from `infra/dashboards/ray.json` (written by
`scripts/ray_dashboards.py`, checked fresh by a test) so that deploying needs no Ray; plus a
platform overview dashboard. Alertmanager routes alerts labelled `naomi_trigger` to the retraining
trigger receiver when one is configured. node-exporter is off: it needs host namespaces and
hostPath, which the restricted namespace forbids; node capacity per architecture comes from
kube-state-metrics and usage from the kubelet's cAdvisor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.charts import ReleaseSettings, chart_release
from infra.contract import ClusterNetwork, Contract, Flow, Pods, Route, ScrapeTarget, tcp
from infra.naming import labels
from infra.profiles import Resources
from infra.versions import KUBE_PROMETHEUS_STACK, RAY_VERSION

RELEASE = "monitoring"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ROLE = "grafana-dashboards"  # what Grafana's dashboards sidecar may read
TRIGGER_RECEIVER = "retraining-trigger"
TRIGGER_TOKEN_SECRET = "trigger-receiver-token"  # created by the workloads layer
# Alerts per webhook notification: the receiver launches once per trigger whatever the count, so a
# few are plenty; Alertmanager drops the rest of the list and says how many (`truncatedAlerts`).
TRIGGER_MAX_ALERTS = 20
DASHBOARDS_FILE = Path(__file__).resolve().parent / "dashboards" / "ray.json"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    namespace: str
    base_url: str
    retention: str
    prometheus: Resources
    prometheus_volume: str
    alertmanager: Resources
    grafana: Resources
    operator: Resources
    kube_state_metrics: Resources
    trigger_webhook_url: str | None = None  # the retraining-trigger receiver (workloads layer)
    network: ClusterNetwork
    storage_node_selector: dict[str, str] = field(default_factory=lambda: {"kubernetes.io/arch": "amd64"})
    release: ReleaseSettings = field(default_factory=ReleaseSettings)


_SIDECAR_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "200m", "memory": "128Mi"},
}
_HOOK_JOB_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}
# The chart's default pod securityContext for Prometheus and Alertmanager, stated explicitly.
_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 2000,
    "fsGroup": 2000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
KUBELET_PORT = 10250  # kubelet /metrics, /metrics/cadvisor, /metrics/probes (https-metrics)
COREDNS_METRICS_PORT = 9153


def pods_of(namespace: str) -> dict[str, Pods]:
    """The pods of the release by role, with the labels the chart and the operator give them.

    Chart pods: kube-prometheus-stack 88.5.3 templates (operator `app: kube-prometheus-stack-operator`,
    `release`), grafana 12.11.1 and kube-state-metrics 8.4.0 `app.kubernetes.io/name`/`instance`.
    Prometheus and Alertmanager pods are made by prometheus-operator v0.93.1 from the Prometheus and
    Alertmanager resources (pkg/prometheus/server/statefulset.go, pkg/alertmanager/statefulset.go:
    `app.kubernetes.io/name: prometheus|alertmanager`).
    """
    return {
        "prometheus": Pods(namespace, {"app.kubernetes.io/name": "prometheus"}, "prometheus"),
        "alertmanager": Pods(namespace, {"app.kubernetes.io/name": "alertmanager"}, "alertmanager"),
        "grafana": Pods(
            namespace, {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": RELEASE}, "grafana"
        ),
        "operator": Pods(
            namespace, {"app": "kube-prometheus-stack-operator", "release": RELEASE}, "prometheus-operator"
        ),
        "kube-state-metrics": Pods(
            namespace,
            {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": RELEASE},
            "kube-state-metrics",
        ),
        "admission-create": Pods(
            namespace, {"app": "kube-prometheus-stack-admission-create"}, "admission-create"
        ),
        "admission-patch": Pods(
            namespace, {"app": "kube-prometheus-stack-admission-patch"}, "admission-patch"
        ),
    }


def monitoring_contract(args: MonitoringArgs) -> Contract:
    """Prometheus' own targets (kubelets, CoreDNS, the API server), the controllers' API access,
    the operator's admission webhook, and the three UIs behind the gateway."""
    pods = pods_of(args.namespace)
    network = args.network
    prometheus = pods["prometheus"]
    flows = [
        network.to_api_server(prometheus, "Kubernetes service discovery and the apiserver job"),
        Flow(
            prometheus,
            network.node_addresses,
            tcp(KUBELET_PORT),
            "the kubelet and cAdvisor jobs scrape every node's kubelet",
            "kube-prometheus-stack 88.5.3 templates/exporters/kubelet/servicemonitor.yaml",
        ),
        Flow(
            prometheus,
            Pods("kube-system", {"k8s-app": "kube-dns"}, "kube-dns"),
            tcp(COREDNS_METRICS_PORT),
            "the coreDns job scrapes CoreDNS",
            "kube-prometheus-stack 88.5.3 templates/exporters/core-dns/servicemonitor.yaml",
        ),
        network.to_api_server(
            pods["operator"], "prometheus-operator reconciles Prometheus, Alertmanager and monitors"
        ),
        Flow(
            network.control_plane_addresses,
            pods["operator"],
            tcp("https"),
            "the API server calls the PrometheusRule/AlertmanagerConfig admission webhooks",
            "kube-prometheus-stack 88.5.3 templates/prometheus-operator/admission-webhooks/",
        ),
        network.to_api_server(pods["kube-state-metrics"], "kube-state-metrics lists every object it reports"),
        network.to_api_server(
            pods["grafana"], "Grafana's sidecars watch dashboard and datasource ConfigMaps"
        ),
        network.to_api_server(
            pods["admission-create"], "the hook Job creates the webhook certificate Secret"
        ),
        network.to_api_server(pods["admission-patch"], "the hook Job patches the webhook CA bundle"),
    ]
    routes = (
        Route(
            name="grafana",
            prefix="/grafana",
            service=f"{RELEASE}-grafana",
            port=80,
            backend=pods["grafana"],
            target_port="grafana",
            auth=False,  # Grafana's own login (admin from a Secret, anonymous off)
        ),
        Route(
            name="prometheus",
            prefix="/prometheus",
            service=f"{RELEASE}-kube-prometheus-prometheus",
            port=9090,
            backend=prometheus,
        ),
        Route(
            name="alertmanager",
            prefix="/alertmanager",
            service=f"{RELEASE}-kube-prometheus-alertmanager",
            port=9093,
            backend=pods["alertmanager"],
        ),
    )
    return Contract(routes=routes, flows=tuple(flows))


def scrape_flows(namespace: str, targets: tuple[ScrapeTarget, ...]) -> tuple[Flow, ...]:
    """Prometheus reaches every scrape target the components declare."""
    prometheus = pods_of(namespace)["prometheus"]
    return tuple(
        Flow(
            prometheus, target.pods, tcp(target.port), f"Prometheus scrapes {target.pods.name} {target.path}"
        )
        for target in targets
    )


def monitoring_values(args: MonitoringArgs) -> dict[str, Any]:
    """kube-prometheus-stack values (checked against the chart's values.yaml by the tests)."""
    receivers: list[dict[str, Any]] = [{"name": "null"}]
    routes: list[dict[str, Any]] = []
    if args.trigger_webhook_url:
        receivers.append(
            {
                "name": TRIGGER_RECEIVER,
                "webhook_configs": [
                    {
                        "url": args.trigger_webhook_url,
                        "send_resolved": True,
                        "max_alerts": TRIGGER_MAX_ALERTS,
                        # The receiver's bearer token, mounted from alertmanagerSpec.secrets.
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": f"/etc/alertmanager/secrets/{TRIGGER_TOKEN_SECRET}/token",
                            }
                        },
                    }
                ],
            }
        )
        routes.append(
            {
                "receiver": TRIGGER_RECEIVER,
                "matchers": ['naomi_trigger=~".+"'],
                "group_by": ["naomi_trigger"],
                "group_wait": "30s",
                "repeat_interval": "1h",
                "continue": False,
            }
        )
    alertmanager_spec: dict[str, Any] = {
        "routePrefix": "/alertmanager",
        "externalUrl": f"{args.base_url}/alertmanager",
        "resources": args.alertmanager.spec(),
        "securityContext": _POD_SECURITY,
    }
    if args.trigger_webhook_url:
        alertmanager_spec["secrets"] = [TRIGGER_TOKEN_SECRET]
    return {
        "crds": {"enabled": True},
        "defaultRules": {
            "create": True,
            "rules": {
                "etcd": False,
                "kubeSchedulerAlerting": False,
                "kubeSchedulerRecording": False,
                "kubeControllerManager": False,
                "kubeProxy": False,
                "node": False,
                "nodeExporterAlerting": False,
                "nodeExporterRecording": False,
            },
        },
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "nodeExporter": {"enabled": False},
        "windowsMonitoring": {"enabled": False},
        # The chart's own security contexts are already non-root with RuntimeDefault seccomp.
        # The config reloaders prometheus-operator adds to the Prometheus and Alertmanager pods
        # get requests/limits only from these values (the chart renders each quantity as a
        # `--config-reloader-*` flag defaulting to 0, which the operator reads as "not set":
        # prometheus-operator v0.93 pkg/operator/config.go ResourceRequirements), and probes only
        # with enableProbe (--enable-config-reloader-probes).
        "prometheusOperator": {
            "resources": args.operator.spec(),
            # The certificate hook Jobs (admission-create, admission-patch) render
            # `prometheusOperator.admissionWebhooks.patch.resources` as is, `{}` by default
            # (templates/prometheus-operator/admission-webhooks/job-patch/job-createSecret.yaml).
            "admissionWebhooks": {"patch": {"resources": _HOOK_JOB_RESOURCES}},
            "prometheusConfigReloader": {
                "resources": {
                    "requests": {"cpu": "10m", "memory": "32Mi"},
                    "limits": {"cpu": "100m", "memory": "64Mi"},
                },
                "enableProbe": True,
            },
        },
        "prometheus": {
            "prometheusSpec": {
                "retention": args.retention,
                "routePrefix": "/prometheus",
                "externalUrl": f"{args.base_url}/prometheus",
                "resources": args.prometheus.spec(),
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                # Prometheus keeps its TSDB on a PVC: on a data node, never an SD card.
                "nodeSelector": dict(args.storage_node_selector),
                # restricted needs runAsNonRoot and seccomp at pod level: the operator sets
                # neither on its containers (pkg/prometheus/server/statefulset.go), so pin them
                # here rather than rely on the chart's default.
                "securityContext": _POD_SECURITY,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": args.prometheus_volume}},
                        }
                    }
                },
            }
        },
        "alertmanager": {
            "alertmanagerSpec": alertmanager_spec,
            "config": {
                "global": {"resolve_timeout": "5m"},
                "route": {
                    "receiver": "null",
                    "group_by": ["alertname", "namespace"],
                    "group_wait": "30s",
                    "group_interval": "5m",
                    "repeat_interval": "12h",
                    "routes": routes,
                },
                "receivers": receivers,
                "inhibit_rules": [],
            },
        },
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "resources": args.grafana.spec(),
            "grafana.ini": {
                "server": {"root_url": f"{args.base_url}/grafana/", "serve_from_sub_path": True},
                "auth.anonymous": {"enabled": False},
                "security": {"allow_embedding": True, "cookie_secure": True, "disable_gravatar": True},
                "analytics": {"reporting_enabled": False, "check_for_updates": False},
                "users": {"allow_sign_up": False},
            },
            # Dashboards come from ConfigMaps in this namespace only, read by a namespaced Role
            # (grafana 12.11.1 templates/role.yaml with rbac.namespaced; searchNamespace ALL made
            # it a ClusterRole reading every Secret in the cluster). The Prometheus datasource
            # is provisioned statically instead of by a second sidecar: the chart gives all
            # sidecars one liveness/readiness probe, and each sidecar serves /healthz on its own
            # HEALTH_PORT (templates/_helpers.tpl grafana.sidecar.*.healthPort: dashboards 8084).
            # The chart's own Role always adds `secrets` (templates/role.yaml); ours reads
            # ConfigMaps only, which is all the dashboards sidecar watches.
            "rbac": {"namespaced": True, "useExistingRole": GRAFANA_ROLE},
            "sidecar": {
                "resources": _SIDECAR_RESOURCES,
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8084}, "periodSeconds": 20},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8084}, "periodSeconds": 10},
                "dashboards": {
                    "enabled": True,
                    "label": "grafana_dashboard",
                    "labelValue": "1",
                    "resource": "configmap",
                },
                "datasources": {"enabled": False},
            },
            "datasources": {
                "datasources.yaml": {
                    "apiVersion": 1,
                    "datasources": [
                        {
                            "name": "Prometheus",
                            "uid": "prometheus",
                            "type": "prometheus",
                            "access": "proxy",
                            "isDefault": True,
                            "url": f"http://{RELEASE}-kube-prometheus-prometheus.{args.namespace}:9090/prometheus",
                        }
                    ],
                }
            },
            "defaultDashboardsEnabled": True,
        },
        "kube-state-metrics": {
            "resources": args.kube_state_metrics.spec(),
            "metricLabelsAllowlist": ["nodes=[kubernetes.io/arch,naomi.io/board,naomi.io/role]"],
        },
    }


def ray_dashboards() -> dict[str, str]:
    """Ray's Grafana dashboards for the pinned Ray, by ConfigMap file name (compact JSON)."""
    document = json.loads(DASHBOARDS_FILE.read_text(encoding="utf-8"))
    if document["ray"] != RAY_VERSION:
        raise RuntimeError(
            f"{DASHBOARDS_FILE.name} holds the dashboards of Ray {document['ray']} but the cluster runs "
            f"{RAY_VERSION}: run .venv/bin/python scripts/ray_dashboards.py"
        )
    return {
        name: json.dumps(dashboard, sort_keys=True, separators=(",", ":"))
        for name, dashboard in document["dashboards"].items()
    }


def overview_dashboard() -> dict[str, Any]:
    """The platform at a glance: capacity per architecture, Ray, serving, training, triggers."""

    def panel(index: int, title: str, expr: str, unit: str = "short") -> dict[str, Any]:
        return {
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"expr": expr, "refId": "A", "legendFormat": "__auto"}],
        }

    arch_join = "* on(node) group_left(label_kubernetes_io_arch) kube_node_labels"
    panels = [
        (
            "Allocatable CPU by architecture",
            f'sum by (label_kubernetes_io_arch) (kube_node_status_allocatable{{resource="cpu"}} {arch_join})',
            "short",
        ),
        (
            "Allocatable memory by architecture",
            f'sum by (label_kubernetes_io_arch) (kube_node_status_allocatable{{resource="memory"}} {arch_join})',
            "bytes",
        ),
        (
            "Requested CPU by node",
            'sum by (node) (kube_pod_container_resource_requests{resource="cpu"})',
            "short",
        ),
        ("Ray nodes by pool", 'sum by (ray_io_cluster, naomi_io_ray_pool) (up{job=~"ray-.*"})', "short"),
        (
            "Serving p99 latency",
            "histogram_quantile(0.99, sum by (le, model) (rate(naomi_serving_request_seconds_bucket[5m])))",
            "s",
        ),
        ("Serving errors per second", "sum by (model) (rate(naomi_serving_errors_total[5m]))", "reqps"),
        ("Training runs", "sum by (pipeline, outcome) (increase(naomi_training_runs_total[1h]))", "short"),
        ("Retraining triggers fired", "sum by (trigger) (increase(naomi_trigger_fired_total[1h]))", "short"),
    ]
    return {
        "uid": "naomi-overview",
        "title": "naomi platform overview",
        "schemaVersion": 39,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "tags": ["naomi"],
        "panels": [panel(i, title, expr, unit) for i, (title, expr, unit) in enumerate(panels)],
    }


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack release, Grafana admin Secret, dashboards."""

    release: k8s.helm.v3.Release
    grafana_admin: pulumi.Output[dict[str, str]]
    contract: Contract

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={
                "name": GRAFANA_ADMIN_SECRET,
                "namespace": args.namespace,
                "labels": labels("grafana", name),
            },
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=child,
        )
        self.grafana_admin = pulumi.Output.secret(
            password.result.apply(lambda p: {"username": "admin", "password": p})
        )
        k8s.rbac.v1.Role(
            f"{name}-grafana-role",
            metadata={"name": GRAFANA_ROLE, "namespace": args.namespace, "labels": labels("grafana", name)},
            rules=[{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
            opts=child,
        )
        # Helm release; the prometheus-operator CRDs (ServiceMonitor, PodMonitor,
        # PrometheusRule, ...) that other components' custom resources depend on are applied
        # before it (infra.charts, a ConfigGroup, from the chart archive, upgraded with it). Other
        # components depend on the release, so on the CRDs and the running operator.
        self.release, _ = chart_release(
            name,
            chart=KUBE_PROMETHEUS_STACK,
            release=RELEASE,
            namespace=args.namespace,
            values=monitoring_values(args),
            settings=args.release,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[admin]),
        )
        dashboards = {
            **ray_dashboards(),
            "naomi-overview.json": json.dumps(overview_dashboard(), sort_keys=True),
        }
        for file_name, content in sorted(dashboards.items()):
            config_name = f"dashboard-{file_name.removesuffix('.json').lower()}"[:63]
            k8s.core.v1.ConfigMap(
                f"{name}-{config_name}",
                metadata={
                    "name": config_name,
                    "namespace": args.namespace,
                    "labels": {**labels("grafana", name), "grafana_dashboard": "1"},
                },
                data={file_name: content},
                opts=child,
            )
        self.pods = pods_of(args.namespace)
        self.contract = monitoring_contract(args)
        self.register_outputs({"grafanaAdmin": self.grafana_admin})
