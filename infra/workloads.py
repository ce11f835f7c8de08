"""The workloads layer: pipelines registered in Flyte, seed data, schedules and retraining triggers.

Everything runs inside the cluster from the naomi-workloads image, so the operator's machine needs
no route to Flyte or the object store and nobody types an IP:
- a registration Job registers the pipelines' workflows and launch plans in Flyte under the
  workloads version: with `images.build` a hash of `workloads/` (a code change renames the Job
  and changes the version in the preview; unchanged code changes nothing), without it the version
  stamped into the pinned release image (`images/release.json`). The image carries its own stamp
  (written at build time) and the Job refuses to register when the two differ. Ray tasks get
  their RayJob shape from the stack's Ray pools (`rayJob` in the plan: one worker group per pool
  on its architecture, with the pool's resources and custom resource; autoscaling off). It
  activates the scheduled launch plans (`retraining.triggers[]` of kind `schedule`) and, for each
  pipeline whose model has no `champion` yet, launches the first training once (a bare cluster:
  its promotion brings serving up);
- a seed Job uploads the embedded datasets to the `datasets` bucket if they are missing;
- metric triggers become a PrometheusRule (alert `naomi_trigger=<name>`, with recording rules for
  model quality over the series the serving apps export: `naomi_serving_feedback*` from the
  generic server, `ray_naomi_serving_feedback*` from Ray Serve) and the trigger receiver
  (Deployment + Service) that Alertmanager calls with a generated bearer token; the receiver
  launches the workflow through FlyteRemote with de-duplication and cooldown kept in the object
  store (they survive a restart).

Schedules, triggers and the first training pass each pipeline's stored dataset key (the seeded or
the user's data), never synthetic data unless the inputs ask for it.
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
from infra.mlflow import Mlflow, client_secret
from infra.monitoring import TRIGGER_TOKEN_SECRET as TOKEN_SECRET
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.ray import RayPlatformArgs, RayPool, worker_group
from infra.serving import mlflow_env
from workloads import catalogue
from workloads.version import tree_version

RECEIVER = "trigger-receiver"
RECEIVER_PORT = 8080
UID = 10001
PROJECT = "naomi"
DOMAIN = "production"
TASK_STORE = "s3://datasets"  # where pipelines keep data, models and checkpoints (NAOMI_STORE)
RAY_JOB_TTL_SECONDS = 3600
RELEASE_FILE = "images/release.json"  # the workloads version stamped into the release images


def quality_rule(pipeline: catalogue.Pipeline) -> dict[str, str]:
    """Mean error against ground truth posted to /feedback, over whichever runtime serves the model:
    the generic server exports `naomi_serving_feedback*_total`, Ray Serve (through Ray's metrics
    port) `ray_naomi_serving_feedback*_total` (workloads/common/serving.py)."""
    selector = f'model="{pipeline.model}"'
    window = pipeline.quality_window

    def rate(series: str) -> str:
        return f'sum(rate({{__name__=~"(ray_)?{series}",{selector}}}[{window}]))'

    return {
        "record": pipeline.quality_record,
        "expr": f"{rate('naomi_serving_feedback_error_total')} / {rate('naomi_serving_feedback_total')}",
    }


RECORDING_RULES = [quality_rule(p) for p in catalogue.PIPELINES]


def workloads_version(root: Path) -> str:
    """The pipelines' version: a hash of `workloads/`, 16 hex digits; the image build stamps the
    same function's result into naomi-workloads (`workloads.version`)."""
    return tree_version(root)


def release_workloads_version(root: Path) -> str:
    """The workloads version stamped into the pinned release images (`images.build: false`)."""
    document = json.loads((root / RELEASE_FILE).read_text(encoding="utf-8"))
    return str(document["workloadsVersion"])


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
    ray_pools: tuple[RayPool, ...] = ()  # the stack's Ray pools: one RayJob worker group each
    ray_head: Resources | None = None
    monitoring_release: pulumi.Resource | None = None

    def __post_init__(self) -> None:
        if self.triggers and self.monitoring_namespace is None:
            raise ValueError(
                "WorkloadsArgs.triggers: metric triggers need monitoring (Prometheus and Alertmanager)"
            )


