"""The stack program: parse config once, then compose the layers.

nodes/cluster -> kubernetes.Provider -> platform -> serving -> workloads -> exports. This is
the only module with side effects; every decision below is taken from the typed
`StackConfig`, never from `apply`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from hardware.cluster import MicroK8sCluster, MicroK8sClusterArgs
from hardware.inventory import Node, Taint
from infra import credentials
from infra.charts import ChartSource, ReleaseSettings
from infra.contract import ClusterNetwork, Contract, combine, dns_flows
from infra.flyte import GRPC_PORT as FLYTE_GRPC_PORT
from infra.flyte import GRPC_SERVICE as FLYTE_GRPC_SERVICE
from infra.flyte import TASK_STORAGE_SECRET, Flyte, FlyteArgs
from infra.gateway import Gateway, GatewayArgs, ProvidedCertificate
from infra.images import ImageMirror, Images, ImagesArgs, mirror_transformation
from infra.mlflow import Mlflow, MlflowArgs, client_secret
from infra.monitoring import Monitoring, MonitoringArgs, scrape_flows
from infra.namespace import PlatformNamespace, PlatformNamespaceArgs
from infra.network import NetworkPolicies, NetworkPoliciesArgs
from infra.object_store import ExternalS3, ObjectStore, ObjectStoreArgs
from infra.postgres import BackupTarget, Postgres, PostgresArgs
from infra.profiles import PROFILES
from infra.ray import RayPlatform, RayPlatformArgs, RayPool
from infra.serving import ModelSpec, ServedModel, ServedModelArgs
from infra.workloads import (
    MetricTrigger,
    Schedule,
    Workloads,
    WorkloadsArgs,
    receiver_url,
    release_workloads_version,
    workloads_version,
)
from stacks.config import ConfigError, StackConfig, load_stack_config
from workloads import catalogue

NAMESPACES = {
    "platform": "naomi-platform",
    "gateway": "naomi-gateway",
    "ray": "naomi-ray",
    "monitoring": "naomi-monitoring",
    "serving": "naomi-serving",
    "workloads": "naomi-workloads",
}


def read_config() -> StackConfig:
    """The whole config bag of this run, parsed once (errors stop before any resource)."""
    # The SDK exposes single keys only; the strict model needs the whole bag to reject
    # unknown keys. These are the SDK's own sources (env for `pulumi up`, mocks in tests).
    bag = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    try:
        return load_stack_config(bag, secret_keys)
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None


@dataclass(frozen=True)
class ClusterAccess:
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    # Applies the charts' CRDs (infra.charts, a ConfigGroup per chart): server-side apply that also adopts a CRD
    # already in the cluster (a release's earlier Helm install created it) and takes over its
    # fields from the manager that wrote them (pulumi-kubernetes provider/pkg/await/await.go:
    # creates upsert only with upsertExistingObjects, conflicts are forced with
    # enablePatchForce). Only CRDs use it, all retained on delete, so an upsert never lets a
    # replacement delete what it adopted.
    crd_provider: k8s.Provider
    # Provisioned clusters: the addons step (e.g. the registry images are pushed to).
    addons_ready: tuple[pulumi.Resource, ...] = ()


def cluster_layer(config: StackConfig) -> ClusterAccess:
    cluster = config.cluster
    ready: list[pulumi.Resource] = []
    if cluster.mode == "microk8s":
        assert config.ssh_private_key is not None  # guaranteed by the config model
        nodes = tuple(
            Node(
                name=node.name,
                address=node.address,
                arch=node.arch,
                board=node.board,
                role=node.role,
                host_key=node.host_key,
                ssh_user=node.ssh_user or cluster.ssh_user,
                ssh_port=node.ssh_port,
                labels=dict(node.labels),
                taints=tuple(Taint(key=t.key, value=t.value, effect=t.effect) for t in node.taints),
            )
            for node in cluster.nodes
        )
        microk8s = MicroK8sCluster(
            "cluster",
            MicroK8sClusterArgs(
                nodes=nodes,
                ssh_private_key=pulumi.Output.secret(config.ssh_private_key.get_secret_value()),
                channel=cluster.microk8s.channel,
                addons=cluster.microk8s.addons,
                join_token_ttl_seconds=cluster.microk8s.join_token_ttl_seconds,
                api_endpoint=cluster.api_endpoint,
                # containerd pulls the registry addon over plain HTTP (only with that addon).
                registry=config.images.registry
                if config.images.build and "registry" in cluster.microk8s.addons
                else None,
            ),
        )
        kubeconfig = microk8s.kubeconfig
        ready.append(microk8s.addons)
        if config.images.build and config.images.registry.split(":")[0] in ("localhost", "127.0.0.1"):
            pulumi.log.warn(
                f"naomi:images.registry {config.images.registry} is the machine running pulumi, not the "
                "cluster: set it to a node address reachable from here, e.g. <control-plane address>:32000 "
                "(docs/nodes.md, images)"
            )
    elif cluster.mode == "kubeconfig" and cluster.kubeconfig.path is not None:
        path = Path(cluster.kubeconfig.path).expanduser()
        if not path.is_file():
            raise pulumi.RunError(f"naomi:cluster.kubeconfig.path: no such file: {path}")
        kubeconfig = pulumi.Output.secret(path.read_text())
    elif cluster.mode == "kubeconfig":
        assert config.kubeconfig is not None  # guaranteed by the config model
        kubeconfig = pulumi.Output.secret(config.kubeconfig.get_secret_value())
    else:
        assert cluster.stack is not None  # guaranteed by the config model
        reference = pulumi.StackReference("cluster-stack", stack_name=cluster.stack.name)
        kubeconfig = pulumi.Output.secret(reference.require_output(cluster.stack.output)).apply(str)
    provider = k8s.Provider(
        "kubernetes",
        kubeconfig=kubeconfig,
        context=cluster.kubeconfig.context,
        enable_server_side_apply=True,
        delete_unreachable=True,
    )
    crd_provider = k8s.Provider(
        "kubernetes-crds",
        kubeconfig=kubeconfig,
        context=cluster.kubeconfig.context,
        enable_server_side_apply=True,
        upsert_existing_objects=True,
        enable_patch_force=True,
        delete_unreachable=True,
    )
    return ClusterAccess(
        kubeconfig=kubeconfig, provider=provider, crd_provider=crd_provider, addons_ready=tuple(ready)
    )


def release_settings(config: StackConfig, access: ClusterAccess) -> ReleaseSettings:
    """Chart source (`naomi:charts`), the profile's release timeout and the CRDs' provider."""
    charts = config.charts
    source = ChartSource()  # repository; CRDs from $NAOMI_CHARTS or ~/.cache/naomi/charts
    if charts.source == "cache":
        assert charts.cache is not None  # required by the config model
        configured = Path(charts.cache).expanduser()
        source = ChartSource(
            mode="cache",
            # Normalised, not resolved: a symlinked folder stays the path the config names.
            cache=configured
            if configured.is_absolute()
            else Path(os.path.normpath(PROJECT_ROOT / configured)),
            # Pulumi runs the program and its providers in the `main` folder (stacks/; pulumi
            # v3.187.0 pkg/engine/project.go getPwdMain, sdk/go/common/resource/plugin/plugin.go
            # cmd.Dir): a configured relative folder reaches the releases relative to it.
            program_dir=None if configured.is_absolute() else PROJECT_ROOT / "stacks",
        )
    return ReleaseSettings(
        source=source,
        timeout_seconds=PROFILES[config.profile].release_timeout_seconds,
        crd_provider=access.crd_provider,
        apply_crds=charts.crds == "program",
    )


@dataclass(frozen=True)
class Platform:
    namespaces: dict[str, PlatformNamespace]
    network: ClusterNetwork
    base_url: str
    object_store: ObjectStore
    postgres: Postgres
    mlflow: Mlflow | None
    ray: RayPlatform | None
    flyte: Flyte | None
    monitoring: Monitoring | None

    @property
    def contracts(self) -> list[Contract]:
        components = [self.object_store, self.postgres, self.mlflow, self.ray, self.flyte, self.monitoring]
        return [component.contract for component in components if component is not None]


def cluster_network(config: StackConfig) -> ClusterNetwork:
    """The addresses flows need outside the pod network (nodes, API server), from config."""
    cluster = config.cluster
    if cluster.mode == "microk8s":

        def host(address: str) -> str:
            return f"{address}/32" if ":" not in address else f"{address}/128"

        nodes = tuple(host(n.address) for n in cluster.nodes if _is_ip(n.address)) or PRIVATE_NETWORKS
        planes = tuple(host(n.address) for n in cluster.control_planes if _is_ip(n.address)) or nodes
        return ClusterNetwork(
            pod_cidr=cluster.pod_cidr,
            service_cidr=cluster.service_cidr,
            nodes=nodes,
            control_planes=planes,
            api_server_ports=(443, 16443),  # the Service port; microk8s' kube-apiserver port
            api_server_service=_first_address(cluster.service_cidr),
        )
    nodes = cluster.node_cidrs or PRIVATE_NETWORKS
    return ClusterNetwork(
        pod_cidr=cluster.pod_cidr,
        service_cidr=cluster.service_cidr,
        nodes=nodes,
        control_planes=nodes,
        api_server_ports=(443, 6443),  # the Service port; kubeadm/k3s/kind kube-apiserver port
        api_server_service=_first_address(cluster.service_cidr),
    )


# Where nodes may be when config cannot say (a DNS-named inventory, an existing cluster): the
# private ranges. Narrow them with naomi:cluster.nodeCidrs.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def _is_ip(address: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _first_address(cidr: str) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the service range."""
    import ipaddress

    network = ipaddress.ip_network(cidr)
    return f"{network.network_address + 1}/32"


