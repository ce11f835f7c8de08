"""The typed stack configuration: one strict model, parsed once by the stack program.

A stack file's `naomi:*` keys become one `StackConfig`. Unknown keys are errors, every error
names the full key path (`naomi:cluster.nodes[2].arch`) and what is allowed, and parsing
happens before any resource is registered. Secret values (SSH key, kubeconfig, supplied TLS
material, external object-store credentials) are separate top-level keys that must be set
with `pulumi config set --secret`; they stay `SecretStr` here and become `Output` secrets in
the program. Keeping them out of the structured objects keeps those objects plain and
reviewable in a pull request's render diff.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from stacks.types import (
    WORKFLOWS,
    Arch,
    Board,
    ClusterMode,
    CpuQuantity,
    Cron,
    Duration,
    Host,
    HostKey,
    ImageReference,
    K8sName,
    KubernetesVersion,
    LabelKey,
    LabelValue,
    MemoryQuantity,
    NodeRole,
    Pipeline,
    PodCidr,
    Profile,
    PromQL,
    ServiceCidr,
    SnapChannel,
    StackName,
    TaintEffect,
    Workflow,
)
from workloads import catalogue

NAMESPACE = "naomi"
STORAGE_LABEL = "naomi.io/storage"  # a node meant for data (PVCs), set in cluster.nodes[].labels


def to_camel(name: str) -> str:
    """snake_case field name -> the camelCase key of the stack file (`microk8s` stays as is)."""
    first, *rest = name.rstrip("_").split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class ConfigError(ValueError):
    """A stack configuration error; `str()` is one line naming the key.

    `missing_secrets` lists the secret keys (`naomi:sshPrivateKey`) whose absence is the error.
    """

    def __init__(self, messages: list[str], missing_secrets: tuple[str, ...] = ()) -> None:
        self.messages = messages
        self.missing_secrets = missing_secrets
        extra = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        super().__init__(f"invalid stack config: {messages[0]}{extra}")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
    )


# --- cluster -------------------------------------------------------------------------------


class Taint(_Model):
    key: LabelKey
    value: LabelValue = ""
    effect: TaintEffect = "NoSchedule"


class NodeSpec(_Model):
    """One machine of a microk8s cluster, reached over SSH."""

    name: K8sName
    address: Host
    arch: Arch
    board: Board = "generic"
    role: NodeRole = "worker"
    host_key: HostKey = Field(description="pinned SSH host key: `ssh-keyscan -t ed25519 <address>`")
    ssh_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_port: int = Field(default=22, ge=1, le=65535)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()

    @model_validator(mode="after")
    def _board_matches_arch(self) -> NodeSpec:
        if self.board in ("rpi4", "rpi5") and self.arch != "arm64":
            raise ValueError(f"board {self.board!r} is a Raspberry Pi: arch must be 'arm64'")
        if self.board in ("rpi4", "rpi5") and self.role == "control-plane":
            raise ValueError(
                "Raspberry Pi nodes join as workers (the datastore does not belong on an SD card)"
            )
        return self


class MicroK8sSettings(_Model):
    channel: SnapChannel = "1.32/stable"
    addons: tuple[Literal["dns", "hostpath-storage", "metrics-server", "rbac", "registry"], ...] = (
        "dns",
        "hostpath-storage",
        "metrics-server",
        "rbac",
    )
    join_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    allow_unauthenticated_registry: bool = Field(
        default=False,
        description="the `registry` addon serves an unauthenticated registry on port 32000 of every "
        "node, reachable from the LAN: allowed only when set (trusted networks)",
    )

    @model_validator(mode="after")
    def _registry_is_an_opening(self) -> MicroK8sSettings:
        if "registry" in self.addons and not self.allow_unauthenticated_registry:
            raise _KeyError(
                ("addons",),
                "the 'registry' addon is an unauthenticated registry on NodePort 32000 of every node, "
                "reachable from the LAN; push images to an authenticated registry (naomi:images.registry) "
                "or set cluster.microk8s.allowUnauthenticatedRegistry: true on a trusted network",
            )
        return self


class KubeconfigSettings(_Model):
    """An existing cluster: the kubeconfig comes from `naomi:kubeconfig` (secret) or a file."""

    path: str | None = Field(default=None, min_length=1, description="kubeconfig file, e.g. ~/.kube/config")
    context: str | None = None


class StackReferenceSettings(_Model):
    name: StackName
    output: str = Field(default="kubeconfig", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")


class ClusterConfig(_Model):
    mode: ClusterMode = "kubeconfig"
    ssh_user: str = Field(default="ubuntu", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    microk8s: MicroK8sSettings = MicroK8sSettings()
    nodes: tuple[NodeSpec, ...] = ()
    api_endpoint: Host | None = Field(
        default=None,
        description="HA: a virtual IP or load-balancer address (yours) in front of the control planes' "
        "API servers (port 16443); the kubeconfig points at it and it is in their certificates. "
        "Without it the kubeconfig points at the first control plane only",
    )
    kubeconfig: KubeconfigSettings = KubeconfigSettings()
    stack: StackReferenceSettings | None = None
    pod_cidr: PodCidr = Field(
        default="10.1.0.0/16",
        description="the cluster's pod network (microk8s default 10.1.0.0/16; k3s 10.42.0.0/16, kind 10.244.0.0/16)",
    )
    service_cidr: ServiceCidr = Field(
        default="10.152.183.0/24",
        description="the cluster's Service network (microk8s default 10.152.183.0/24; k3s 10.43.0.0/16, kind 10.96.0.0/12)",
    )
    storage_node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="where stateful pods (Postgres, object store, Prometheus, Redis) run; default: nodes "
        "labelled naomi.io/storage=true if the inventory has any, else x86 (kubernetes.io/arch=amd64)",
    )
    node_cidrs: tuple[ServiceCidr, ...] = Field(
        default=(),
        description="where the nodes are (kubelet scrapes, API server); default: the microk8s inventory's "
        "addresses, else the private ranges",
    )

    @model_validator(mode="after")
    def _inventory_rules(self) -> ClusterConfig:
        if self.mode != "microk8s":
            if self.nodes:
                raise ValueError(f"nodes are only provisioned in mode 'microk8s' (mode is {self.mode!r})")
            if self.api_endpoint is not None:
                raise _KeyError(("apiEndpoint",), f"only used in mode 'microk8s' (mode is {self.mode!r})")
            if self.mode == "stack" and self.stack is None:
                raise ValueError("mode 'stack' needs stack: {name: <org/project/stack>}")
            return self
        if not self.nodes:
            raise ValueError("mode 'microk8s' needs at least one entry in nodes")
        for field in ("name", "address"):
            first_seen: dict[str, int] = {}
            for index, node in enumerate(self.nodes):
                value = getattr(node, field)
                if value in first_seen:
                    raise _KeyError(
                        ("nodes", index, field),
                        f"duplicate {field} {value!r} (also nodes[{first_seen[value]}]); {field}s must be unique",
                    )
                first_seen[value] = index
        control_planes = sum(1 for node in self.nodes if node.role == "control-plane")
        if self.api_endpoint is not None and control_planes < 3:
            raise _KeyError(
                ("apiEndpoint",),
                f"an HA endpoint needs 3 or more control planes ({control_planes} in nodes); remove it",
            )
        if control_planes == 0:
            raise ValueError("at least one node needs role 'control-plane'")
        if control_planes != 1 and (control_planes < 3 or control_planes % 2 == 0):
            raise ValueError(
                f"{control_planes} control-plane nodes: use 1, or an odd number >= 3 for HA (dqlite quorum)"
            )
        return self

    @property
    def storage_selector(self) -> dict[str, str]:
        """The node selector of every pod that keeps data on a volume (never an SD card by default).

        microk8s' hostpath provisioner puts a volume on the node where its pod first runs, and
        the volume stays there; so the pod's first node must be meant for data.
        """
        if self.storage_node_selector:
            return dict(self.storage_node_selector)
        if any(node.labels.get(STORAGE_LABEL) == "true" for node in self.nodes):
            return {STORAGE_LABEL: "true"}
        return {"kubernetes.io/arch": "amd64"}

    @property
    def control_planes(self) -> tuple[NodeSpec, ...]:
        return tuple(node for node in self.nodes if node.role == "control-plane")

    @property
    def architectures(self) -> frozenset[str]:
        return frozenset(node.arch for node in self.nodes)


# --- platform --------------------------------------------------------------------------------


class Layers(_Model):
    """Switch whole layers off, e.g. to provision nodes first and the platform later."""

    platform: bool = True
    serving: bool = True
    workloads: bool = True


class TlsSettings(_Model):
    mode: Literal["generated-ca", "provided"] = "generated-ca"


class GatewayConfig(_Model):
    address: Host = Field(description="the node IP or DNS name users type in the browser")
    https_port: int = Field(default=30443, ge=30000, le=32767, description="the gateway's NodePort")
    tls: TlsSettings = TlsSettings()
    users: tuple[K8sName, ...] = ("admin",)


class ExternalObjectStore(_Model):
    endpoint: str = Field(pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]+$")


class ObjectStoreConfig(_Model):
    mode: Literal["minio", "external"] = "minio"
    image: ImageReference | None = None
    buckets: tuple[K8sName, ...] = ("datasets", "mlflow", "flyte", "ray", "backups")
    size: MemoryQuantity | None = None
    external: ExternalObjectStore | None = None

    @model_validator(mode="after")
    def _external_needs_endpoint(self) -> ObjectStoreConfig:
        if self.mode == "external" and self.external is None:
            raise ValueError("mode 'external' needs external: {endpoint: https://...}")
        if self.mode == "minio" and self.external is not None:
            raise ValueError("external is only used with mode 'external'")
        duplicates = sorted(b for b, n in Counter(self.buckets).items() if n > 1)
        if duplicates:
            raise ValueError(f"buckets must be unique; repeated: {', '.join(duplicates)}")
        return self


class PostgresBackup(_Model):
    schedule: Cron = "30 2 * * *"
    retention_days: int = Field(default=7, ge=1, le=365)


class PostgresConfig(_Model):
    size: MemoryQuantity | None = None
    backup: PostgresBackup = PostgresBackup()


class Toggle(_Model):
    enabled: bool = True


class RayPool(_Model):
    name: K8sName
    arch: Arch
    min: int = Field(default=0, ge=0, le=100)
    max: int = Field(default=1, ge=0, le=100)
    cpu: CpuQuantity = "1"
    memory: MemoryQuantity = "2Gi"

    @model_validator(mode="after")
    def _min_le_max(self) -> RayPool:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class RayConfig(_Model):
    enabled: bool = True
    pools: tuple[RayPool, ...] = (RayPool(name="x86", arch="amd64", min=1, max=2, cpu="2", memory="4Gi"),)
    gcs_fault_tolerance: bool = False

    @model_validator(mode="after")
    def _unique_pools(self) -> RayConfig:
        duplicates = sorted(p for p, n in Counter(pool.name for pool in self.pools).items() if n > 1)
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(duplicates)}")
        return self


class MonitoringConfig(_Model):
    enabled: bool = True
    retention: Duration = "7d"


class ServedModel(_Model):
    name: K8sName
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    runtime: Literal["ray-serve", "deployment"] = "ray-serve"
    pool: K8sName | None = None
    arch: Arch = "amd64"
    min: int = Field(default=1, ge=0, le=50)
    max: int = Field(default=2, ge=1, le=50)
    cpu: CpuQuantity = "500m"
    memory: MemoryQuantity = "1Gi"

    @model_validator(mode="after")
    def _version_xor_alias(self) -> ServedModel:
        if (self.version is None) == (self.alias is None):
            raise ValueError("set exactly one of version or alias")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


# Registered models with a Ray Serve application in workloads/ (the pipeline catalogue).
SERVE_APP_MODELS = tuple(sorted(catalogue.SERVE_APPS))


class ServingConfig(_Model):
    models: tuple[ServedModel, ...] = ()


class Trigger(_Model):
    name: K8sName
    kind: Literal["schedule", "metric"]
    workflow: Workflow
    inputs: dict[str, str | int | float | bool] = Field(default_factory=dict)
    cron: Cron | None = None
    expr: PromQL | None = Field(default=None, min_length=1, max_length=2000)
    for_: Duration | None = Field(default=None, alias="for")
    cooldown: Duration | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> Trigger:
        if self.kind == "schedule":
            if self.cron is None:
                raise ValueError("kind 'schedule' needs cron")
            if self.expr is not None or self.for_ is not None or self.cooldown is not None:
                raise ValueError("expr, for and cooldown belong to kind 'metric'")
        else:
            if self.expr is None:
                raise ValueError("kind 'metric' needs expr (a PromQL expression)")
            if self.cron is not None:
                raise ValueError("cron belongs to kind 'schedule'")
        return self


class RetrainingConfig(_Model):
    triggers: tuple[Trigger, ...] = ()


class WorkloadsConfig(_Model):
    pipelines: tuple[Pipeline, ...] = catalogue.PIPELINE_NAMES
    seed_data: bool = True


class ImagesConfig(_Model):
    build: bool = False
    registry: str = Field(default="localhost:32000", pattern=r"^[a-z0-9.\-]+(:[0-9]{1,5})?(/[a-z0-9._-]+)*$")
    # The host part must read as a registry host to a container runtime (a dot or a port, or
    # localhost), else `mirror/x` would be pulled from Docker Hub (infra.images.ImageMirror).
    mirror: str | None = Field(
        default=None,
        pattern=r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9.-]+:[0-9]{1,5})(:[0-9]{1,5})?(/[a-z0-9._-]+)*$",
        description="air-gapped installs: a registry (host, optionally a path) holding a copy of every "
        "image under its full upstream name (`naomi images list`); every image is pulled from there",
    )


class ChartsConfig(_Model):
    """Where the Helm releases take their charts (docs/runbooks/offline-install.md)."""

    source: Literal["repository", "cache"] = Field(
        default="repository",
        description="repository: each chart's Helm repository; cache: the archives in `cache` "
        "(no network at pulumi up). With crds program (the default), the CRDs always come from the "
        "chart cache",
    )
    cache: str | None = Field(
        default=None,
        min_length=1,
        description="with source cache: the folder of <chart>-<version>.tgz (naomi charts pull --cache "
        "<dir>), relative to the project root or absolute",
    )
    crds: Literal["helm", "program"] = Field(
        default="program",
        description="program: the operator charts' CRDs are applied by the program (one ConfigGroup "
        "per chart, read from the chart cache) before their release, upgraded with it and never "
        "deleted; helm: each release installs its chart's CRDs when they are absent and never "
        "upgrades them (a chart bump needs the runbook's kubectl apply step; docs/runbooks/upgrade.md)",
    )

    @model_validator(mode="after")
    def _cache_with_source(self) -> ChartsConfig:
        if self.source == "cache" and self.cache is None:
            raise _KeyError(
                ("cache",), "required with source 'cache': the folder naomi charts pull --cache filled"
            )
        if self.source == "repository" and self.cache is not None:
            raise _KeyError(
                ("cache",),
                "only used with source 'cache'; with source 'repository' and crds 'program' the CRDs come "
                "from the machine's chart cache ($NAOMI_CHARTS, else ~/.cache/naomi/charts)",
            )
        return self


class CredentialRotation(_Model):
    """Generation of each component's generated credentials: raise a number to rotate them all.

    One `pulumi up` then replaces the passwords (pulumi_random `keepers`), re-runs the Jobs that
    apply them (their names carry the generation) and restarts the pods that read them at start
    (a pod-template annotation carries it). See docs/runbooks/credentials.md.
    """

    mlflow: int = Field(default=1, ge=1, le=1_000_000, description="MLflow admin, scoped users, session key")
    postgres: int = Field(default=1, ge=1, le=1_000_000, description="Postgres superuser and consumer roles")
    object_store: int = Field(
        default=1, ge=1, le=1_000_000, description="object-store root and consumer users"
    )


class CredentialsConfig(_Model):
    rotation: CredentialRotation = CredentialRotation()


# --- the whole stack -------------------------------------------------------------------------


class StackConfig(_Model):
    """Everything a stack file may say, under the `naomi:` namespace."""

    profile: Profile = "edge"
    kubernetes_version: KubernetesVersion = "1.32"
    layers: Layers = Layers()
    cluster: ClusterConfig = ClusterConfig()
    gateway: GatewayConfig | None = None
    object_store: ObjectStoreConfig = ObjectStoreConfig()
    postgres: PostgresConfig = PostgresConfig()
    mlflow: Toggle = Toggle()
    ray: RayConfig = RayConfig()
    flyte: Toggle = Toggle()
    monitoring: MonitoringConfig = MonitoringConfig()
    serving: ServingConfig = ServingConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    workloads: WorkloadsConfig = WorkloadsConfig()
    images: ImagesConfig = ImagesConfig()
    credentials: CredentialsConfig = CredentialsConfig()
    charts: ChartsConfig = ChartsConfig()

    # Secret keys: set with `pulumi config set --secret naomi:<key>`.
    ssh_private_key: SecretStr | None = None
    kubeconfig: SecretStr | None = None
    tls_certificate: SecretStr | None = None
    tls_private_key: SecretStr | None = None
    object_store_access_key: SecretStr | None = None
    object_store_secret_key: SecretStr | None = None

    @model_validator(mode="after")
    def _cross_section_rules(self) -> StackConfig:
        _require(self, self.cluster.mode == "microk8s", "ssh_private_key", "cluster.mode 'microk8s' (SSH)")
        from_file = self.cluster.kubeconfig.path is not None
        if from_file and self.kubeconfig is not None:
            raise _KeyError(
                ("cluster", "kubeconfig", "path"), "set either this path or naomi:kubeconfig, not both"
            )
        _require(
            self,
            self.cluster.mode == "kubeconfig" and not from_file,
            "kubeconfig",
            "cluster.mode 'kubeconfig'",
        )
        if self.layers.platform and self.gateway is None:
            raise _KeyError(
                ("gateway",), "required when layers.platform is on: {address: <node IP or DNS name>}"
            )
        if self.gateway is not None and self.gateway.tls.mode == "provided":
            for key in ("tls_certificate", "tls_private_key"):
                _require(self, True, key, "gateway.tls.mode 'provided'")
        for needed, owner in (
            ("mlflow", self.mlflow.enabled),
            ("flyte", self.flyte.enabled),
            ("backups", True),
        ):
            if owner and needed not in self.object_store.buckets:
                raise _KeyError(("objectStore", "buckets"), f"must include {needed!r} (used by the platform)")
        if self.object_store.mode == "external":
            for key in ("object_store_access_key", "object_store_secret_key"):
                _require(self, True, key, "objectStore.mode 'external'")
        if self.cluster.mode == "microk8s":
            channel_version = self.cluster.microk8s.channel.split("/")[0].removesuffix("-strict")
            if channel_version != self.kubernetes_version:
                raise _KeyError(
                    ("cluster", "microk8s", "channel"),
                    f"channel {self.cluster.microk8s.channel} installs Kubernetes {channel_version}, "
                    f"but kubernetesVersion is {self.kubernetes_version}; change both together",
                )
            present = self.cluster.architectures
            for index, pool in enumerate(self.ray.pools):
                if pool.min > 0 and pool.arch not in present:
                    raise _KeyError(
                        ("ray", "pools", index, "arch"),
                        f"no {pool.arch} node in cluster.nodes for a pool with min {pool.min}",
                    )
        pools = {pool.name for pool in self.ray.pools}
        for index, model in enumerate(self.serving.models):
            where = ("serving", "models", index)
            if not self.mlflow.enabled:
                raise _KeyError(
                    (*where, "model"), "serving loads models from MLflow: set mlflow.enabled true"
                )
            if model.runtime != "ray-serve":
                if model.pool is not None:
                    raise _KeyError((*where, "pool"), "pool belongs to runtime 'ray-serve'; use arch")
                continue
            if not self.ray.enabled:
                raise _KeyError((*where, "runtime"), "runtime 'ray-serve' needs ray.enabled true")
            if model.model not in SERVE_APP_MODELS:
                raise _KeyError(
                    (*where, "runtime"),
                    f"no Ray Serve application for model {model.model!r} (known: "
                    f"{', '.join(SERVE_APP_MODELS)}); use runtime 'deployment' (generic MLflow model server)",
                )
            if model.pool is not None and model.pool not in pools:
                raise _KeyError(
                    (*where, "pool"),
                    f"unknown Ray pool {model.pool!r}; pools: {', '.join(sorted(pools)) or 'none'}",
                )
        names = Counter(model.name for model in self.serving.models)
        duplicates = sorted(name for name, count in names.items() if count > 1)
        if duplicates:
            raise _KeyError(
                ("serving", "models"), f"model names must be unique; repeated: {', '.join(duplicates)}"
            )
        if self.layers.platform and self.layers.workloads and self.workloads.pipelines:
            for needed in ("flyte", "mlflow"):
                if not getattr(self, needed).enabled:
                    raise _KeyError(
                        ("layers", "workloads"),
                        f"the workloads layer registers pipelines in Flyte and models in MLflow: "
                        f"set {needed}.enabled true, or layers.workloads false",
                    )
        for index, trigger in enumerate(self.retraining.triggers):
            if trigger.kind == "metric" and not self.monitoring.enabled:
                raise _KeyError(
                    ("retraining", "triggers", index, "kind"),
                    "metric triggers need Prometheus and Alertmanager: set monitoring.enabled true",
                )
            pipeline = WORKFLOWS[trigger.workflow]
            if pipeline not in self.workloads.pipelines:
                raise _KeyError(
                    ("retraining", "triggers", index, "workflow"),
                    f"{trigger.workflow} needs pipeline {pipeline!r} in workloads.pipelines",
                )
        return self


class _KeyError(ValueError):
    """A cross-field rule broken at a specific key path (raised from model validators)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


