"""The S3 object store: a MinIO-API server (StatefulSet + PVC) or an external S3 endpoint.

Root credentials are generated (`infra.credentials`, generation
`naomi:credentials.rotation.objectStore`) into a Secret used only by the server, the setup Job and
the console login. Each consumer (MLflow, Flyte, backups, ...) gets its own user with a policy
limited to its buckets and its own Secret. Buckets, users and policies are reconciled by an
idempotent Job (`workloads/ops/object_store.py` on naomi-mlflow: minio-py's admin client, no `mc`
binary or shell) whose name carries a hash of its script, its plan and the credential generation,
so a change or a rotation re-runs it and nothing else does. Rotating the root credentials restarts
the server (its pod template carries the generation): without a KMS, MinIO keeps IAM data in plain
text since RELEASE.2021-04-22 (minio/minio `docs/kms/IAM.md`), so new root credentials need no
migration. Consumers never copy credentials: they read their Secret by reference
(`consumer_secret`). In external mode nothing is deployed and every consumer Secret holds the
credentials from secret stack config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from infra import credentials, pods
from infra.contract import Addresses, Contract, Flow, Pods, Route, tcp
from infra.naming import labels, selector_labels
from infra.profiles import Resources
from infra.versions import MINIO_IMAGE, MINIO_RELEASE

S3_PORT = 9000
CONSOLE_PORT = 9001
MINIO_UID = 10001  # high UID (checkov CKV_K8S_40); the image runs as any UID
OPS_MOUNT = "/etc/naomi/ops"
SETUP_SCRIPT = Path(__file__).resolve().parent.parent / "workloads" / "ops" / "object_store.py"


@dataclass(frozen=True, kw_only=True)
class ExternalS3:
    endpoint: str
    region: str
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class ObjectStoreArgs:
    namespace: str
    mode: Literal["minio", "external"] = "minio"
    buckets: tuple[str, ...] = ("datasets", "mlflow", "flyte", "ray", "backups")
    image: pulumi.Input[str] = MINIO_IMAGE  # naomi-minio's release build, or its built digest
    # naomi-mlflow (Python + minio-py): runs the setup Job; required in minio mode
    client_image: pulumi.Input[str] | None = None
    volume_size: str = "20Gi"
    storage_node_selector: dict[str, str] = field(default_factory=lambda: {"kubernetes.io/arch": "amd64"})
    resources: Resources
    job_resources: Resources
    external: ExternalS3 | None = None
    console_url: str | None = None  # the console's public URL behind the gateway
    pod_cidr: str = "10.1.0.0/16"  # external mode: egress to the endpoint goes anywhere but here
    # consumer -> the buckets its credentials may use (read and write)
    consumers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    generation: int = 1  # naomi:credentials.rotation.objectStore

    def __post_init__(self) -> None:
        for consumer, buckets in self.consumers.items():
            if not consumer.replace("-", "").isalnum() or not consumer.islower():
                raise ValueError(
                    f"ObjectStoreArgs.consumers: {consumer!r} must be lower-case letters, digits, '-'"
                )
            unknown = sorted(set(buckets) - set(self.buckets))
            if unknown:
                raise ValueError(f"ObjectStoreArgs.consumers[{consumer!r}]: unknown buckets {unknown}")
        if self.mode == "external" and self.external is None:
            raise ValueError("ObjectStoreArgs.external is required when mode is 'external'")
        if not self.buckets:
            raise ValueError("ObjectStoreArgs.buckets must name at least one bucket")
        if self.mode == "minio" and self.client_image is None:
            raise ValueError("ObjectStoreArgs.client_image is required when mode is 'minio'")
        if self.generation < 1:
            raise ValueError("ObjectStoreArgs.generation must be >= 1")


def setup_plan(args: ObjectStoreArgs) -> dict[str, Any]:
    """What the setup Job reconciles: the buckets, and per consumer its buckets and key variables."""
    return {
        "buckets": sorted(args.buckets),
        "consumers": [
            {
                "name": consumer,
                "buckets": sorted(buckets),
                "userEnv": f"USER_{consumer.upper().replace('-', '_')}",
                "secretEnv": f"SECRET_{consumer.upper().replace('-', '_')}",
            }
            for consumer, buckets in sorted(args.consumers.items())
        ],
    }


class ObjectStore(pulumi.ComponentResource):
    """S3 endpoint plus a credentials Secret that consumers reference."""

    endpoint: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    region: str
    console_url: str | None  # None when nothing is deployed (external mode)
    root_credentials: pulumi.Output[dict[str, str]]  # secret: console login
    generation: int  # of the generated credentials (external mode: not ours to rotate)
    # What a consumer's own resources wait for (buckets and users exist, keys current). Pass them to
    # the consumer's resources themselves: Pulumi does not make a component's children wait for the
    # component's depends_on (pulumi/pulumi#8721).
    ready: list[pulumi.Resource]

    SECRET_KEYS = ("accessKey", "secretKey")

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:ObjectStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.generation = args.generation
        self.console_url = args.console_url if args.mode == "minio" else None
        self._args = args
        self.pods = Pods(args.namespace, selector_labels("object-store", name), "object-store")
        self.contract = Contract(
            routes=(
                Route(
                    name="object-store-console",
                    prefix="/minio",
                    service=name,
                    port=CONSOLE_PORT,
                    backend=self.pods,
                    target_port="console",
                    strip_prefix=True,
                ),
            )
            if args.mode == "minio"
            else (),
            flows=(self.client(self.pods_named("object-store-buckets", name), "bucket and user setup Job"),)
            if args.mode == "minio"
            else (),
        )
        if args.mode == "external":
            assert args.external is not None
            access_key: pulumi.Input[str] = args.external.access_key
            secret_key: pulumi.Input[str] = args.external.secret_key
            self.region = args.external.region
        else:
            access_key = credentials.access_key(
                f"{name}-root-user", generation=args.generation, opts=child
            ).result
            secret_key = credentials.password(
                f"{name}-root-password", generation=args.generation, length=40, opts=child
            ).result
            self.region = "us-east-1"
        self.secret_name, self.root_credentials = self._credentials(
            f"{name}-credentials", name, args, access_key, secret_key, child
        )
        self._consumers: dict[str, tuple[pulumi.Output[str], pulumi.Output[dict[str, str]]]] = {}
        for consumer in sorted(args.consumers):
            if args.mode == "external":
                consumer_key, consumer_secret = access_key, secret_key
            else:
                consumer_key = f"naomi-{consumer}"
                consumer_secret = credentials.password(
                    f"{name}-{consumer}", generation=args.generation, length=40, opts=child
                ).result
            self._consumers[consumer] = self._credentials(
                f"{name}-{consumer}", name, args, consumer_key, consumer_secret, child
            )
        self.ready = []
        if args.mode == "external":
            assert args.external is not None
            self.endpoint = pulumi.Output.from_input(args.external.endpoint)
            self.register_outputs({"endpoint": self.endpoint, "secretName": self.secret_name})
            return

        service = k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": labels("object-store", name)},
            spec={
                "type": "ClusterIP",
                "selector": selector_labels("object-store", name),
                "ports": [
                    {"name": "s3", "port": S3_PORT, "targetPort": "s3"},
                    {"name": "console", "port": CONSOLE_PORT, "targetPort": "console"},
                ],
            },
            opts=child,
        )
        credentials_env = [
            pods.secret_env("MINIO_ROOT_USER", self.secret_name, "accessKey"),
            pods.secret_env("MINIO_ROOT_PASSWORD", self.secret_name, "secretKey"),
        ]
        self._server = pods.stateful_set(
            name,
            component="object-store",
            instance=name,
            namespace=args.namespace,
            version=args.image if isinstance(args.image, str) else MINIO_RELEASE,
            uid=MINIO_UID,
            container=pods.container(
                "minio",
                args.image,
                args.resources,
                args=["server", "/data", "--address", f":{S3_PORT}", "--console-address", f":{CONSOLE_PORT}"],
                env=[
                    *credentials_env,
                    {"name": "HOME", "value": "/tmp"},
                    *(
                        [{"name": "MINIO_BROWSER_REDIRECT_URL", "value": args.console_url}]
                        if args.console_url
                        else [{"name": "MINIO_BROWSER", "value": "off"}]
                    ),
                ],
                ports=[
                    {"name": "s3", "containerPort": S3_PORT},
                    {"name": "console", "containerPort": CONSOLE_PORT},
                ],
                readinessProbe=pods.http_probe("/minio/health/ready", "s3"),
                livenessProbe=pods.http_probe("/minio/health/live", "s3", initial_delay=15),
                volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
            ),
            volume_size=args.volume_size,
            node_selector=args.storage_node_selector,
            volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
            pod_annotations=credentials.annotation({"objectStore": args.generation}),
            opts=child,
        )
        self.endpoint = pulumi.Output.concat(
            "http://", service.metadata.name, ".", args.namespace, f".svc.cluster.local:{S3_PORT}"
        )
        self.ready = [self._bucket_job(name, args, credentials_env, child)]
        self.register_outputs({"endpoint": self.endpoint, "secretName": self.secret_name})

    def _bucket_job(
        self,
        name: str,
        args: ObjectStoreArgs,
        root_env: list[dict[str, Any]],
        child: pulumi.ResourceOptions,
    ) -> k8s.batch.v1.Job:
        assert args.client_image is not None  # checked by ObjectStoreArgs in minio mode
        plan = setup_plan(args)
        consumer_env: list[dict[str, Any]] = []
        for consumer in plan["consumers"]:
            secret_name = self._consumers[consumer["name"]][0]
            consumer_env += [
                pods.secret_env(consumer["userEnv"], secret_name, "accessKey"),
                pods.secret_env(consumer["secretEnv"], secret_name, "secretKey"),
            ]
        plan_text = json.dumps(plan, indent=2, sort_keys=True)
        script = SETUP_SCRIPT.read_text()
        suffix = credentials.job_suffix(script, {"objectStore": args.generation}, plan_text)
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-setup",
            metadata={
                "name": f"{name}-setup-{suffix}",
                "namespace": args.namespace,
                "labels": labels("object-store-buckets", name),
            },
            data={"object_store.py": script, "buckets.json": plan_text},
            opts=child,
        )
        return k8s.batch.v1.Job(
            f"{name}-buckets",
            metadata={
                "name": f"{name}-buckets-{suffix}",
                "namespace": args.namespace,
                "labels": labels("object-store-buckets", name),
            },
            spec={
                "backoffLimit": 10,
                "ttlSecondsAfterFinished": 86400,
                "template": pods.job_pod_template(
                    "object-store-buckets",
                    name,
                    MINIO_UID,
                    [
                        pods.container(
                            "buckets",
                            args.client_image,
                            args.job_resources,
                            command=[
                                "python",
                                f"{OPS_MOUNT}/object_store.py",
                                "--plan",
                                f"{OPS_MOUNT}/buckets.json",
                            ],
                            env=[
                                *root_env,
                                *consumer_env,
                                {"name": "S3_ENDPOINT", "value": self.endpoint},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            volumeMounts=[
                                {"name": "ops", "mountPath": OPS_MOUNT, "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        )
                    ],
                    volumes=[
                        {"name": "ops", "configMap": {"name": scripts.metadata.name}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                ),
            },
            # After the server's rollout: a rotation restarts it with the new root credentials.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._server]),
        )

    @staticmethod
    def _credentials(
        secret_name: str,
        name: str,
        args: ObjectStoreArgs,
        access_key: pulumi.Input[str],
        secret_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> tuple[pulumi.Output[str], pulumi.Output[dict[str, str]]]:
        """A Secret with `accessKey`/`secretKey`; returns its name and the keys as a secret Output."""
        secret = k8s.core.v1.Secret(
            secret_name,
            metadata={
                "name": secret_name,
                "namespace": args.namespace,
                "labels": labels("object-store", name),
            },
            type="Opaque",
            string_data={"accessKey": access_key, "secretKey": secret_key},
            opts=opts,
        )
        keys = pulumi.Output.all(access_key, secret_key).apply(
            lambda k: {"accessKey": k[0], "secretKey": k[1]}
        )
        return secret.metadata.name, pulumi.Output.secret(keys)

    def pods_named(self, component: str, instance: str) -> Pods:
        return Pods(self._args.namespace, selector_labels(component, instance), component)

    def client(self, pods: Pods, why: str) -> Flow:
        """The flow a consumer needs to reach the S3 API (the server's pods, or the external endpoint)."""
        if self._args.mode == "external":
            assert self._args.external is not None
            port = _port_of(self._args.external.endpoint)
            outside = Addresses("external S3", ("0.0.0.0/0",), excluded=(self._args.pod_cidr,))
            return Flow(pods, outside, tcp(port), f"{why}: S3 API at {self._args.external.endpoint}")
        return Flow(pods, self.pods, tcp("s3"), f"{why}: S3 API")

    def consumer_secret(self, consumer: str) -> pulumi.Output[str]:
        """Name of the consumer's Secret (`accessKey`, `secretKey`), limited to its buckets."""
        return self._consumer(consumer)[0]

    def consumer_credentials(self, consumer: str) -> pulumi.Output[dict[str, str]]:
        """The consumer's keys as a secret Output (for Secrets in other namespaces)."""
        return self._consumer(consumer)[1]

    def _consumer(self, consumer: str) -> tuple[pulumi.Output[str], pulumi.Output[dict[str, str]]]:
        if consumer not in self._consumers:
            raise KeyError(
                f"no object-store consumer {consumer!r}; consumers: {', '.join(sorted(self._consumers))}"
            )
        return self._consumers[consumer]


def _port_of(endpoint: str) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    return parts.port or (443 if parts.scheme == "https" else 80)