def storage_consumers(config: StackConfig) -> dict[str, tuple[str, ...]]:
    """Who gets object-store credentials, limited to which buckets."""
    buckets = set(config.object_store.buckets)
    wanted = {
        "mlflow": ("mlflow",) if config.mlflow.enabled else (),
        "flyte": ("flyte", "datasets", "ray") if config.flyte.enabled else (),
        "backup": ("backups",),
    }
    return {consumer: tuple(b for b in names if b in buckets) for consumer, names in wanted.items() if names}


def platform_layer(config: StackConfig, access: ClusterAccess, images: Images) -> Platform:
    assert config.gateway is not None  # required by the config model when the platform is on
    opts = pulumi.ResourceOptions(provider=access.provider)
    profile = PROFILES[config.profile]
    releases = release_settings(config, access)
    gateway_config = config.gateway
    network = cluster_network(config)
    base_url = GatewayArgs.url(gateway_config.address, gateway_config.https_port)
    wanted = ["platform", "gateway", "workloads"]
    if config.ray.enabled:
        wanted.append("ray")
    if config.monitoring.enabled:
        wanted.append("monitoring")
    if config.layers.serving and config.serving.models:
        wanted.append("serving")
    namespaces = {
        key: PlatformNamespace(f"ns-{key}", PlatformNamespaceArgs(name=NAMESPACES[key]), opts=opts)
        for key in wanted
    }
    platform_ns = NAMESPACES["platform"]
    after_platform_ns = pulumi.ResourceOptions(provider=access.provider, depends_on=[namespaces["platform"]])

    store = config.object_store
    external = None
    if store.mode == "external":
        assert (
            store.external is not None and config.object_store_access_key and config.object_store_secret_key
        )
        external = ExternalS3(
            endpoint=store.external.endpoint,
            region=store.external.region,
            access_key=pulumi.Output.secret(config.object_store_access_key.get_secret_value()),
            secret_key=pulumi.Output.secret(config.object_store_secret_key.get_secret_value()),
        )
    object_store = ObjectStore(
        "object-store",
        ObjectStoreArgs(
            namespace=platform_ns,
            mode=store.mode,
            buckets=store.buckets,
            image=store.image or images.refs["naomi-minio"],
            volume_size=store.size or profile.object_store_volume,
            resources=profile.object_store,
            job_resources=profile.helper,
            external=external,
            console_url=f"{base_url}/minio/" if store.mode == "minio" else None,
            consumers=storage_consumers(config),
            pod_cidr=config.cluster.pod_cidr,
            storage_node_selector=config.cluster.storage_selector,
            client_image=images.refs["naomi-mlflow"],
            generation=config.credentials.rotation.object_store,
        ),
        opts=after_platform_ns,
    )

    consumers: list[str] = []
    if config.mlflow.enabled:
        consumers += ["mlflow", "mlflow_auth"]
    if config.flyte.enabled:
        consumers.append("flyte")
    postgres = Postgres(
        "postgres",
        PostgresArgs(
            namespace=platform_ns,
            consumers=tuple(consumers),
            resources=profile.postgres,
            job_resources=profile.helper,
            volume_size=config.postgres.size or profile.postgres_volume,
            storage_node_selector=config.cluster.storage_selector,
            backup=BackupTarget(
                endpoint=object_store.endpoint,
                credentials_secret=object_store.consumer_secret("backup"),
                store=object_store,
            ),
            backup_schedule=config.postgres.backup.schedule,
            backup_retention_days=config.postgres.backup.retention_days,
            ops_image=images.refs["naomi-mlflow"],
            generation=config.credentials.rotation.postgres,
        ),
        opts=after_platform_ns,
    )

    monitoring = None
    if config.monitoring.enabled:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                namespace=NAMESPACES["monitoring"],
                base_url=base_url,
                retention=config.monitoring.retention,
                prometheus=profile.prometheus,
                prometheus_volume=profile.prometheus_volume,
                alertmanager=profile.alertmanager,
                grafana=profile.grafana,
                operator=profile.prometheus_operator,
                kube_state_metrics=profile.kube_state_metrics,
                trigger_webhook_url=receiver_url(NAMESPACES["workloads"])
                if metric_triggers(config)
                else None,
                network=network,
                storage_node_selector=config.cluster.storage_selector,
                release=releases,
            ),
            opts=pulumi.ResourceOptions(provider=access.provider, depends_on=[namespaces["monitoring"]]),
        )

    monitoring_release = monitoring.release if monitoring is not None else None
    mlflow = None
    if config.mlflow.enabled:
        mlflow = Mlflow(
            "mlflow",
            MlflowArgs(
                namespace=platform_ns,
                resources=profile.mlflow,
                backend_uri_secret=postgres.consumer_secret("mlflow"),
                auth_database_uri=postgres.consumer_uri("mlflow_auth", sqlalchemy=True),
                object_store_endpoint=object_store.endpoint,
                object_store_secret=object_store.consumer_secret("mlflow"),
                database=postgres,
                object_store=object_store,
                external_host=gateway_config.address,
                image=images.refs["naomi-mlflow"],
                pod_cidr=config.cluster.pod_cidr,
                monitoring_release=monitoring_release,
                served_models=tuple(sorted({spec.model for spec in model_specs(config)})),
                experiments=tuple(config.workloads.pipelines) if config.layers.workloads else (),
                registered_models=tuple(
                    sorted(catalogue.pipeline(p).model for p in config.workloads.pipelines)
                )
                if config.layers.workloads
                else (),
                generation=config.credentials.rotation.mlflow,
                upstream_generations={
                    "postgres": postgres.generation,
                    "objectStore": object_store.generation,
                },
                after=(*postgres.ready, *object_store.ready),
            ),
            opts=pulumi.ResourceOptions(provider=access.provider, depends_on=[postgres, object_store]),
        )
    ray = None
    if config.ray.enabled:
        ray = RayPlatform(
            "ray",
            RayPlatformArgs(
                namespace=NAMESPACES["ray"],
                pools=tuple(
                    RayPool(name=p.name, arch=p.arch, min=p.min, max=p.max, cpu=p.cpu, memory=p.memory)
                    for p in config.ray.pools
                ),
                head=profile.ray_head,
                operator=profile.ray_operator,
                gcs_fault_tolerance=config.ray.gcs_fault_tolerance,
                redis=profile.redis,
                storage_node_selector=config.cluster.storage_selector,
                network=network,
                monitoring_release=monitoring_release,
                release=releases,
            ),
            opts=pulumi.ResourceOptions(provider=access.provider, depends_on=[namespaces["ray"]]),
        )

    flyte = None
    if config.flyte.enabled:
        flyte = Flyte(
            "flyte",
            FlyteArgs(
                namespace=NAMESPACES["platform"],
                workloads_namespace=NAMESPACES["workloads"],
                resources=profile.flyte,
                database_host=postgres.host,
                database_secret=postgres.consumer_secret("flyte"),
                object_store_endpoint=object_store.endpoint,
                object_store_secret=object_store.consumer_secret("flyte"),
                object_store_credentials=object_store.consumer_credentials("flyte"),
                database=postgres,
                object_store=object_store,
                mlflow=mlflow,
                network=network,
                ray_operator=ray.operator_pods if ray is not None else None,
                monitoring_release=monitoring_release,
                mlflow_uri=mlflow.url if mlflow is not None else None,
                mlflow_password=mlflow.login("training")[1] if mlflow is not None else None,
                credential_annotations={
                    **credentials.annotation(
                        {"postgres": postgres.generation, "objectStore": object_store.generation}
                    ),
                    **(mlflow.pod_annotation() if mlflow is not None else {}),
                },
                after=(*postgres.ready, *object_store.ready),
                release=releases,
            ),
            opts=pulumi.ResourceOptions(
                provider=access.provider, depends_on=[postgres, object_store, namespaces["workloads"]]
            ),
        )

    return Platform(namespaces, network, base_url, object_store, postgres, mlflow, ray, flyte, monitoring)