class _MissingSecret(_KeyError):
    """A secret key the config needs is not set (yet: `pulumi config set --secret`)."""


def _require(config: StackConfig, needed: bool, field: str, why: str) -> None:
    value = getattr(config, field)
    key = to_camel(field)
    if needed and value is None:
        raise _MissingSecret(
            (field,), f"required for {why}: pulumi config set --secret {NAMESPACE}:{key} ..."
        )
    if not needed and value is not None and field in ("ssh_private_key", "kubeconfig"):
        raise _KeyError((field,), f"not used with cluster.mode {config.cluster.mode!r}; remove it")


# --- loading -----------------------------------------------------------------------------------

SECRET_KEYS: tuple[str, ...] = tuple(
    to_camel(name) for name, field in StackConfig.model_fields.items() if field.annotation == SecretStr | None
)


def _decode(raw: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text; plain strings stay strings."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load_stack_config(raw_config: Mapping[str, Any], secret_keys: frozenset[str] | set[str]) -> StackConfig:
    """Parse every `naomi:*` key into a `StackConfig`, or raise `ConfigError` naming the key.

    `raw_config` is the program's config bag (`naomi:cluster` -> JSON text); `secret_keys`
    are the keys the stack file marks `secure:`. Keys of other namespaces (provider settings
    such as `kubernetes:context`) are left to their owners.
    """
    document: dict[str, Any] = {}
    errors: list[str] = []
    allowed = _allowed_keys(StackConfig)
    for full_key in sorted(raw_config):
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        if key in allowed and _is_pulumi_default(key, raw_config[full_key]):
            continue
        if key not in allowed:
            errors.append(f"{full_key}: unknown key; allowed keys: {', '.join(sorted(allowed))}")
            continue
        if key in SECRET_KEYS and full_key not in secret_keys:
            errors.append(f"{full_key}: must be a secret: pulumi config set --secret {full_key} ...")
            continue
        if key not in SECRET_KEYS and full_key in secret_keys:
            errors.append(
                f"{full_key}: holds a secure value, but secrets are separate keys "
                f"({', '.join(f'{NAMESPACE}:{k}' for k in SECRET_KEYS)})"
            )
            continue
        document[key] = _decode(raw_config[full_key])
    if errors:
        raise ConfigError(errors)
    try:
        return StackConfig.model_validate_json(json.dumps(document))
    except ValidationError as error:
        missing = tuple(
            _key_path(item["loc"] + item["ctx"]["error"].path)
            for item in error.errors()
            if isinstance((item.get("ctx") or {}).get("error"), _MissingSecret)
        )
        raise ConfigError([_describe(item) for item in error.errors()], missing) from None


def _is_pulumi_default(key: str, raw: Any) -> bool:
    """The value Pulumi.yaml declares as the default of a key a stack leaves out.

    The Pulumi CLI requires every project-namespaced key Pulumi.yaml declares without a default
    on every stack (sdk/go/common/workspace/config.go, mergeConfig, pulumi v3.187.0) and hands
    the defaults to the program as config. So each optional key declares one that means "not
    set": `{}` for an object key, "" for a secret key (a secret is never empty).
    """
    value = _decode(raw)
    return value == {} or (key in SECRET_KEYS and value == "")


def secrets_to_set(raw_config: Mapping[str, Any], secret_keys: frozenset[str] | set[str]) -> list[str]:
    """The secret keys (`naomi:sshPrivateKey`) this config needs that are not set yet.

    Empty when the config has any other error: `load_stack_config` reports that one.
    """
    bag, secrets, missing = dict(raw_config), set(secret_keys), list[str]()
    for _ in range(len(SECRET_KEYS) + 1):
        try:
            load_stack_config(bag, secrets)
        except ConfigError as error:
            if not error.missing_secrets or len(error.missing_secrets) != len(error.messages):
                return []
            for key in error.missing_secrets:
                bag[key] = f"<secret:{key}>"
                secrets.add(key)
                missing.append(key)
        else:
            return missing
    return []


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _key_path(location: tuple[str | int, ...]) -> str:
    path = f"{NAMESPACE}:"
    for index, part in enumerate(location):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if index else "") + (to_camel(part) if "_" in part else part)
    return path


