"""The stack program: parse config once, then compose the layers.

nodes/cluster -> kubernetes.Provider -> platform -> serving -> workloads -> exports. This is
the only module with side effects; every decision below is taken from the typed
`StackConfig`, never from `apply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from hardware.cluster import MicroK8sCluster, MicroK8sClusterArgs
from hardware.inventory import Node, Taint
from infra.namespace import PlatformNamespace, PlatformNamespaceArgs
from infra.object_store import ExternalS3, ObjectStore, ObjectStoreArgs
from infra.profiles import PROFILES
from infra.versions import MINIO_IMAGE
from stacks.config import ConfigError, StackConfig, load_stack_config

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


def cluster_layer(config: StackConfig) -> ClusterAccess:
    cluster = config.cluster
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
            ),
        )
        kubeconfig = microk8s.kubeconfig
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
    return ClusterAccess(kubeconfig=kubeconfig, provider=provider)


@dataclass(frozen=True)
class Platform:
    namespaces: dict[str, PlatformNamespace]
    object_store: ObjectStore


def platform_layer(config: StackConfig, access: ClusterAccess) -> Platform:
    opts = pulumi.ResourceOptions(provider=access.provider)
    profile = PROFILES[config.profile]
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
            namespace=namespaces["platform"].name,
            mode=store.mode,
            buckets=store.buckets,
            image=store.image or MINIO_IMAGE,
            volume_size=store.size or profile.object_store_volume,
            resources=profile.object_store,
            job_resources=profile.helper,
            external=external,
        ),
        opts=opts,
    )
    return Platform(namespaces=namespaces, object_store=object_store)


def main() -> None:
    config = read_config()
    pulumi.export("profile", config.profile)
    access = cluster_layer(config)
    pulumi.export("kubeconfig", access.kubeconfig)
    if config.layers.platform:
        platform = platform_layer(config, access)
        pulumi.export("namespaces", {key: ns.name for key, ns in sorted(platform.namespaces.items())})
        pulumi.export("objectStoreEndpoint", platform.object_store.endpoint)
        pulumi.export("objectStoreCredentialsSecret", platform.object_store.secret_name)
        if config.gateway is not None:
            pulumi.export("gatewayAddress", config.gateway.address)