def gateway_layer(
    config: StackConfig, access: ClusterAccess, platform: Platform, contracts: list[Contract]
) -> Gateway:
    """The single entry point, serving the routes every component's contract declares."""
    assert config.gateway is not None
    gateway_config = config.gateway
    routes = tuple(route for contract in contracts for route in contract.routes)
    provided = None
    if gateway_config.tls.mode == "provided":
        assert config.tls_certificate is not None and config.tls_private_key is not None
        provided = ProvidedCertificate(
            certificate=pulumi.Output.secret(config.tls_certificate.get_secret_value()),
            private_key=pulumi.Output.secret(config.tls_private_key.get_secret_value()),
        )
    return Gateway(
        "gateway",
        GatewayArgs(
            namespace=NAMESPACES["gateway"],
            address=gateway_config.address,
            node_port=gateway_config.https_port,
            resources=PROFILES[config.profile].gateway,
            users=gateway_config.users,
            routes=routes,
            tls_mode=gateway_config.tls.mode,
            provided=provided,
            network=platform.network,
            release=release_settings(config, access),
        ),
        opts=pulumi.ResourceOptions(provider=access.provider, depends_on=list(platform.namespaces.values())),
    )


def network_layer(access: ClusterAccess, platform: Platform, contracts: list[Contract]) -> None:
    """Every NetworkPolicy, derived from the flows all contracts declare (plus DNS and scrapes)."""
    namespaces = tuple(sorted(NAMESPACES[key] for key in platform.namespaces))
    total = combine(contracts)
    flows = total.flows + dns_flows(namespaces)
    if platform.monitoring is not None:
        flows += scrape_flows(NAMESPACES["monitoring"], total.scrape_targets)
    NetworkPolicies(
        "network",
        NetworkPoliciesArgs(
            flows=flows,
            namespaces=namespaces,
            previous_parents={NAMESPACES[key]: ns for key, ns in platform.namespaces.items()},
        ),
        opts=pulumi.ResourceOptions(provider=access.provider, depends_on=list(platform.namespaces.values())),
    )


