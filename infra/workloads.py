"""The workloads layer: pipelines registered in Flyte, seed data, schedules and retraining triggers.

Everything runs inside the cluster from the naomi-workloads image, so the operator's machine needs
no route to Flyte or the object store and nobody types an IP:
- a registration Job registers the pipelines' workflows and launch plans in Flyte under a version
  that is a hash of `workloads/` (a code change renames the Job and changes the version in the
  preview; unchanged code changes nothing), and activates the scheduled launch plans
  (`retraining.triggers[]` of kind `schedule`);
- a seed Job uploads the embedded datasets to the `datasets` bucket if they are missing;
- metric triggers become a PrometheusRule (alert `naomi_trigger=<name>`, with recording rules for
  model quality) and the trigger receiver (Deployment + Service) that Alertmanager calls with a
  generated bearer token; the receiver launches the workflow through FlyteRemote with
  de-duplication and cooldown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import pods
from infra.contract import Contract, Flow, Pods, Reachable, tcp
from infra.images import tree_hash
from infra.mlflow import Mlflow, client_secret
from infra.monitoring import TRIGGER_TOKEN_SECRET as TOKEN_SECRET
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.serving import mlflow_env

RECEIVER = "trigger-receiver"
RECEIVER_PORT = 8080
UID = 10001
PROJECT = "naomi"
DOMAIN = "production"
# Recording rules the example triggers use: mean error against ground truth posted to /feedback.
RECORDING_RULES = [
    {
        "record": "naomi:qoe_abs_error:mean5m",
        "expr": 'sum(rate(naomi_serving_error_sum{model="qoe"}[5m])) / sum(rate(naomi_serving_error_count{model="qoe"}[5m]))',
    },
    {
        "record": "naomi:mnist_error_rate:mean1h",
        "expr": 'sum(rate(naomi_serving_error_sum{model="mnist"}[1h])) / sum(rate(naomi_serving_error_count{model="mnist"}[1h]))',
    },
]


def workloads_version(root: Path) -> str:
    """The pipelines' version: a hash of `workloads/` (see `infra.images.tree_hash`), 16 hex digits."""
    return tree_hash(root, ("workloads",))[:16]


def seconds(duration: str) -> int:
    """'15m', '6h', '7d', '30s' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(duration[:-1]) * units[duration[-1]]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    name: str
    workflow: str
    cron: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricTrigger:
    name: str
    workflow: str
    expr: str
    for_: str | None
    cooldown: str | None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def alert(self) -> str:
        return "NaomiRetrain_" + self.name.replace("-", "_")


@dataclass(frozen=True, kw_only=True)
class WorkloadsArgs:
    namespace: str
    monitoring_namespace: str | None
    image: pulumi.Input[str]  # naomi-workloads
    version: str  # workloads_version(project root)
    pipelines: tuple[str, ...]
    seed_data: bool
    schedules: tuple[Schedule, ...]
    triggers: tuple[MetricTrigger, ...]
    flyte_endpoint: str  # host:port of FlyteAdmin's gRPC API
    object_store_endpoint: pulumi.Input[str]  # http(s)://host:port
    storage_secret: str  # S3 credentials Secret in `namespace` (Flyte's task storage Secret)
    mlflow: Mlflow
    flyte: Reachable  # FlyteAdmin's gRPC API (registration, launches)
    object_store: Reachable  # seed data
    alertmanager: Pods | None = None  # who calls the trigger receiver
    job: Resources
    receiver: Resources
    monitoring_release: pulumi.Resource | None = None

    def __post_init__(self) -> None:
        if self.triggers and self.monitoring_namespace is None:
            raise ValueError(
                "WorkloadsArgs.triggers: metric triggers need monitoring (Prometheus and Alertmanager)"
            )


def registration_plan(args: WorkloadsArgs) -> dict[str, Any]:
    """What the registration Job registers (mounted as JSON; `workloads.register` reads it)."""
    return {
        "project": PROJECT,
        "domain": DOMAIN,
        "version": args.version,
        "pipelines": list(args.pipelines),
        "schedules": [
            {"name": s.name, "workflow": s.workflow, "cron": s.cron, "inputs": s.inputs}
            for s in args.schedules
        ],
    }


def trigger_rules(args: WorkloadsArgs) -> dict[str, Any]:
    """The receiver's rules file."""
    return {
        "triggers": [
            {
                "name": t.name,
                "workflow": t.workflow,
                "inputs": t.inputs,
                "cooldownSeconds": seconds(t.cooldown) if t.cooldown else 0,
            }
            for t in args.triggers
        ]
    }