def _model_at(location: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that owns the mapping at `location` (for listing allowed keys)."""
    current: Any = StackConfig
    for part in location:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {field.alias or name: field for name, field in current.model_fields.items()}
        field = by_alias.get(part) or current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for inner in getattr(annotation, "__args__", ()) or ():
        found = _unwrap(inner)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _describe(item: Any) -> str:
    location = tuple(
        part for part in item["loc"] if not (isinstance(part, str) and part.startswith("function-"))
    )
    message = str(item["msg"])
    context = item.get("ctx") or {}
    error = context.get("error")
    if isinstance(error, _KeyError):
        return f"{_key_path(location + error.path)}: {error}"
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        owner = _model_at(location[:-1])
        allowed = ", ".join(sorted(_allowed_keys(owner))) if owner else "see the schema"
        return f"{_key_path(location)}: unknown key; allowed keys: {allowed}"
    if item["type"] == "missing":
        return f"{_key_path(location)}: required key is missing"
    if item["type"] == "string_pattern_mismatch":
        message = f"must match {context.get('pattern')}"
    got = item.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {json.dumps(got)[:60]})"
    return f"{_key_path(location)}: {message}{shown}"


def json_schema() -> dict[str, Any]:
    """The stack config as JSON Schema, keyed like a stack file's `config:` block."""
    schema = StackConfig.model_json_schema(by_alias=True, mode="validation")
    properties = schema.pop("properties")
    schema["properties"] = {f"{NAMESPACE}:{key}": value for key, value in properties.items()}
    schema.pop("required", None)
    schema["title"] = "naomi stack configuration"
    schema["additionalProperties"] = True  # other namespaces (providers) are allowed
    schema["propertyNames"] = {"not": {"pattern": f"^{NAMESPACE}:(?!({'|'.join(properties)})$)"}}
    return schema