def model_specs(config: StackConfig) -> list[ModelSpec]:
    """The served models of the serving layer (none when the layer is off)."""
    if not config.layers.serving:
        return []
    pools = {pool.name: pool for pool in config.ray.pools}
    specs = []
    for model in config.serving.models:
        pool = None
        arch = model.arch
        if model.runtime == "ray-serve":
            chosen = pools.get(model.pool or "")
            arch = chosen.arch if chosen is not None else model.arch
            pool = RayPool(
                name=chosen.name if chosen is not None else "serve",
                arch=arch,
                min=model.min,
                max=model.max,
                cpu=model.cpu,
                memory=model.memory,
            )
        specs.append(
            ModelSpec(
                name=model.name,
                model=model.model,
                version=model.version,
                alias=model.alias,
                runtime=model.runtime,
                arch=arch,
                min=model.min,
                max=model.max,
                cpu=model.cpu,
                memory=model.memory,
                pool=pool,
            )
        )
    return specs


def serving_layer(
    config: StackConfig, access: ClusterAccess, platform: Platform, images: Images
) -> list[Contract]:
    """One ServedModel per `serving.models[]` entry, reading models with an MLflow client Secret."""
    specs = model_specs(config)
    if not specs:
        return []
    assert platform.mlflow is not None  # serving requires MLflow (config model)
    namespace = NAMESPACES["serving"]
    opts = pulumi.ResourceOptions(provider=access.provider, depends_on=[platform.namespaces["serving"]])
    secret = client_secret("serving-mlflow-client", namespace, platform.mlflow, opts, identity="serving")
    profile = PROFILES[config.profile]
    return [
        ServedModel(
            f"serving-{spec.name}",
            ServedModelArgs(
                spec=spec,
                namespace=namespace,
                image=images.refs["naomi-ray" if spec.runtime == "ray-serve" else "naomi-model-server"],
                head=profile.ray_head,
                mlflow=platform.mlflow,
                ray=platform.ray,
                monitoring_release=platform.monitoring.release if platform.monitoring is not None else None,
                pod_annotations=platform.mlflow.pod_annotation(),
                after=(secret,),
            ),
            opts=pulumi.ResourceOptions(provider=access.provider, depends_on=[secret]),
        ).contract
        for spec in specs
    ]


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def metric_triggers(config: StackConfig) -> tuple[MetricTrigger, ...]:
    if not config.layers.workloads:
        return ()
    return tuple(
        MetricTrigger(
            name=t.name,
            workflow=t.workflow,
            expr=t.expr or "",
            for_=t.for_,
            cooldown=t.cooldown,
            inputs=dict(t.inputs),
        )
        for t in config.retraining.triggers
        if t.kind == "metric"
    )