def prometheus_rules(args: WorkloadsArgs) -> dict[str, Any]:
    alerts = []
    for trigger in args.triggers:
        alert: dict[str, Any] = {
            "alert": trigger.alert,
            "expr": trigger.expr,
            "labels": {"naomi_trigger": trigger.name, "severity": "info"},
            "annotations": {
                "summary": f"retraining trigger {trigger.name}: {trigger.expr}",
                "workflow": trigger.workflow,
            },
        }
        if trigger.for_:
            alert["for"] = trigger.for_
        alerts.append(alert)
    return {
        "groups": [
            {"name": "naomi-model-quality", "rules": RECORDING_RULES},
            {"name": "naomi-retraining", "rules": alerts},
        ]
    }


class Workloads(pulumi.ComponentResource):
    """Registration Job, seed Job, and (with metric triggers) the rule and the receiver."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:workloads:Workloads", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        client = client_secret(f"{name}-mlflow-client", args.namespace, args.mlflow, child)
        after_client = pulumi.ResourceOptions(parent=self, depends_on=[client])
        self._registration(name, args, after_client)
        if args.seed_data:
            self._seed(name, args, child)
        if args.triggers:
            self._triggers(name, args, child)
        self.contract = workloads_contract(args)
        self.register_outputs({"version": args.version})

    def _config_map(
        self, name: str, args: WorkloadsArgs, key: str, document: Any, opts: pulumi.ResourceOptions
    ) -> str:
        k8s.core.v1.ConfigMap(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels("workloads", name)},
            data={key: json.dumps(document, indent=2, sort_keys=True)},
            opts=opts,
        )
        return name

    def _job(
        self,
        resource: str,
        job_name: str,
        args: WorkloadsArgs,
        command: list[str],
        env: list[dict[str, Any]],
        config_map: str | None,
        opts: pulumi.ResourceOptions,
    ) -> None:
        mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}]
        if config_map is not None:
            mounts.append({"name": "config", "mountPath": "/etc/naomi", "readOnly": True})
            volumes.append({"name": "config", "configMap": {"name": config_map}})
        container = pods.container(
            resource,
            args.image,
            args.job,
            command=command,
            env=env,
            volumeMounts=mounts,
        )
        # `workloads-register` / `workloads-seed`: a name that survives version changes, so the
        # NetworkPolicies selecting these pods stay the same when only the code changes.
        component = job_name.rsplit("-", 1)[0]
        template = pods.job_pod_template(component, job_name, UID, [container], volumes=volumes)
        k8s.batch.v1.Job(
            resource,
            metadata={"name": job_name, "namespace": args.namespace, "labels": labels(component, job_name)},
            spec={"backoffLimit": 6, "template": template},
            opts=opts,
        )

    def _registration(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions) -> None:
        plan = self._config_map(
            f"workloads-registration-{args.version[:10]}",
            args,
            "registration.json",
            registration_plan(args),
            opts,
        )
        self._job(
            f"{name}-register",
            f"workloads-register-{args.version[:10]}",
            args,
            ["python", "-m", "workloads.register", "--plan", "/etc/naomi/registration.json"],
            [
                {"name": "FLYTE_ENDPOINT", "value": args.flyte_endpoint},
                {"name": "NAOMI_WORKLOADS_IMAGE", "value": args.image},
                {"name": "HOME", "value": "/tmp"},
            ],
            plan,
            opts,
        )

    def _seed(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions) -> None:
        self._job(
            f"{name}-seed",
            f"workloads-seed-{args.version[:10]}",
            args,
            ["python", "-m", "workloads.seed", *[f"--pipeline={p}" for p in args.pipelines]],
            [
                {"name": "NAOMI_STORE", "value": "s3://datasets"},
                {"name": "AWS_ENDPOINT_URL", "value": args.object_store_endpoint},
                pods.secret_env("AWS_ACCESS_KEY_ID", args.storage_secret, "AWS_ACCESS_KEY_ID"),
                pods.secret_env("AWS_SECRET_ACCESS_KEY", args.storage_secret, "AWS_SECRET_ACCESS_KEY"),
                {"name": "HOME", "value": "/tmp"},
            ],
            None,
            opts,
        )

    def _triggers(self, name: str, args: WorkloadsArgs, child: pulumi.ResourceOptions) -> None:
        assert args.monitoring_namespace is not None
        token = random.RandomPassword(f"{name}-trigger-token", length=40, special=False, opts=child)
        for namespace in (args.namespace, args.monitoring_namespace):
            # The receiver checks it; Alertmanager mounts it (alertmanagerSpec.secrets).
            k8s.core.v1.Secret(
                f"{name}-trigger-token-{namespace}",
                metadata={"name": TOKEN_SECRET, "namespace": namespace, "labels": labels(RECEIVER, name)},
                type="Opaque",
                string_data={"token": token.result},
                opts=child,
            )
        rules = self._config_map("trigger-rules", args, "triggers.json", trigger_rules(args), child)
        container = pods.container(
            RECEIVER,
            args.image,
            args.receiver,
            command=[
                "python",
                "-m",
                "workloads.triggers.receiver",
                "--rules",
                "/etc/naomi/triggers.json",
                "--host",
                "0.0.0.0",
            ],
            env=[
                {"name": "FLYTE_ENDPOINT", "value": args.flyte_endpoint},
                {"name": "FLYTE_PROJECT", "value": PROJECT},
                {"name": "FLYTE_DOMAIN", "value": DOMAIN},
                {"name": "NAOMI_WORKLOADS_VERSION", "value": args.version},
                pods.secret_env("TRIGGER_TOKEN", TOKEN_SECRET, "token"),
                {"name": "HOME", "value": "/tmp"},
                *mlflow_env(),
            ],
            ports=[{"name": "http", "containerPort": RECEIVER_PORT}],
            readinessProbe=pods.http_probe("/healthz", "http"),
            livenessProbe=pods.http_probe("/healthz", "http", period=20, initial_delay=20),
            volumeMounts=[
                {"name": "rules", "mountPath": "/etc/naomi", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
        selector = selector_labels(RECEIVER, RECEIVER)
        # One replica with Recreate: de-duplication and cooldown state live in the process.
        k8s.apps.v1.Deployment(
            f"{name}-receiver",
            metadata={"name": RECEIVER, "namespace": args.namespace, "labels": labels(RECEIVER, RECEIVER)},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels(RECEIVER, RECEIVER)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security_context(UID),
                        "containers": [container],
                        "volumes": [
                            {"name": "rules", "configMap": {"name": rules}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        ],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-receiver",
            metadata={"name": RECEIVER, "namespace": args.namespace, "labels": labels(RECEIVER, RECEIVER)},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": RECEIVER_PORT, "targetPort": "http"}],
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": "naomi-retraining",
                "namespace": args.namespace,
                "labels": labels("workloads", name),
            },
            spec=prometheus_rules(args),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.monitoring_release] if args.monitoring_release else []
            ),
        )


def job_pods(namespace: str, component: str) -> Pods:
    """Every run of a workloads Job (`workloads-register`, `workloads-seed`), whatever its version."""
    return Pods(namespace, {"app.kubernetes.io/name": component}, component)


def workloads_contract(args: WorkloadsArgs) -> Contract:
    """The registration Job talks to FlyteAdmin, the seed Job to the object store, Alertmanager
    to the trigger receiver, which launches workflows through FlyteAdmin."""
    flows = [args.flyte.client(job_pods(args.namespace, "workloads-register"), "pipeline registration")]
    if args.seed_data:
        flows.append(args.object_store.client(job_pods(args.namespace, "workloads-seed"), "seed datasets"))
    if args.triggers:
        receiver = Pods(args.namespace, selector_labels(RECEIVER, RECEIVER), RECEIVER)
        flows.append(args.flyte.client(receiver, "the trigger receiver launches retraining"))
        if args.alertmanager is not None:
            flows.append(
                Flow(args.alertmanager, receiver, tcp("http"), "Alertmanager posts retraining alerts")
            )
    return Contract(flows=tuple(flows))


def receiver_url(namespace: str) -> str:
    return f"http://{RECEIVER}.{namespace}.svc.cluster.local:{RECEIVER_PORT}/alerts"