def with_dataset(workflow: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A retrain's inputs: the pipeline's stored dataset unless the trigger names another."""
    return {"dataset": catalogue.by_workflow(workflow).dataset, **inputs}


def ray_job_shape(pools: tuple[RayPool, ...], head: Resources) -> dict[str, Any]:
    """The RayJob a Flyte Ray task becomes (`workloads.common.flyte_tasks.ray_job_config` builds
    flytekitplugins-ray's RayJobConfig from it): a CPU-less head and one worker group per pool,
    with the resources the platform's RayCluster gives that pool (`infra.ray.worker_group`).
    Autoscaling stays off: Flyte's autoscaler sidecar has no securityContext, which the
    workloads namespace's `restricted` Pod Security level rejects."""
    cluster = RayPlatformArgs(namespace="", pools=pools, head=head, operator=head)
    workers = []
    for pool in pools:
        resources = worker_group(cluster, pool)["template"]["spec"]["containers"][0]["resources"]
        workers.append(
            {
                "group": pool.name,
                "arch": pool.arch,
                "replicas": min(max(pool.min, 1), pool.max),
                "min": pool.min,
                "max": pool.max,
                "cpu": resources["requests"]["cpu"],
                "memory": resources["requests"]["memory"],
                "cpuLimit": resources["limits"]["cpu"],
                "memoryLimit": resources["limits"]["memory"],
            }
        )
    return {
        "headStartParams": {"num-cpus": "0"},
        "head": {
            "cpu": head.cpu_request,
            "memory": head.memory_request,
            "cpuLimit": head.cpu_limit,
            "memoryLimit": head.memory_limit,
        },
        "workers": workers,
        "autoscaling": False,
        "ttlSecondsAfterFinished": RAY_JOB_TTL_SECONDS,
    }


def registration_plan(args: WorkloadsArgs) -> dict[str, Any]:
    """What the registration Job registers (mounted as JSON; `workloads.register` reads it)."""
    plan: dict[str, Any] = {
        "project": PROJECT,
        "domain": DOMAIN,
        "version": args.version,
        "pipelines": list(args.pipelines),
        "schedules": [
            {
                "name": s.name,
                "workflow": s.workflow,
                "cron": s.cron,
                "inputs": with_dataset(s.workflow, s.inputs),
            }
            for s in args.schedules
        ],
    }
    if args.ray_pools and args.ray_head is not None:
        plan["rayJob"] = ray_job_shape(args.ray_pools, args.ray_head)
    return plan


def trigger_rules(args: WorkloadsArgs) -> dict[str, Any]:
    """The receiver's rules file."""
    return {
        "triggers": [
            {
                "name": t.name,
                "workflow": t.workflow,
                "inputs": with_dataset(t.workflow, t.inputs),
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
                *mlflow_env(),  # is there a champion yet? (else the first training runs)
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
                {"name": "NAOMI_STORE", "value": TASK_STORE},
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
                # De-duplication and cooldown state, kept in the object store.
                {"name": "NAOMI_STORE", "value": TASK_STORE},
                {"name": "AWS_ENDPOINT_URL", "value": args.object_store_endpoint},
                pods.secret_env("AWS_ACCESS_KEY_ID", args.storage_secret, "AWS_ACCESS_KEY_ID"),
                pods.secret_env("AWS_SECRET_ACCESS_KEY", args.storage_secret, "AWS_SECRET_ACCESS_KEY"),
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
        # One replica with Recreate: one writer of the de-duplication and cooldown state.
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
    """The registration Job talks to FlyteAdmin and asks MLflow for champions (else it launches the
    first training), the seed Job to the object store, Alertmanager to the trigger receiver,
    which launches workflows through FlyteAdmin and keeps its state in the object store."""
    register = job_pods(args.namespace, "workloads-register")
    flows = [
        args.flyte.client(register, "pipeline registration"),
        args.mlflow.client(register, "is there a champion yet (else the first training runs)"),
    ]
    if args.seed_data:
        flows.append(args.object_store.client(job_pods(args.namespace, "workloads-seed"), "seed datasets"))
    if args.triggers:
        receiver = Pods(args.namespace, selector_labels(RECEIVER, RECEIVER), RECEIVER)
        flows.append(args.flyte.client(receiver, "the trigger receiver launches retraining"))
        flows.append(args.object_store.client(receiver, "the trigger receiver's de-duplication and cooldown"))
        if args.alertmanager is not None:
            flows.append(
                Flow(args.alertmanager, receiver, tcp("http"), "Alertmanager posts retraining alerts")
            )
    return Contract(flows=tuple(flows))


def receiver_url(namespace: str) -> str:
    return f"http://{RECEIVER}.{namespace}.svc.cluster.local:{RECEIVER_PORT}/alerts"