def workloads_layer(
    config: StackConfig, access: ClusterAccess, platform: Platform, images: Images
) -> list[Contract]:
    """Registration, seed data, schedules and metric triggers (see infra/workloads.py)."""
    if not (config.layers.workloads and config.workloads.pipelines):
        return []
    assert platform.flyte is not None and platform.mlflow is not None  # config model
    profile = PROFILES[config.profile]
    # The version of the code the naomi-workloads image runs: built here from workloads/, or the
    # pinned release image's stamp (the registration Job checks it against the image's own).
    version = (
        workloads_version(PROJECT_ROOT) if config.images.build else release_workloads_version(PROJECT_ROOT)
    )
    pulumi.export("workloadsVersion", version)
    workloads = Workloads(
        "workloads",
        WorkloadsArgs(
            namespace=NAMESPACES["workloads"],
            monitoring_namespace=NAMESPACES["monitoring"] if platform.monitoring is not None else None,
            image=images.refs["naomi-workloads"],
            version=version,
            pipelines=tuple(config.workloads.pipelines),
            seed_data=config.workloads.seed_data,
            schedules=tuple(
                Schedule(name=t.name, workflow=t.workflow, cron=t.cron or "", inputs=dict(t.inputs))
                for t in config.retraining.triggers
                if t.kind == "schedule"
            ),
            triggers=metric_triggers(config),
            flyte_endpoint=f"{FLYTE_GRPC_SERVICE}.{NAMESPACES['platform']}.svc.cluster.local:{FLYTE_GRPC_PORT}",
            object_store_endpoint=platform.object_store.endpoint,
            storage_secret=TASK_STORAGE_SECRET,
            mlflow=platform.mlflow,
            flyte=platform.flyte,
            object_store=platform.object_store,
            alertmanager=platform.monitoring.pods["alertmanager"]
            if platform.monitoring is not None
            else None,
            job=profile.helper,
            receiver=profile.helper,
            ray_pools=tuple(
                RayPool(name=p.name, arch=p.arch, min=p.min, max=p.max, cpu=p.cpu, memory=p.memory)
                for p in config.ray.pools
            )
            if config.ray.enabled
            else (),
            ray_head=profile.ray_head,
            monitoring_release=platform.monitoring.release if platform.monitoring is not None else None,
        ),
        opts=pulumi.ResourceOptions(
            provider=access.provider,
            depends_on=[platform.flyte, platform.object_store, platform.namespaces["workloads"]],
        ),
    )
    return [workloads.contract]


