"""Stack config validation at its boundaries (issue 17, mutation testing): every cross-field rule
on both sides of its edge, each message exactly as `pulumi up` prints it (naming the key), the
secret-key bookkeeping, and the helpers that turn pydantic's errors into key paths. Calls
`load_stack_config` directly (no Pulumi program), so each case costs milliseconds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import (
    SECRET_KEYS,
    ConfigError,
    StackConfig,
    _describe,
    _key_path,
    _model_at,
    json_schema,
    load_stack_config,
    secrets_to_set,
    to_camel,
)

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC0p1naomiBoundaryTestHostKey000001"


def _node(name: str, address: str, arch: str = "amd64", role: str = "worker", **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "arch": arch, "role": role, "hostKey": HOST_KEY, **extra}


def _raw(**keys: Any) -> dict[str, str]:
    return {f"naomi:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in keys.items()}


def _kubeconfig(**keys: Any) -> tuple[dict[str, str], set[str]]:
    """A minimal valid kubeconfig-mode stack plus `keys`."""
    base: dict[str, Any] = {"gateway": {"address": "10.0.0.1"}, "kubeconfig": "apiVersion: v1"}
    base.update(keys)
    return _raw(**{k: v for k, v in base.items() if v is not None}), {"naomi:kubeconfig"}


def _microk8s(nodes: list[dict[str, Any]] | None = None, **keys: Any) -> tuple[dict[str, str], set[str]]:
    cluster = {"mode": "microk8s", "nodes": nodes or [_node("cp-1", "10.0.0.1", role="control-plane")]}
    base: dict[str, Any] = {"gateway": {"address": "10.0.0.1"}, "sshPrivateKey": "key", "cluster": cluster}
    base.update(keys)
    return _raw(**{k: v for k, v in base.items() if v is not None}), {"naomi:sshPrivateKey"}


def _load(raw: tuple[dict[str, str], set[str]]) -> StackConfig:
    return load_stack_config(*raw)


def _error(raw: tuple[dict[str, str], set[str]]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_stack_config(*raw)
    return str(raised.value).removeprefix("invalid stack config: ")


# --- ConfigError and the key helpers -----------------------------------------------------------


def test_config_error_counts_the_others() -> None:
    assert str(ConfigError(["a"])) == "invalid stack config: a"
    assert str(ConfigError(["a", "b"])) == "invalid stack config: a (and 1 more)"
    assert str(ConfigError(["a", "b", "c"])) == "invalid stack config: a (and 2 more)"
    error = ConfigError(["a"], ("naomi:x",))
    assert (error.messages, error.missing_secrets) == (["a"], ("naomi:x",))
    assert ConfigError(["a"]).missing_secrets == ()


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ssh_private_key", "sshPrivateKey"),
        ("for_", "for"),
        ("microk8s", "microk8s"),
        ("a_b_c", "aBC"),
        ("x__y", "xY"),
    ],
)
def test_to_camel(name: str, key: str) -> None:
    assert to_camel(name) == key


def test_key_paths() -> None:
    assert _key_path(()) == "naomi:"
    assert _key_path(("cluster",)) == "naomi:cluster"
    assert _key_path(("cluster", "nodes", 2, "ssh_port")) == "naomi:cluster.nodes[2].sshPort"
    assert _key_path(("serving", "models", 0, "minReplicas")) == "naomi:serving.models[0].minReplicas"
    assert _key_path((3,)) == "naomi:[3]"


def test_model_at_finds_the_owner_of_a_mapping() -> None:
    from stacks.config import ClusterConfig, NodeSpec, RayPool

    assert _model_at(()) is StackConfig
    assert _model_at(("cluster",)) is ClusterConfig
    assert _model_at(("cluster", "nodes", 0)) is NodeSpec
    assert _model_at(("ray", "pools", 1)) is RayPool
    assert _model_at(("cluster", "nodes", 0, "name")) is None  # a string, not a model
    assert _model_at(("nowhere",)) is None
    assert _model_at(("cluster", "nodes", 0, "name", "deeper")) is None
    assert _model_at(("retraining", "triggers", 0, "for")) is None
    # camelCase keys as the stack file spells them, and the Python names too
    from stacks.config import ExternalObjectStore, MicroK8sSettings, ObjectStoreConfig

    assert _model_at(("objectStore",)) is ObjectStoreConfig
    assert _model_at(("objectStore", "external")) is ExternalObjectStore
    assert _model_at(("object_store", "external")) is ExternalObjectStore
    assert _model_at(("cluster", "microk8s")) is MicroK8sSettings
    assert _model_at(("cluster", "microk8s", "addons")) is None  # a tuple of literals
    assert _model_at(("cluster", "apiEndpoint")) is None  # an optional string


def test_describe_shapes_each_kind_of_error() -> None:
    assert (
        _describe(
            {"loc": ("cluster", "function-after", "x"), "msg": "Value error, bad", "type": "value_error"}
        )
        == "naomi:cluster.x: bad"
    )
    assert _describe({"loc": ("a",), "msg": "Value error, bad", "type": "value_error", "input": 3}) == (
        "naomi:a: bad (got 3)"
    )
    assert _describe({"loc": ("a",), "msg": "m", "type": "t", "input": "x" * 100}) == (
        f"naomi:a: m (got {json.dumps('x' * 100)[:60]})"
    )
    assert _describe({"loc": ("a",), "msg": "m", "type": "t", "input": {"k": 1}}) == "naomi:a: m"
    assert _describe({"loc": ("a",), "msg": "m", "type": "t", "input": [1]}) == "naomi:a: m"
    assert _describe({"loc": ("a",), "msg": "m", "type": "t", "input": None}) == "naomi:a: m"
    assert _describe({"loc": ("a",), "msg": "m", "type": "t", "input": False}) == "naomi:a: m (got false)"
    assert _describe({"loc": ("a",), "msg": "m", "type": "missing"}) == "naomi:a: required key is missing"
    assert (
        _describe(
            {
                "loc": ("a",),
                "msg": "m",
                "type": "string_pattern_mismatch",
                "ctx": {"pattern": "^x$"},
                "input": "y",
            }
        )
        == 'naomi:a: must match ^x$ (got "y")'
    )
    assert _describe({"loc": ("nowhere", "k"), "msg": "m", "type": "extra_forbidden"}) == (
        "naomi:nowhere.k: unknown key; allowed keys: see the schema"
    )
    assert _describe({"loc": ("layers", "k"), "msg": "m", "type": "extra_forbidden"}) == (
        "naomi:layers.k: unknown key; allowed keys: platform, serving, workloads"
    )


# --- loading: keys, secrets, Pulumi's defaults -------------------------------------------------


def test_the_minimal_stack_loads() -> None:
    config = _load(_kubeconfig())
    assert config.cluster.mode == "kubeconfig" and config.gateway is not None
    assert config.kubeconfig is not None and config.kubeconfig.get_secret_value() == "apiVersion: v1"


def test_other_namespaces_and_pulumi_defaults_are_ignored() -> None:
    raw, secrets = _kubeconfig()
    raw.update({"kubernetes:context": "x", "naomi:ray": "{}", "naomi:tlsCertificate": ""})
    config = load_stack_config(raw, secrets | {"naomi:tlsCertificate"})
    assert config.tls_certificate is None and config.ray.enabled


def test_an_empty_plain_value_is_not_a_default() -> None:
    raw, secrets = _kubeconfig()
    raw["naomi:profile"] = ""
    assert _error((raw, secrets)) == "naomi:profile: Input should be 'edge', 'lab' or 'full' (got \"\")"


def test_unknown_keys_and_misplaced_secrets_are_all_listed() -> None:
    raw, secrets = _kubeconfig()
    raw["naomi:clustr"] = "{}"
    raw["naomi:sshPrivateKey"] = "plain"
    raw["naomi:tlsPrivateKey"] = "plain"
    raw["naomi:clus:ter"] = "{}"  # the namespace ends at the first colon
    raw["naomi:profile"] = "lab"
    with pytest.raises(ConfigError) as raised:
        load_stack_config(raw, secrets | {"naomi:profile"})
    allowed = ", ".join(sorted(StackConfig.model_fields[k].alias or k for k in StackConfig.model_fields))
    assert raised.value.messages == [
        f"naomi:clus:ter: unknown key; allowed keys: {allowed}",
        f"naomi:clustr: unknown key; allowed keys: {allowed}",
        "naomi:profile: holds a secure value, but secrets are separate keys "
        f"({', '.join(f'naomi:{k}' for k in SECRET_KEYS)})",
        "naomi:sshPrivateKey: must be a secret: pulumi config set --secret naomi:sshPrivateKey ...",
        "naomi:tlsPrivateKey: must be a secret: pulumi config set --secret naomi:tlsPrivateKey ...",
    ]
    assert raised.value.missing_secrets == ()


def test_structured_values_are_decoded_and_broken_json_stays_text() -> None:
    raw, secrets = _kubeconfig()
    raw["naomi:layers"] = "[1"
    assert _error((raw, secrets)) == 'naomi:layers: Input should be an object (got "[1")'
    raw["naomi:layers"] = '{"serving": false}'
    assert not load_stack_config(raw, secrets).layers.serving


def test_decode() -> None:
    from stacks.config import _decode

    assert _decode('{"a": 1}') == {"a": 1}
    assert _decode("[1, 2]") == [1, 2]
    assert _decode("{broken") == "{broken"
    assert _decode("plain") == "plain"
    assert _decode(" [1]") == " [1]"
    assert _decode(3) == 3


def test_secret_keys_are_the_secret_fields() -> None:
    assert SECRET_KEYS == (
        "sshPrivateKey",
        "kubeconfig",
        "tlsCertificate",
        "tlsPrivateKey",
        "objectStoreAccessKey",
        "objectStoreSecretKey",
    )


def test_a_missing_secret_names_the_command_and_is_collected() -> None:
    raw, _ = _kubeconfig()
    del raw["naomi:kubeconfig"]
    with pytest.raises(ConfigError) as raised:
        load_stack_config(raw, set())
    assert str(raised.value) == (
        "invalid stack config: naomi:kubeconfig: required for cluster.mode 'kubeconfig': "
        "pulumi config set --secret naomi:kubeconfig ..."
    )
    assert raised.value.missing_secrets == ("naomi:kubeconfig",)
    assert secrets_to_set(raw, set()) == ["naomi:kubeconfig"]


def test_secrets_to_set_follows_one_secret_after_another() -> None:
    raw, _ = _kubeconfig(gateway={"address": "10.0.0.1", "tls": {"mode": "provided"}})
    del raw["naomi:kubeconfig"]
    assert secrets_to_set(raw, set()) == ["naomi:kubeconfig", "naomi:tlsCertificate", "naomi:tlsPrivateKey"]
    raw["naomi:profile"] = "huge"  # another error: that one is reported, not the secrets
    assert secrets_to_set(raw, set()) == []
    assert secrets_to_set(*_kubeconfig()) == []


def test_secrets_to_set_finds_the_most_secrets_a_stack_can_need() -> None:
    external = {"mode": "external", "external": {"endpoint": "https://s3.lan"}}
    raw, _ = _kubeconfig(gateway={"address": "10.0.0.1", "tls": {"mode": "provided"}}, objectStore=external)
    del raw["naomi:kubeconfig"]
    assert secrets_to_set(raw, set()) == [
        "naomi:kubeconfig",
        "naomi:tlsCertificate",
        "naomi:tlsPrivateKey",
        "naomi:objectStoreAccessKey",
        "naomi:objectStoreSecretKey",
    ]


def test_a_secret_the_mode_does_not_use_is_refused() -> None:
    raw, secrets = _kubeconfig(sshPrivateKey="key")
    assert _error((raw, secrets | {"naomi:sshPrivateKey"})) == (
        "naomi:sshPrivateKey: not used with cluster.mode 'kubeconfig'; remove it"
    )
    raw, secrets = _microk8s(kubeconfig="x")
    assert _error((raw, secrets | {"naomi:kubeconfig"})) == (
        "naomi:kubeconfig: not used with cluster.mode 'microk8s'; remove it"
    )


def test_unused_tls_secrets_are_not_refused() -> None:
    raw, secrets = _kubeconfig(tlsCertificate="cert")
    assert _load((raw, secrets | {"naomi:tlsCertificate"})).tls_certificate is not None


def test_a_kubeconfig_file_or_the_secret_not_both() -> None:
    raw, secrets = _kubeconfig(cluster={"kubeconfig": {"path": "~/.kube/config"}})
    assert _error((raw, secrets)) == (
        "naomi:cluster.kubeconfig.path: set either this path or naomi:kubeconfig, not both"
    )
    raw, _ = _kubeconfig(cluster={"kubeconfig": {"path": "~/.kube/config"}}, kubeconfig=None)
    assert _load((raw, set())).kubeconfig is None


# --- cluster rules ---------------------------------------------------------------------------


def test_nodes_and_api_endpoint_belong_to_microk8s() -> None:
    assert _error(_kubeconfig(cluster={"nodes": [_node("a", "10.0.0.2")]})) == (
        "naomi:cluster: nodes are only provisioned in mode 'microk8s' (mode is 'kubeconfig')"
    )
    assert _error(_kubeconfig(cluster={"apiEndpoint": "10.0.0.9"})) == (
        "naomi:cluster.apiEndpoint: only used in mode 'microk8s' (mode is 'kubeconfig')"
    )
    assert _error(_kubeconfig(cluster={"mode": "stack"}, kubeconfig=None)) == (
        "naomi:cluster: mode 'stack' needs stack: {name: <org/project/stack>}"
    )
    raw, _ = _kubeconfig(cluster={"mode": "stack", "stack": {"name": "org/naomi/nodes"}}, kubeconfig=None)
    assert _load((raw, set())).cluster.stack is not None


def test_microk8s_needs_nodes_and_unique_names_and_addresses() -> None:
    assert _error(_microk8s(cluster={"mode": "microk8s"})) == (
        "naomi:cluster: mode 'microk8s' needs at least one entry in nodes"
    )
    cp = _node("cp-1", "10.0.0.1", role="control-plane")
    assert _error(_microk8s([cp, _node("w", "10.0.0.2"), _node("cp-1", "10.0.0.3")])) == (
        "naomi:cluster.nodes[2].name: duplicate name 'cp-1' (also nodes[0]); names must be unique"
    )
    assert _error(_microk8s([cp, _node("w", "10.0.0.2"), _node("x", "10.0.0.2")])) == (
        "naomi:cluster.nodes[2].address: duplicate address '10.0.0.2' (also nodes[1]); addresss must be unique"
    )


@pytest.mark.parametrize(
    ("planes", "error"),
    [
        (0, "naomi:cluster: at least one node needs role 'control-plane'"),
        (1, None),
        (2, "naomi:cluster: 2 control-plane nodes: use 1, or an odd number >= 3 for HA (dqlite quorum)"),
        (3, None),
        (4, "naomi:cluster: 4 control-plane nodes: use 1, or an odd number >= 3 for HA (dqlite quorum)"),
        (5, None),
    ],
)
def test_control_plane_counts(planes: int, error: str | None) -> None:
    nodes = [_node(f"cp-{i}", f"10.0.0.{i + 1}", role="control-plane") for i in range(planes)]
    nodes.append(_node("w", "10.0.1.1"))
    raw = _microk8s(nodes)
    if error is None:
        assert len(_load(raw).cluster.control_planes) == planes
    else:
        assert _error(raw) == error


@pytest.mark.parametrize(("planes", "ok"), [(1, False), (3, True), (5, True)])
def test_an_ha_endpoint_needs_three_control_planes(planes: int, ok: bool) -> None:
    nodes = [_node(f"cp-{i}", f"10.0.0.{i + 1}", role="control-plane") for i in range(planes)]
    raw = _microk8s(nodes, cluster={"mode": "microk8s", "nodes": nodes, "apiEndpoint": "10.0.0.100"})
    if ok:
        assert _load(raw).cluster.api_endpoint == "10.0.0.100"
    else:
        assert _error(raw) == (
            "naomi:cluster.apiEndpoint: an HA endpoint needs 3 or more control planes (1 in nodes); remove it"
        )


def test_raspberry_pis_are_arm64_workers() -> None:
    cp = _node("cp-1", "10.0.0.1", role="control-plane")
    for board in ("rpi4", "rpi5"):
        assert _error(_microk8s([cp, _node("pi", "10.0.0.2", board=board)])) == (
            f"naomi:cluster.nodes[1]: board '{board}' is a Raspberry Pi: arch must be 'arm64'"
        )
        assert _error(
            _microk8s([cp, _node("pi", "10.0.0.2", arch="arm64", board=board, role="control-plane")])
        ) == (
            "naomi:cluster.nodes[1]: Raspberry Pi nodes join as workers (the datastore does not belong on an SD card)"
        )
        assert _load(_microk8s([cp, _node("pi", "10.0.0.2", arch="arm64", board=board)]))
    generic = _node("arm", "10.0.0.3", arch="arm64", role="control-plane")
    assert _load(_microk8s([generic], ray={"pools": []})).cluster.architectures == frozenset({"arm64"})


def test_the_registry_addon_needs_an_explicit_opening() -> None:
    addons = ["dns", "registry"]
    raw = _microk8s(cluster={"mode": "microk8s", "nodes": [_node("cp", "10.0.0.1", role="control-plane")]})
    cluster = json.loads(raw[0]["naomi:cluster"])
    cluster["microk8s"] = {"addons": addons}
    raw[0]["naomi:cluster"] = json.dumps(cluster)
    assert _error(raw).startswith("naomi:cluster.microk8s.addons: the 'registry' addon is an unauthenticated")
    cluster["microk8s"]["allowUnauthenticatedRegistry"] = True
    raw[0]["naomi:cluster"] = json.dumps(cluster)
    assert "registry" in _load(raw).cluster.microk8s.addons


def test_the_channel_must_install_the_kubernetes_version() -> None:
    nodes = [_node("cp", "10.0.0.1", role="control-plane")]
    for channel in ("1.32/stable", "1.32-strict/stable", "1.32/edge"):
        raw = _microk8s(cluster={"mode": "microk8s", "nodes": nodes, "microk8s": {"channel": channel}})
        assert _load(raw).cluster.microk8s.channel == channel
    raw = _microk8s(cluster={"mode": "microk8s", "nodes": nodes, "microk8s": {"channel": "1.31/stable"}})
    assert _error(raw) == (
        "naomi:cluster.microk8s.channel: channel 1.31/stable installs Kubernetes 1.31, "
        "but kubernetesVersion is 1.32; change both together"
    )


def test_a_ray_pool_with_minimum_replicas_needs_its_architecture() -> None:
    pools = [{"name": "x86", "arch": "amd64", "min": 1, "max": 1}, {"name": "pi", "arch": "arm64", "min": 0}]
    assert _load(_microk8s(ray={"pools": pools})).ray.pools[1].min == 0
    pools[1]["min"] = 1
    assert _error(_microk8s(ray={"pools": pools})) == (
        "naomi:ray.pools[1].arch: no arm64 node in cluster.nodes for a pool with min 1"
    )
    assert _load(_kubeconfig(ray={"pools": pools}))  # no inventory to check against


def test_storage_selector() -> None:
    cp = _node("cp", "10.0.0.1", role="control-plane")
    assert _load(_microk8s([cp])).cluster.storage_selector == {"kubernetes.io/arch": "amd64"}
    labelled = _node("disk", "10.0.0.2", labels={"naomi.io/storage": "true"})
    assert _load(_microk8s([cp, labelled])).cluster.storage_selector == {"naomi.io/storage": "true"}
    other = _node("disk", "10.0.0.2", labels={"naomi.io/storage": "false"})
    assert _load(_microk8s([cp, other])).cluster.storage_selector == {"kubernetes.io/arch": "amd64"}
    raw = _microk8s(cluster={"mode": "microk8s", "nodes": [cp], "storageNodeSelector": {"disk": "ssd"}})
    assert _load(raw).cluster.storage_selector == {"disk": "ssd"}


# --- platform rules --------------------------------------------------------------------------


def test_the_platform_layer_needs_a_gateway() -> None:
    assert _error(_kubeconfig(gateway=None)) == (
        "naomi:gateway: required when layers.platform is on: {address: <node IP or DNS name>}"
    )
    assert _load(_kubeconfig(gateway=None, layers={"platform": False})).gateway is None


def test_provided_tls_needs_both_secrets() -> None:
    raw, secrets = _kubeconfig(
        gateway={"address": "10.0.0.1", "tls": {"mode": "provided"}}, tlsCertificate="c"
    )
    assert _error((raw, secrets | {"naomi:tlsCertificate"})) == (
        "naomi:tlsPrivateKey: required for gateway.tls.mode 'provided': pulumi config set --secret "
        "naomi:tlsPrivateKey ..."
    )
    raw["naomi:tlsPrivateKey"] = "k"
    assert _load((raw, secrets | {"naomi:tlsCertificate", "naomi:tlsPrivateKey"})).tls_private_key


@pytest.mark.parametrize("bucket", ["mlflow", "flyte", "backups"])
def test_the_platforms_buckets_are_required(bucket: str) -> None:
    buckets = [b for b in ("datasets", "mlflow", "flyte", "ray", "backups") if b != bucket]
    assert _error(_kubeconfig(objectStore={"buckets": buckets})) == (
        f"naomi:objectStore.buckets: must include {bucket!r} (used by the platform)"
    )


def test_buckets_of_disabled_components_are_optional() -> None:
    off = {"mlflow": {"enabled": False}, "flyte": {"enabled": False}, "layers": {"workloads": False}}
    config = _load(_kubeconfig(objectStore={"buckets": ["backups"]}, **off))
    assert config.object_store.buckets == ("backups",)


def test_object_store_modes() -> None:
    assert _error(_kubeconfig(objectStore={"mode": "external"})) == (
        "naomi:objectStore: mode 'external' needs external: {endpoint: https://...}"
    )
    assert _error(_kubeconfig(objectStore={"external": {"endpoint": "https://s3.lan"}})) == (
        "naomi:objectStore: external is only used with mode 'external'"
    )
    assert _error(
        _kubeconfig(objectStore={"buckets": ["mlflow", "flyte", "backups", "ray", "ray", "a", "a"]})
    ) == ("naomi:objectStore: buckets must be unique; repeated: a, ray")
    external = {"mode": "external", "external": {"endpoint": "https://s3.lan"}}
    assert _error(_kubeconfig(objectStore=external)) == (
        "naomi:objectStoreAccessKey: required for objectStore.mode 'external': pulumi config set --secret "
        "naomi:objectStoreAccessKey ..."
    )
    raw, secrets = _kubeconfig(objectStore=external, objectStoreAccessKey="a", objectStoreSecretKey="s")
    config = _load((raw, secrets | {"naomi:objectStoreAccessKey", "naomi:objectStoreSecretKey"}))
    assert config.object_store.external is not None


def test_ray_pool_bounds_and_names() -> None:
    pool = {"name": "x86", "arch": "amd64", "min": 2, "max": 2}
    assert _load(_kubeconfig(ray={"pools": [pool]})).ray.pools[0].max == 2
    assert _error(_kubeconfig(ray={"pools": [{**pool, "max": 1}]})) == (
        "naomi:ray.pools[0]: min (2) must not exceed max (1)"
    )
    pools = [pool, {**pool, "arch": "arm64"}, {**pool, "name": "b"}, {**pool, "name": "b"}]
    assert (
        _error(_kubeconfig(ray={"pools": pools})) == "naomi:ray: pool names must be unique; repeated: b, x86"
    )


# --- serving and retraining ------------------------------------------------------------------


def _model(**fields: Any) -> dict[str, Any]:
    return {"name": "qoe", "model": "qoe", "alias": "champion", **fields}


def test_a_served_model_has_a_version_or_an_alias() -> None:
    assert _error(_kubeconfig(serving={"models": [_model(version=1)]})) == (
        "naomi:serving.models[0]: set exactly one of version or alias"
    )
    assert _error(_kubeconfig(serving={"models": [{"name": "q", "model": "qoe"}]})) == (
        "naomi:serving.models[0]: set exactly one of version or alias"
    )
    assert _load(_kubeconfig(serving={"models": [{"name": "q", "model": "qoe", "version": 3}]}))
    assert _error(_kubeconfig(serving={"models": [_model(min=3, max=2)]})) == (
        "naomi:serving.models[0]: min (3) must not exceed max (2)"
    )
    assert _load(_kubeconfig(serving={"models": [_model(min=2, max=2)]})).serving.models[0].min == 2


def test_serving_needs_mlflow_and_ray_for_ray_serve() -> None:
    assert _error(_kubeconfig(serving={"models": [_model()]}, mlflow={"enabled": False})) == (
        "naomi:serving.models[0].model: serving loads models from MLflow: set mlflow.enabled true"
    )
    assert _error(_kubeconfig(serving={"models": [_model()]}, ray={"enabled": False})) == (
        "naomi:serving.models[0].runtime: runtime 'ray-serve' needs ray.enabled true"
    )
    deployment = _model(runtime="deployment")
    assert _load(_kubeconfig(serving={"models": [deployment]}, ray={"enabled": False}))
    assert _error(_kubeconfig(serving={"models": [{**deployment, "pool": "x86"}]})) == (
        "naomi:serving.models[0].pool: pool belongs to runtime 'ray-serve'; use arch"
    )


def test_ray_serve_models_and_pools_must_exist() -> None:
    from stacks.config import SERVE_APP_MODELS

    assert _error(_kubeconfig(serving={"models": [_model(model="resnet")]})) == (
        "naomi:serving.models[0].runtime: no Ray Serve application for model 'resnet' (known: "
        f"{', '.join(SERVE_APP_MODELS)}); use runtime 'deployment' (generic MLflow model server)"
    )
    assert _load(_kubeconfig(serving={"models": [_model(model="resnet", runtime="deployment")]}))
    pools = [{"name": "x86", "arch": "amd64"}, {"name": "arm", "arch": "arm64"}]
    assert _error(_kubeconfig(serving={"models": [_model(pool="gpu")]}, ray={"pools": pools})) == (
        "naomi:serving.models[0].pool: unknown Ray pool 'gpu'; pools: arm, x86"
    )
    assert _error(_kubeconfig(serving={"models": [_model(pool="gpu")]}, ray={"pools": []})) == (
        "naomi:serving.models[0].pool: unknown Ray pool 'gpu'; pools: none"
    )
    assert _load(_kubeconfig(serving={"models": [_model(pool="arm")]}, ray={"pools": pools}))


def test_served_model_names_are_unique() -> None:
    models = [_model(), _model(name="b"), _model(name="b"), _model()]
    assert _error(_kubeconfig(serving={"models": models})) == (
        "naomi:serving.models: model names must be unique; repeated: b, qoe"
    )


def test_the_workloads_layer_needs_flyte_and_mlflow() -> None:
    for needed in ("flyte", "mlflow"):
        assert _error(_kubeconfig(**{needed: {"enabled": False}})) == (
            "naomi:layers.workloads: the workloads layer registers pipelines in Flyte and models in MLflow: "
            f"set {needed}.enabled true, or layers.workloads false"
        )
    off = {"flyte": {"enabled": False}, "objectStore": {"buckets": ["mlflow", "backups"]}}
    assert _load(_kubeconfig(workloads={"pipelines": []}, **off))
    assert _load(_kubeconfig(layers={"workloads": False}, **off))
    assert _load(_kubeconfig(layers={"platform": False}, gateway=None, **off))


def _trigger(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "kind": "metric", "workflow": "qoe_train", "expr": "up > 0", **fields}


def test_trigger_kinds_have_their_own_fields() -> None:
    schedule = {"name": "n", "kind": "schedule", "workflow": "qoe_train"}
    assert _error(_kubeconfig(retraining={"triggers": [schedule]})) == (
        "naomi:retraining.triggers[0]: kind 'schedule' needs cron"
    )
    for extra in ({"expr": "up"}, {"for": "5m"}, {"cooldown": "1h"}):
        assert _error(_kubeconfig(retraining={"triggers": [{**schedule, "cron": "0 3 * * *", **extra}]})) == (
            "naomi:retraining.triggers[0]: expr, for and cooldown belong to kind 'metric'"
        )
    assert _error(_kubeconfig(retraining={"triggers": [_trigger(expr=None)]})) == (
        "naomi:retraining.triggers[0]: kind 'metric' needs expr (a PromQL expression)"
    )
    assert _error(_kubeconfig(retraining={"triggers": [_trigger(cron="0 3 * * *")]})) == (
        "naomi:retraining.triggers[0]: cron belongs to kind 'schedule'"
    )
    config = _load(_kubeconfig(retraining={"triggers": [_trigger(), {**schedule, "cron": "0 3 * * *"}]}))
    assert [t.kind for t in config.retraining.triggers] == ["metric", "schedule"]


def test_trigger_needs_monitoring_and_its_pipeline() -> None:
    schedule = {"name": "n", "kind": "schedule", "workflow": "qoe_train", "cron": "0 3 * * *"}
    triggers = [schedule, _trigger()]
    assert _error(_kubeconfig(retraining={"triggers": triggers}, monitoring={"enabled": False})) == (
        "naomi:retraining.triggers[1].kind: metric triggers need Prometheus and Alertmanager: "
        "set monitoring.enabled true"
    )
    assert _load(_kubeconfig(retraining={"triggers": [schedule]}, monitoring={"enabled": False}))
    assert _error(_kubeconfig(retraining={"triggers": triggers}, workloads={"pipelines": ["mnist"]})) == (
        "naomi:retraining.triggers[0].workflow: qoe_train needs pipeline 'qoe' in workloads.pipelines"
    )


# --- the schema --------------------------------------------------------------------------------


def test_json_schema_is_keyed_like_a_stack_file() -> None:
    schema = json_schema()
    assert schema["title"] == "naomi stack configuration"
    assert schema["additionalProperties"] is True
    assert "required" not in schema
    assert "naomi:cluster" in schema["properties"] and "cluster" not in schema["properties"]
    pattern = schema["propertyNames"]["not"]["pattern"]
    assert pattern.startswith("^naomi:(?!(profile|kubernetesVersion|layers|")
    assert pattern.endswith(")$)")


def test_the_chart_cache_goes_with_source_cache() -> None:
    assert _error(_kubeconfig(charts={"source": "cache"})) == (
        "naomi:charts.cache: required with source 'cache': the folder naomi charts pull --cache filled"
    )
    assert _error(_kubeconfig(charts={"cache": "charts"})) == (
        "naomi:charts.cache: only used with source 'cache'; with source 'repository' and crds 'program' the "
        "CRDs come from the machine's chart cache ($NAOMI_CHARTS, else ~/.cache/naomi/charts)"
    )
    assert _load(_kubeconfig(charts={"source": "cache", "cache": "charts"})).charts.cache == "charts"
    assert _load(_kubeconfig(charts={"crds": "program"})).charts.source == "repository"