def export_platform(platform: Platform, gateway: Gateway) -> None:
    """Endpoints users type, Secret names operators read, and credentials as secret outputs."""
    pulumi.export("namespaces", {key: ns.name for key, ns in sorted(platform.namespaces.items())})
    generations = {"postgres": platform.postgres.generation, "objectStore": platform.object_store.generation}
    if platform.mlflow is not None:
        generations["mlflow"] = platform.mlflow.generation
    pulumi.export("credentialGenerations", generations)  # naomi:credentials.rotation as applied
    urls: dict[str, str] = {}
    if platform.object_store.console_url is not None:
        urls["objectStoreConsole"] = platform.object_store.console_url
    if platform.mlflow is not None:
        urls["mlflow"] = f"{gateway.base_url}/mlflow/"
        pulumi.export("mlflowTrackingUri", f"{gateway.base_url}/mlflow")
        pulumi.export("mlflowInClusterUri", platform.mlflow.url)
        pulumi.export("mlflowAdminSecret", platform.mlflow.admin_secret)
        pulumi.export(
            "mlflowAdmin",
            pulumi.Output.secret({"username": "admin", "password": platform.mlflow.admin_password}),
        )
    if platform.monitoring is not None:
        urls.update(
            grafana=f"{gateway.base_url}/grafana/",
            prometheus=f"{gateway.base_url}/prometheus/",
            alertmanager=f"{gateway.base_url}/alertmanager/",
        )
        pulumi.export("grafanaAdmin", platform.monitoring.grafana_admin)
    if platform.ray is not None:
        urls["rayDashboard"] = f"{gateway.base_url}/ray/"
        pulumi.export("rayAuthToken", platform.ray.auth_token)
    if platform.flyte is not None:
        urls["flyteConsole"] = f"{gateway.base_url}/console/"
    pulumi.export("urls", urls)
    pulumi.export("gatewayCaCertificate", gateway.ca_certificate)
    pulumi.export("gatewayUsers", gateway.users)
    pulumi.export("objectStoreEndpoint", platform.object_store.endpoint)
    pulumi.export("objectStoreCredentialsSecret", platform.object_store.secret_name)
    pulumi.export("objectStoreCredentials", platform.object_store.root_credentials)


def main() -> None:
    config = read_config()
    mirror = ImageMirror(config.images.mirror) if config.images.mirror is not None else None
    if mirror is not None:
        # Before any resource: every image of every Kubernetes object and chart is pulled from
        # the mirror, except those `images.build` pushes to the registry it names.
        keep = (config.images.registry,) if config.images.build else ()
        pulumi.runtime.register_stack_transformation(mirror_transformation(mirror, keep))
    pulumi.export("profile", config.profile)
    access = cluster_layer(config)
    pulumi.export("kubeconfig", access.kubeconfig)
    if config.layers.platform:
        images = Images(
            "images",
            ImagesArgs(
                build=config.images.build,
                registry=config.images.registry,
                project_root=PROJECT_ROOT,
                mirror=mirror,
            ),
            # Pushes go to the cluster's registry addon: only once the addons are up.
            opts=pulumi.ResourceOptions(depends_on=list(access.addons_ready)),
        )
        pulumi.export("images", images.refs)
        platform = platform_layer(config, access, images)
        contracts = [
            *platform.contracts,
            *serving_layer(config, access, platform, images),
            *workloads_layer(config, access, platform, images),
        ]
        gateway = gateway_layer(config, access, platform, contracts)
        network_layer(access, platform, [*contracts, gateway.contract])
        export_platform(platform, gateway)
