"""What prometheus-operator builds from the chart's Prometheus and Alertmanager resources.

kube-prometheus-stack renders `Prometheus` and `Alertmanager` custom resources; the pods that run
are StatefulSets that prometheus-operator (the chart's appVersion, v0.93.1) makes from them, plus
the governing Services `prometheus-operated` and `alertmanager-operated`. This module owns that
translation as pure functions over manifests: `operator_settings` reads the operator Deployment's
flags (config-reloader image, resources and probes, `--localhost`, `--labels`, ...),
`expand_prometheus` and `expand_alertmanager` return the objects the operator creates for one
resource, `expanders` wires both into `naomi.cluster.model.ClusterModel`.

Source: github.com/prometheus-operator/prometheus-operator at tag v0.93.0 (the newest tag in the
mirror, commit f8fafd47). v0.93.1 (cut from release-0.93 in #8750) is not in the mirror; its release
notes, as far as they could be read, list #8739 (kubelet Endpoints, `pkg/kubelet`), and every fix
merged on main between v0.93.0 and the cut (#8743 kubelet panic, #8225 Mattermost URL validation,
embedded tzdata in cmd/operator) touches none of the code modelled here: `git diff v0.93.0 main`
over pkg/prometheus/server/statefulset.go, pkg/prometheus/common.go, pkg/prometheus/promcfg.go,
pkg/alertmanager/statefulset.go, pkg/operator/config_reloader.go, pkg/operator/config.go and
pkg/k8s/merge.go is empty. Every behaviour below names its file and function. Fields of the resources that change the pods and are
not modelled here are refused with an error naming the field (never silently dropped); fields that
only reach the generated Prometheus/Alertmanager configuration are accepted and ignored.

Not modelled: the `prometheus-operator-input-hash` annotation (a hash of the whole input), UIDs in
owner references, the objects' status, and rule ConfigMaps beyond the three names the operator
always mounts (`rule_config_maps` takes the real list when rules exceed three ConfigMaps).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import quote

from naomi.cluster.model import Expander, ModelObject

GROUP_VERSION = "monitoring.coreos.com/v1"

# pkg/operator/defaults.go (v0.93.0): used only when a resource sets no version or image.
DEFAULT_PROMETHEUS_VERSION = "v3.13.1"
DEFAULT_PROMETHEUS_BASE_IMAGE = "quay.io/prometheus/prometheus"
DEFAULT_ALERTMANAGER_VERSION = "v0.33.1"
DEFAULT_ALERTMANAGER_BASE_IMAGE = "quay.io/prometheus/alertmanager"
# DefaultPrometheusConfigReloaderImage is "...:v" + the operator's own version.
DEFAULT_RELOADER_IMAGE = "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"

# pkg/operator/kubernetes.go and factory.go: the labels every operator-made object carries.
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "prometheus-operator"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
VERSION_LABEL = "app.kubernetes.io/version"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
CONTROLLER_ID = "operator.prometheus.io/controller-id"

Manifest = dict[str, Any]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- the operator's flags --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OperatorSettings:
    """The parts of the operator's configuration that shape the pods it builds.

    Defaults are the operator's own (cmd/operator/main.go parseFlags, v0.93.0): the reloader gets
    10m CPU and 50Mi memory as both request and limit when no `--config-reloader-*` flag is given;
    a flag value of "0" means no request or limit at all (pkg/operator/config.go
    ContainerConfig.ResourceRequirements)."""

    reloader_image: str = DEFAULT_RELOADER_IMAGE
    reloader_cpu_request: str = "10m"
    reloader_cpu_limit: str = "10m"
    reloader_memory_request: str = "50Mi"
    reloader_memory_limit: str = "50Mi"
    reloader_probes: bool = False  # --enable-config-reloader-probes
    local_host: str = "localhost"  # --localhost
    cluster_domain: str = ""  # --cluster-domain
    labels: Mapping[str, str] = field(default_factory=dict)  # --labels, on every object
    annotations: Mapping[str, str] = field(default_factory=dict)  # --annotations
    controller_id: str = ""  # --controller-id
    prometheus_default_base_image: str = DEFAULT_PROMETHEUS_BASE_IMAGE
    alertmanager_default_base_image: str = DEFAULT_ALERTMANAGER_BASE_IMAGE

    def reloader_resources(self) -> dict[str, dict[str, str]]:
        """pkg/operator/config.go ContainerConfig.ResourceRequirements: a quantity whose canonical
        form is "0" is left out. Kept as written (the API server stores the canonical form)."""
        resources: dict[str, dict[str, str]] = {"limits": {}, "requests": {}}
        for section, resource, quantity in (
            ("requests", "cpu", self.reloader_cpu_request),
            ("limits", "cpu", self.reloader_cpu_limit),
            ("requests", "memory", self.reloader_memory_request),
            ("limits", "memory", self.reloader_memory_limit),
        ):
            if not _is_zero_quantity(quantity):
                resources[section][resource] = quantity
        return {section: values for section, values in resources.items() if values}

    def reconciles(self, obj: Mapping[str, Any]) -> bool:
        """Whether the operator acts on a resource: with --controller-id only on resources annotated
        with the same id, without it only on those with no (or an empty) annotation
        (pkg/operator/resource_reconciler.go isManagedByController); never on a paused one (sync returns early on spec.paused,
        pkg/prometheus/server/operator.go and pkg/alertmanager/operator.go), so a resource created
        paused gets no StatefulSet at all."""
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(CONTROLLER_ID) or "") != self.controller_id:
            return False
        return not (obj.get("spec") or {}).get("paused")


# Every flag the operator binary defines (cmd/operator/main.go parseFlags, pkg/server RegisterFlags,
# internal/log RegisterFlags, pkg/versionutil RegisterFlags, pkg/operator/config.go feature gates).
# Go's flag package needs the boolean ones to parse `-flag value`; an undefined flag stops the
# operator ("flag provided but not defined", flag.ExitOnError).
_BOOL_FLAGS = _words(
    "tls-insecure kubelet-endpointslice kubelet-endpoints kubelet-http-metrics "
    "enable-config-reloader-probes watch-referenced-objects-in-all-namespaces "
    "disable-unmanaged-prometheus-configuration web.enable-http2 web.enable-tls version short-version"
)
_MODELLED_VALUE_FLAGS = _words(
    "prometheus-config-reloader config-reloader-cpu-request config-reloader-cpu-limit "
    "config-reloader-memory-request config-reloader-memory-limit localhost cluster-domain labels "
    "annotations controller-id prometheus-default-base-image alertmanager-default-base-image"
)
# Flags that decide which resources the operator reconciles at all; not modelled, so refused.
_SCOPING_FLAGS = _words(
    "namespaces deny-namespaces prometheus-instance-namespaces alertmanager-instance-namespaces "
    "prometheus-instance-selector alertmanager-instance-selector"
)
# Defined flags with no effect on the Prometheus and Alertmanager pods.
_OTHER_VALUE_FLAGS = _words(
    "as apiserver cert-file key-file ca-file kubelet-service kubelet-selector "
    "kubelet-node-address-priority kubelet-sync-period thanos-default-base-image "
    "repair-policy-for-statefulsets alertmanager-config-namespaces thanos-ruler-instance-namespaces "
    "thanos-ruler-instance-selector secret-field-selector secret-label-selector "
    "configmap-field-selector configmap-label-selector auto-gomemlimit-ratio web.listen-address "
    "web.cert-file web.key-file web.client-ca-file web.tls-reload-interval web.tls-min-version "
    "web.tls-cipher-suites web.tls-curves log-level log-format feature-gates"
)
_VALUE_FLAGS = _MODELLED_VALUE_FLAGS | _SCOPING_FLAGS | _OTHER_VALUE_FLAGS


def _go_flags(arguments: Sequence[str]) -> list[tuple[str, str]]:
    """(name, value) pairs in order, parsed like Go's flag.FlagSet.Parse: `-f`/`--f`, `=value` or
    (non-boolean flags) the next argument; parsing stops at the first non-flag and after `--`."""
    parsed: list[tuple[str, str]] = []
    index = 0
    while index < len(arguments):
        token = arguments[index]
        index += 1
        if token == "--":
            break
        if len(token) < 2 or not token.startswith("-"):
            break
        name = token[2:] if token.startswith("--") else token[1:]
        if not name or name.startswith("-") or name.startswith("="):
            raise ValueError(f"operator argument {token!r}: bad flag syntax")
        name, equals, value = name.partition("=")
        if name in _BOOL_FLAGS:
            value = value if equals else "true"
        elif name in _VALUE_FLAGS:
            if not equals:
                if index >= len(arguments):
                    raise ValueError(f"operator argument {token!r}: flag needs an argument")
                value = arguments[index]
                index += 1
        else:
            raise ValueError(f"operator argument {token!r}: flag provided but not defined")
        parsed.append((name, value))
    return parsed


def _go_bool(name: str, value: str) -> bool:
    # strconv.ParseBool, as flag's boolValue.Set uses it.
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"operator flag --{name}={value}: invalid boolean value")


def _key_values(name: str, value: str, into: dict[str, str]) -> None:
    # pkg/operator/config.go Map.Set: comma-separated key=value pairs, merged across repeats.
    if not value:
        return
    for pair in value.split(","):
        key, equals, item = pair.partition("=")
        if not equals:
            raise ValueError(f"operator flag --{name}: invalid key=value pair: {pair!r}")
        into[key] = item


def _repository_and_tag(image: str) -> tuple[str, str]:
    # "registry:5000/path/name:tag@sha256:..." -> ("registry:5000/path/name", "tag")
    reference = image.split("@", 1)[0]
    path, _, last = reference.rpartition("/")
    name, _, tag = last.partition(":")
    return (f"{path}/{name}" if path else name), tag


def _operator_container(deployment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The container running the operator binary (image .../prometheus-operator), if any."""
    if deployment.get("kind") != "Deployment":
        return None
    template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        repository, _ = _repository_and_tag(str(container.get("image", "")))
        if repository.endswith("/prometheus-operator"):
            found: Mapping[str, Any] = container
            return found
    return None


def operator_settings(deployment: Mapping[str, Any]) -> OperatorSettings:
    """The settings the operator runs with, from its Deployment's container command and args."""
    container = _operator_container(deployment)
    if container is None:
        name = (deployment.get("metadata") or {}).get("name")
        raise ValueError(
            f"Deployment {name}: no prometheus-operator container (image .../prometheus-operator)"
        )
    arguments = [str(a) for a in [*(container.get("command") or [])[1:], *(container.get("args") or [])]]
    _, tag = _repository_and_tag(str(container.get("image", "")))
    values: dict[str, Any] = {}
    if tag:
        # The default reloader image is tagged "v" + the operator's version: its image tag here.
        values["reloader_image"] = f"quay.io/prometheus-operator/prometheus-config-reloader:{tag}"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    quantities = {
        "config-reloader-cpu-request": "reloader_cpu_request",
        "config-reloader-cpu-limit": "reloader_cpu_limit",
        "config-reloader-memory-request": "reloader_memory_request",
        "config-reloader-memory-limit": "reloader_memory_limit",
    }
    plain = {
        "prometheus-config-reloader": "reloader_image",
        "localhost": "local_host",
        "cluster-domain": "cluster_domain",
        "controller-id": "controller_id",
        "prometheus-default-base-image": "prometheus_default_base_image",
        "alertmanager-default-base-image": "alertmanager_default_base_image",
    }
    for name, value in _go_flags(arguments):
        if name in _SCOPING_FLAGS and value:
            raise ValueError(
                f"operator flag --{name}={value}: which resources the operator reconciles is not modelled"
            )
        if name in quantities:
            # Quantity.Set: an empty value keeps the default; anything else must parse.
            if value:
                _is_zero_quantity(value, f"--{name}")
                values[quantities[name]] = value
        elif name in plain:
            values[plain[name]] = value
        elif name == "enable-config-reloader-probes":
            values["reloader_probes"] = _go_bool(name, value)
        elif name == "labels":
            _key_values(name, value, labels)
        elif name == "annotations":
            _key_values(name, value, annotations)
    return OperatorSettings(**values, labels=labels, annotations=annotations)


_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|)"
)


def _is_zero_quantity(text: str, where: str = "quantity") -> bool:
    """Whether a Kubernetes quantity is zero (k8s.io/apimachinery resource.ParseQuantity grammar);
    a malformed one is the error the operator's flag parsing stops with."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{where}={text}: quantities must match the regular expression of resource.Quantity")
    try:
        return Decimal(match.group("number")) == 0
    except InvalidOperation as error:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{where}={text}: not a number") from error


# --- small Go equivalents ----------------------------------------------------------------------------


class _Version(NamedTuple):
    """github.com/blang/semver/v4 Version (ParseTolerant, String, comparisons)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...]
    build: str

    def text(self) -> str:
        pre = "-" + ".".join(self.pre) if self.pre else ""
        build = "+" + self.build if self.build else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}{build}"

    def at_least(self, minimum: str) -> bool:
        return _compare(self, _parse_version(minimum)) >= 0


_SEMVER = re.compile(
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def _parse_version(text: str) -> _Version:
    """semver.ParseTolerant: trims spaces and a leading "v", drops leading zeros, pads "3.14"."""
    original = text
    text = text.strip().removeprefix("v")
    parts = text.split(".", 2)
    for i, part in enumerate(parts):
        if len(part) > 1:
            part = part.lstrip("0")
            if not part or not part[0].isdigit():
                part = "0" + part
            parts[i] = part
    if len(parts) < 3:
        if any(c in parts[-1] for c in "+-"):
            raise ValueError(f"version {original!r}: short version cannot contain PreRelease/Build meta data")
        parts += ["0"] * (3 - len(parts))
    match = _SEMVER.fullmatch(".".join(parts))
    if match is None:
        raise ValueError(f"version {original!r}: not a semantic version")
    pre = tuple(match.group("pre").split(".")) if match.group("pre") else ()
    return _Version(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        pre,
        match.group("build") or "",
    )


def _compare(a: _Version, b: _Version) -> int:
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    if a.pre == b.pre:
        return 0
    if not a.pre or not b.pre:  # a release is greater than any of its pre-releases
        return 1 if not a.pre else -1
    for left, right in zip(a.pre, b.pre, strict=False):
        if left == right:
            continue
        if left.isdigit() and right.isdigit():
            return -1 if int(left) < int(right) else 1
        if left.isdigit() != right.isdigit():
            return -1 if left.isdigit() else 1  # numeric identifiers sort first
        return -1 if left < right else 1
    return -1 if len(a.pre) < len(b.pre) else 1


def _clean_path(path: str) -> str:
    """Go's path.Clean (unlike posixpath.normpath, it also collapses a leading "//")."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    return ("/" + cleaned) if rooted else (cleaned or ".")


def _url(scheme: str, host: str, path: str) -> str:
    # net/url URL.String with Path set: the path is escaped as EscapedPath does.
    escaped = quote(path, safe="/!$&'()*+,;=:@[]~")
    return f"{scheme}://{host}{escaped}"


def _exec_probe(url: str) -> Manifest:
    # pkg/operator/prober.go ExecAction: curl, else wget, else fail.
    command = (
        f'if [ -x "$(command -v curl)" ]; then exec curl --fail {url}; '
        f'elif [ -x "$(command -v wget)" ]; then exec wget -q -O /dev/null {url}; else exit 1; fi'
    )
    return {"exec": {"command": ["sh", "-c", command]}}


_INVALID_LABEL_CHARACTERS = re.compile(r"[^-a-z0-9]+")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _volume_name(prefix: str, name: str) -> str:
    """pkg/k8s/resource_namer.go ResourceNamer.DNS1123Label: prefix, lower case, invalid runs to "-",
    trimmed, cut at 63 characters; an invalid result is an error of the reconcile."""
    label = _INVALID_LABEL_CHARACTERS.sub("-", f"{prefix.rstrip('-')}-{name}".lower()).strip("-")[:63]
    if not _DNS1123_LABEL.fullmatch(label):
        raise ValueError(f"volume name {label!r} for {name!r} is not a valid DNS-1123 label")
    return label


def _arguments(managed: Sequence[tuple[str, str]], additional: Sequence[Mapping[str, Any]]) -> list[str]:
    """pkg/operator/argument.go BuildArgs: `--name=value` (or `--name`), refusing additional
    arguments that repeat or negate (`no-`) a managed one."""
    names = {name for name, _ in managed}
    clashes = []
    for item in additional:
        name = str(item.get("name", ""))
        if name in names:
            clashes.append(name)
            continue
        negated = name.removeprefix("no-") if name.startswith("no-") else f"no-{name}"
        if negated in names:
            clashes.append(negated)
    if clashes:
        raise ValueError(
            f"can't set arguments which are already managed by the operator: {','.join(clashes)}"
        )
    every = [*managed, *((str(a["name"]), str(a.get("value") or "")) for a in additional)]
    return [f"--{name}={value}" if value else f"--{name}" for name, value in every]


def _labels(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """pkg/operator/factory.go UpdateObject/WithLabels: the managed-by labels first, each later layer
    taking precedence over what is already there."""
    merged = {"managed-by": OPERATOR, MANAGED_BY: OPERATOR}
    for layer in layers:
        merged.update(layer or {})
    return merged


def _annotations(*layers: Mapping[str, str] | None) -> dict[str, str]:
    # WithAnnotations in order, then WithoutKubectlAnnotations (kubectl.kubernetes.io/* removed).
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer or {})
    return {k: v for k, v in merged.items() if not k.startswith("kubectl.kubernetes.io/")}


def _owner(kind: str, metadata: Mapping[str, Any], controller: bool) -> Manifest:
    # factory.go WithManagingOwner (controller) / WithOwner (governing Services).
    # The owner's uid exists only once the API server stored it: a stand-in keeps the reference
    # valid (ownerReferences require uid) and recognisable.
    reference: Manifest = {
        "apiVersion": GROUP_VERSION,
        "kind": kind,
        "name": metadata.get("name"),
        "uid": metadata.get("uid") or f"<uid:{kind}/{metadata.get('name')}>",
    }
    if controller:
        reference.update(blockOwnerDeletion=True, controller=True)
    return reference


def _default(value: Any, default: Any) -> Any:
    # ptr.Deref: a field that is absent or null takes the default.
    return default if value is None else value


def _compact(values: Mapping[str, Any]) -> Manifest:
    """Go's omitempty for the fields built here: None and empty lists/maps are left out."""
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


# --- strategic merge of container overrides ----------------------------------------------------------

# k8s.io/api core/v1 Container: the lists with patchStrategy=merge and their patchMergeKey.
_CONTAINER_MERGE_KEYS = {
    "ports": "containerPort",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}


def _merge_map(
    original: Mapping[str, Any], patch: Mapping[str, Any], merge_keys: Mapping[str, str]
) -> Manifest:
    """strategicpatch.StrategicMergePatch on one object: maps merge recursively, null deletes, lists
    with a merge key merge by it, other lists are replaced. Patch directives are refused."""
    merged = dict(original)
    for key, value in patch.items():
        if key.startswith("$"):
            raise ValueError(f"strategic merge directive {key!r} in a container override is not modelled")
        if value is None:
            merged.pop(key, None)
        elif key in merge_keys and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, merge_keys[key])
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge_map(merged[key], value, {})
        else:
            merged[key] = value
    return merged


def _merge_list(original: Sequence[Any], patch: Sequence[Any], key: str) -> list[Any]:
    """mergeSlice for a list of maps: patch items merge into the original item with the same merge
    key or are added; then normalizeElementOrder/mergeSortedSlice order the result: the patch's items
    in patch order, the others in original order, interleaved so that an original item goes first
    only when it preceded the patch item in the original (an added item goes before the original
    items still waiting)."""
    merged = [dict(item) for item in original]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise ValueError(f"container override list item {item!r} has no merge key {key!r}")
        position = next((i for i, m in enumerate(merged) if m.get(key) == item[key]), None)
        if position is None:
            merged.append(dict(item))
        else:
            merged[position] = _merge_map(merged[position], item, {})
    patch_keys = [item[key] for item in patch]
    original_keys = [item.get(key) for item in original]
    from_patch = sorted(
        (m for m in merged if m.get(key) in patch_keys), key=lambda m: patch_keys.index(m[key])
    )
    server_only = [m for m in merged if m.get(key) not in patch_keys]
    result: list[Any] = []
    while server_only or from_patch:
        if server_only and from_patch:
            left, right = server_only[0].get(key), from_patch[0].get(key)
            if (
                left in original_keys
                and right in original_keys
                and original_keys.index(left) < original_keys.index(right)
            ):
                result.append(server_only.pop(0))
            else:
                result.append(from_patch.pop(0))
        else:
            result.append((server_only or from_patch).pop(0))
    return result


_PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def merge_patch_containers(base: Sequence[Manifest], patches: Sequence[Mapping[str, Any]]) -> list[Manifest]:
    """pkg/k8s/merge.go MergePatchContainers: each override merges into the operator's container of
    the same name (then sanitizeProbeHandlers keeps only the override's handler where both set one);
    overrides naming no operator container are appended in their order."""
    by_name = {str(patch.get("name")): patch for patch in patches}
    out: list[Manifest] = []
    for container in base:
        patch = by_name.pop(str(container["name"]), None)
        if patch is None:
            out.append(container)
            continue
        merged = _merge_map(container, patch, _CONTAINER_MERGE_KEYS)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            both = isinstance(merged.get(probe), Mapping) and isinstance(patch.get(probe), Mapping)
            if both and sum(1 for h in _PROBE_HANDLERS if merged[probe].get(h) is not None) > 1:
                handlers = {h: patch[probe][h] for h in _PROBE_HANDLERS if h in patch[probe]}
                rest = {k: v for k, v in merged[probe].items() if k not in _PROBE_HANDLERS}
                merged[probe] = {**rest, **handlers}
        out.append(merged)
    out += [dict(patch) for patch in patches if str(patch.get("name")) in by_name]
    return out


# --- the config reloader ---------------------------------------------------------------------------

RELOADER_PORT = 8080
INIT_RELOADER_PORT = 8081


@dataclass(frozen=True)
class _Reloader:
    """The options pkg/operator/config_reloader.go CreateConfigReloader takes."""

    name: str
    config_file: str
    envsubst_file: str
    mounts: Sequence[Manifest]
    watched: Sequence[str]
    shard: int
    init: bool = False
    reload_url: str = ""
    listen_local: bool = False
    web_config_file: str = ""
    log_level: str = ""
    log_format: str = ""
    pull_policy: str | None = None


def _config_reloader(options: _Reloader, settings: OperatorSettings) -> Manifest:
    """pkg/operator/config_reloader.go CreateConfigReloader (HTTP reload strategy)."""
    args: list[str] = []
    ports: list[Manifest] = []
    if options.init:
        args.append("--watch-interval=0")
    if options.listen_local:
        args.append(f"--listen-address={settings.local_host}:{RELOADER_PORT}")
    else:
        # Distinct ports for the init and regular containers (avoids client warnings).
        port = INIT_RELOADER_PORT if options.init else RELOADER_PORT
        args.append(f"--listen-address=:{port}")
        ports.append(
            {
                "name": "reloader-init" if options.init else "reloader-web",
                "containerPort": port,
                "protocol": "TCP",
            }
        )
    if options.web_config_file:
        args.append(f"--web-config-file={options.web_config_file}")
    if options.reload_url:
        args.append(f"--reload-url={options.reload_url}")
    watched = list(options.watched)
    args.append(f"--config-file={options.config_file}")
    # The config file's directory is always watched (faster reloads than the watch interval).
    directory = options.config_file.rsplit("/", 1)[0] or "/"
    if directory not in watched:
        watched.append(directory)
    args.append(f"--config-envsubst-file={options.envsubst_file}")
    args += [f"--watched-dir={d}" for d in watched]
    if options.log_level not in ("", "info"):
        args.append(f"--log-level={options.log_level}")
    if options.log_format not in ("", "logfmt"):
        args.append(f"--log-format={options.log_format}")
    container = _compact(
        {
            "name": options.name,
            "image": settings.reloader_image,
            "imagePullPolicy": options.pull_policy,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "SHARD", "value": str(options.shard)},
            ],
            "command": ["/bin/prometheus-config-reloader"],
            "args": args,
            "ports": ports,
            "volumeMounts": [dict(m) for m in options.mounts],
        }
    )
    container["resources"] = settings.reloader_resources()  # a struct in Go: always serialised
    container["securityContext"] = _operator_security_context()
    if not options.init and settings.reloader_probes:
        # ConfigReloader.addProbes: the same handler for all three probes, default timings.
        handler = (
            _exec_probe(f"http://localhost:{RELOADER_PORT}/healthz")
            if options.listen_local
            else {"httpGet": {"path": "/healthz", "port": RELOADER_PORT}}
        )
        container.update(
            livenessProbe=dict(handler), readinessProbe=dict(handler), startupProbe=dict(handler)
        )
    return container


def _operator_security_context() -> Manifest:
    # The container security context the operator sets on every container it builds.
    return {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


# --- resource fields ------------------------------------------------------------------------------------

# Spec fields whose effect on the pods, Services and StatefulSets is modelled below.
_COMMON_FIELDS = _words(
    "version image imagePullPolicy imagePullSecrets replicas retention routePrefix externalUrl "
    "portName listenLocal logLevel logFormat resources securityContext podMetadata nodeSelector "
    "affinity tolerations topologySpreadConstraints serviceAccountName automountServiceAccountToken "
    "hostNetwork priorityClassName schedulerName terminationGracePeriodSeconds minReadySeconds "
    "podManagementPolicy updateStrategy persistentVolumeClaimRetentionPolicy enableServiceLinks "
    "hostUsers dnsPolicy dnsConfig storage secrets configMaps volumes volumeMounts containers "
    "initContainers enableFeatures additionalArgs serviceName paused"
)
_PROMETHEUS_FIELDS = _COMMON_FIELDS | _words(
    "shards retentionSize walCompression enableAdminAPI enableOTLPReceiver otlp "
    "enableRemoteWriteReceiver maximumStartupDurationSeconds tsdb runtime remoteWrite reloadStrategy"
)
# Fields that only reach the generated Prometheus configuration (pkg/prometheus/promcfg.go), not
# the pods: accepted and ignored.
_PROMETHEUS_CONFIG_ONLY = _words(
    "alerting serviceMonitorSelector serviceMonitorNamespaceSelector podMonitorSelector "
    "podMonitorNamespaceSelector probeSelector probeNamespaceSelector ruleSelector "
    "ruleNamespaceSelector scrapeConfigSelector scrapeConfigNamespaceSelector externalLabels "
    "replicaExternalLabelName prometheusExternalLabelName scrapeInterval scrapeTimeout "
    "evaluationInterval additionalScrapeConfigs additionalAlertManagerConfigs "
    "additionalAlertRelabelConfigs remoteRead enforcedNamespaceLabel enforcedSampleLimit "
    "enforcedTargetLimit enforcedLabelLimit enforcedLabelNameLengthLimit "
    "enforcedLabelValueLengthLimit enforcedKeepDroppedTargets enforcedBodySizeLimit "
    "ignoreNamespaceSelectors scrapeClasses"
)
_ALERTMANAGER_FIELDS = _COMMON_FIELDS | _words(
    "clusterAdvertiseAddress clusterGossipInterval clusterPushpullInterval clusterPeerTimeout "
    "clusterLabel forceEnableClusterMode additionalPeers alertmanagerConfiguration"
)
_ALERTMANAGER_CONFIG_ONLY = _words(
    "alertmanagerConfigSelector alertmanagerConfigNamespaceSelector alertmanagerConfigMatcherStrategy "
    "configSecret"
)


@dataclass(frozen=True)
class _Resource:
    kind: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    def refuse(self, key: str, why: str) -> ValueError:
        return ValueError(f"{self.kind} {self.namespace}/{self.name}: spec.{key} {why}")

    def check_fields(self, modelled: frozenset[str], config_only: frozenset[str]) -> None:
        for key in self.spec:
            if key not in modelled and key not in config_only:
                raise self.refuse(
                    key,
                    "changes the pods prometheus-operator builds and is not modelled (naomi.cluster.prometheus_operator)",
                )

    def text(self, key: str, default: str = "") -> str:
        value = self.spec.get(key)
        return default if value is None or str(value).strip() == "" else str(value)


def _read(kind: str, obj: Mapping[str, Any]) -> _Resource:
    if obj.get("kind") != kind:
        raise ValueError(f"expected a {kind} object, got kind {obj.get('kind')!r}")
    metadata = obj.get("metadata") or {}
    if not metadata.get("name"):
        raise ValueError(f"{kind} without metadata.name")
    return _Resource(kind, metadata, obj.get("spec") or {})


def _image(resource: _Resource, default_base: str, version: str) -> str:
    """pkg/operator/image.go BuildImagePath: spec.image as is; else the base image and version (the
    deprecated baseImage/tag/sha fields are refused as unmodelled)."""
    image = resource.text("image")
    return image if image else f"{default_base}:{version}"


def _storage(resource: _Resource, volume_name: str) -> tuple[list[Manifest], list[Manifest]]:
    """makeStatefulSet's storage switch (pkg/prometheus/server/statefulset.go and
    pkg/alertmanager/statefulset.go): (pod volumes, volumeClaimTemplates)."""
    storage = resource.spec.get("storage")
    if storage is None:
        return [{"name": volume_name, "emptyDir": {}}], []
    if storage.get("emptyDir") is not None:
        return [{"name": volume_name, "emptyDir": dict(storage["emptyDir"])}], []
    if storage.get("ephemeral") is not None:
        return [{"name": volume_name, "ephemeral": dict(storage["ephemeral"])}], []
    # operator.MakeVolumeClaimTemplate, then SanitizeSTS clears apiVersion and kind.
    template = storage.get("volumeClaimTemplate") or {}
    metadata = template.get("metadata") or {}
    spec = dict(template.get("spec") or {})
    if spec.get("accessModes") is None:
        spec["accessModes"] = ["ReadWriteOnce"]
    claim = _compact(
        {
            "metadata": _compact(
                {
                    "name": metadata.get("name") or volume_name,
                    "labels": metadata.get("labels"),
                    "annotations": metadata.get("annotations"),
                }
            ),
            "spec": spec,
            "status": template.get("status"),
        }
    )
    return [], [claim]


def _claim_name(resource: _Resource, default: str) -> str:
    # VolumeClaimName / volName: a named volumeClaimTemplate renames the data volume.
    storage = resource.spec.get("storage") or {}
    return str(((storage.get("volumeClaimTemplate") or {}).get("metadata") or {}).get("name") or default)


def _storage_sub_path(resource: _Resource, sub_path: str) -> str | None:
    # SubPathForStorage / subPathForStorage: set whenever storage is, unless disableMountSubPath.
    storage = resource.spec.get("storage")
    return None if storage is None or storage.get("disableMountSubPath") else sub_path


def _mount(name: str, path: str, read_only: bool = False, sub_path: str | None = None) -> Manifest:
    return _compact(
        {"name": name, "mountPath": path, "readOnly": read_only or None, "subPath": sub_path or None}
    )


def _update_strategy(resource: _Resource) -> Manifest:
    # pkg/operator/statefulset.go UpdateStrategyForStatefulSet.
    strategy = resource.spec.get("updateStrategy")
    if strategy is None:
        return {"type": "RollingUpdate"}
    converted: Manifest = {"type": strategy.get("type")}
    if strategy.get("rollingUpdate") is not None:
        converted["rollingUpdate"] = _compact(
            {"maxUnavailable": strategy["rollingUpdate"].get("maxUnavailable")}
        )
    return converted


def _dns(resource: _Resource, pod: Manifest) -> None:
    # hostNetwork implies ClusterFirstWithHostNet; then pkg/k8s/pod.go UpdateDNSPolicy/UpdateDNSConfig.
    if resource.spec.get("hostNetwork"):
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    if resource.spec.get("dnsPolicy") is not None:
        pod["dnsPolicy"] = resource.spec["dnsPolicy"]
    config = resource.spec.get("dnsConfig")
    if config is not None:
        pod["dnsConfig"] = _compact(
            {
                "nameservers": config.get("nameservers"),
                "searches": config.get("searches"),
                "options": [
                    _compact({"name": o.get("name"), "value": o.get("value")})
                    for o in config.get("options") or []
                ],
            }
        )


def _statefulset(
    resource: _Resource, name: str, labels: Mapping[str, str], spec: Manifest, settings: OperatorSettings
) -> Manifest:
    metadata = _compact(
        {
            "name": name,
            "namespace": resource.namespace,
            "labels": labels,
            "annotations": _annotations(resource.metadata.get("annotations"), settings.annotations),
            "ownerReferences": [_owner(resource.kind, resource.metadata, controller=True)],
        }
    )
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata, "spec": spec}


def _secret_and_configmap_volumes(
    resource: _Resource, secrets_dir: str, configmaps_dir: str
) -> tuple[list[Manifest], list[Manifest]]:
    """spec.secrets and spec.configMaps: one volume each, mounted read-only under the given folders
    (volume names from ResourceNamer with prefixes "secret" and "configmap")."""
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    for secret in resource.spec.get("secrets") or []:
        volume = _volume_name("secret", secret)
        volumes.append({"name": volume, "secret": {"secretName": secret}})
        mounts.append(_mount(volume, f"{secrets_dir.rstrip('/')}/{secret}", read_only=True))
    for config_map in resource.spec.get("configMaps") or []:
        volume = _volume_name("configmap", config_map)
        volumes.append({"name": volume, "configMap": {"name": config_map}})
        mounts.append(_mount(volume, f"{configmaps_dir.rstrip('/')}/{config_map}", read_only=True))
    return volumes, mounts


# --- Prometheus ------------------------------------------------------------------------------------

PROMETHEUS_SERVICE = "prometheus-operated"
PROMETHEUS_PORT = 9090
_PROMETHEUS_STORAGE = "/prometheus"
_PROMETHEUS_CONFIG_DIR = "/etc/prometheus/config"
_PROMETHEUS_CONFIG_OUT = "/etc/prometheus/config_out"
_PROMETHEUS_RULES_DIR = "/etc/prometheus/rules"
_PROMETHEUS_WEB_CONFIG = "/etc/prometheus/web_config/web-config.yaml"
SHARD_LABEL = "operator.prometheus.io/shard"
PROMETHEUS_NAME_LABEL = "operator.prometheus.io/name"
PROMETHEUS_MODE_LABEL = "operator.prometheus.io/mode"


def rule_config_map_names(name: str, concrete: Sequence[str] = ()) -> list[str]:
    """pkg/prometheus/server/rules.go createOrUpdateRuleConfigMaps: the rule ConfigMaps made from the
    selected PrometheusRules, padded with "virtual" names up to three (AppendConfigMapNames), all
    mounted optional so the StatefulSet need not change when the count does."""
    names = list(concrete)
    names += [f"prometheus-{name}-rulefiles-{i}" for i in range(len(names), 3)]
    return names


def _prometheus_shards(resource: _Resource) -> int:
    # pkg/prometheus/common.go shardsNumber: nil or <= 1 is one shard.
    shards = resource.spec.get("shards")
    return 1 if shards is None or int(shards) <= 1 else int(shards)


def _prometheus_args(resource: _Resource, version: _Version, route_prefix: str) -> list[tuple[str, str]]:
    """pkg/prometheus/promcfg.go BuildCommonPrometheusArgs then
    pkg/prometheus/server/statefulset.go buildServerArgs, for the fields modelled."""
    spec = resource.spec
    args = [("config.file", f"{_PROMETHEUS_CONFIG_OUT}/prometheus.env.yaml")]
    if version.major == 2:
        args += [
            ("web.console.templates", "/etc/prometheus/consoles"),
            ("web.console.libraries", "/etc/prometheus/console_libraries"),
        ]
    args.append(("web.enable-lifecycle", ""))  # HTTP reload strategy
    if spec.get("enableRemoteWriteReceiver") and version.at_least("2.33.0"):
        args.append(("web.enable-remote-write-receiver", ""))
    for remote in spec.get("remoteWrite") or []:
        if remote.get("messageVersion") == "V2.0" and not version.at_least("3.4.0"):
            raise resource.refuse(
                "remoteWrite", "with messageVersion V2.0 before Prometheus 3.4 is not modelled"
            )
    otlp = spec.get("enableOTLPReceiver")
    if otlp or (otlp is None and spec.get("otlp") is not None):
        if version.major >= 3:
            args.append(("web.enable-otlp-receiver", ""))
        elif version.at_least("2.47.0"):
            args.append(("enable-feature", "otlp-write-receiver"))
    features = [str(f) for f in spec.get("enableFeatures") or []]
    if features and version.at_least("2.25.0"):
        args.append(("enable-feature", ",".join(features)))
    floats = (((spec.get("tsdb") or {}).get("chunkEncoding")) or {}).get("floats")
    if floats == "xor2" and "xor2-encoding" not in features and version.at_least("3.13.0"):
        args.append(("enable-feature", "xor2-encoding"))
    if resource.text("externalUrl"):
        args.append(("web.external-url", resource.text("externalUrl")))
    args.append(("web.route-prefix", route_prefix))
    if resource.text("logLevel") not in ("", "info"):
        args.append(("log.level", resource.text("logLevel")))
    if resource.text("logFormat") not in ("", "logfmt") and version.at_least("2.6.0"):
        args.append(("log.format", resource.text("logFormat")))
    if spec.get("listenLocal"):
        args.append(("web.listen-address", f"127.0.0.1:{PROMETHEUS_PORT}"))
    # buildServerArgs: since Prometheus 3.11 retention lives in the configuration file.
    retention, retention_size = resource.text("retention"), resource.text("retentionSize")
    if not version.at_least("3.11.0"):
        if retention or not retention_size:
            args.append(("storage.tsdb.retention.time", retention or "24h"))
        if retention_size:
            args.append(("storage.tsdb.retention.size", retention_size))
    args.append(("storage.tsdb.path", _PROMETHEUS_STORAGE))
    if spec.get("enableAdminAPI"):
        args.append(("web.enable-admin-api", ""))
    if spec.get("walCompression") is not None and version.at_least("2.11.0"):
        args.append(
            (
                "storage.tsdb.wal-compression"
                if spec["walCompression"]
                else "no-storage.tsdb.wal-compression",
                "",
            )
        )
    return args


def _prometheus_probes(
    resource: _Resource, route_prefix: str, port_name: str
) -> tuple[Manifest, Manifest, Manifest]:
    """promcfg.go BuildProbes/buildProbeHandler: startup and readiness on /-/ready, liveness on
    /-/healthy, under the route prefix; exec probes on localhost when listening locally."""

    def handler(path: str) -> Manifest:
        path = _clean_path(route_prefix + path)
        if resource.spec.get("listenLocal"):
            return _exec_probe(_url("http", f"localhost:{PROMETHEUS_PORT}", path))
        return {"httpGet": {"path": path, "port": port_name}}

    # getStatupProbePeriodSecondsAndFailureThreshold: 15 s x 60 unless maximumStartupDurationSeconds.
    period, threshold = 15, 60
    maximum = int(resource.spec.get("maximumStartupDurationSeconds") or 0)
    if maximum >= 60:
        threshold = -(-maximum // 60)
        period = -(-maximum // threshold)
    startup = {
        **handler("/-/ready"),
        "timeoutSeconds": 3,
        "periodSeconds": period,
        "failureThreshold": threshold,
    }
    readiness = {**handler("/-/ready"), "timeoutSeconds": 3, "periodSeconds": 5, "failureThreshold": 3}
    liveness = {**handler("/-/healthy"), "timeoutSeconds": 3, "periodSeconds": 5, "failureThreshold": 6}
    return startup, readiness, liveness


def _topology_spread(constraints: Iterable[Mapping[str, Any]], selector: Mapping[str, str]) -> list[Manifest]:
    """pkg/prometheus/common.go MakeK8sTopologySpreadConstraint: with additionalLabelSelectors the
    pod selector labels join the constraint's labelSelector (without the shard label for
    OnResource)."""
    out = []
    for constraint in constraints:
        core = {k: v for k, v in constraint.items() if k != "additionalLabelSelectors"}
        extra = constraint.get("additionalLabelSelectors")
        if extra is not None:
            label_selector = dict(core.get("labelSelector") or {})
            match = dict(label_selector.get("matchLabels") or {})
            match.update(
                {k: v for k, v in selector.items() if not (extra == "OnResource" and k == SHARD_LABEL)}
            )
            core["labelSelector"] = {**label_selector, "matchLabels": match}
        out.append(core)
    return out


def _prometheus_statefulset(
    resource: _Resource,
    settings: OperatorSettings,
    version: _Version,
    shard: int,
    rule_config_maps: Sequence[str],
) -> Manifest:
    """pkg/prometheus/server/statefulset.go makeStatefulSet and makeStatefulSetSpec."""
    spec = resource.spec
    name = resource.name
    prefixed = f"prometheus-{name}"
    port_name = resource.text("portName", "web")
    route_prefix = resource.text("routePrefix", "/")
    if spec.get("reloadStrategy") not in (None, "HTTP"):
        raise resource.refuse("reloadStrategy", f"{spec['reloadStrategy']} is not modelled (only HTTP)")

    # pkg/prometheus/common.go BuildCommonVolumes.
    claim = _claim_name(resource, f"{prefixed}-db")
    volumes: list[Manifest] = [
        {"name": "config", "secret": {"secretName": prefixed}},
        {"name": "tls-assets", "projected": {"sources": [{"secret": {"name": f"{prefixed}-tls-assets-0"}}]}},
        {"name": "config-out", "emptyDir": {"medium": "Memory"}},  # tmpfs: the config holds secrets
    ]
    mounts = [
        _mount("config-out", _PROMETHEUS_CONFIG_OUT, read_only=True),
        _mount("tls-assets", "/etc/prometheus/certs", read_only=True),
        _mount(claim, _PROMETHEUS_STORAGE, sub_path=_storage_sub_path(resource, "prometheus-db")),
        *(dict(m) for m in spec.get("volumeMounts") or []),
    ]
    extra_volumes, extra_mounts = _secret_and_configmap_volumes(
        resource, "/etc/prometheus/secrets/", "/etc/prometheus/configmaps/"
    )
    volumes += extra_volumes
    mounts += extra_mounts
    # appendServerVolumes: the rule ConfigMaps, optional.
    for config_map in rule_config_maps:
        volumes.append({"name": config_map, "configMap": {"name": config_map, "optional": True}})
        mounts.append(_mount(config_map, f"{_PROMETHEUS_RULES_DIR}/{config_map}", read_only=True))
    reloader_mounts = [_mount("config", _PROMETHEUS_CONFIG_DIR), _mount("config-out", _PROMETHEUS_CONFIG_OUT)]
    args = _prometheus_args(resource, version, route_prefix)
    # The web config file is always mounted from 2.24 on (no redeploy when TLS is switched).
    if version.at_least("2.24.0"):
        args.append(("web.config.file", _PROMETHEUS_WEB_CONFIG))
        volumes.append({"name": "web-config", "secret": {"secretName": f"{prefixed}-web-config"}})
        mounts.append(
            _mount("web-config", _PROMETHEUS_WEB_CONFIG, read_only=True, sub_path="web-config.yaml")
        )
    startup, readiness, liveness = _prometheus_probes(resource, route_prefix, port_name)

    # BuildPodMetadata, then the selector labels (server/operator.go makeSelectorLabels) and shard.
    selector = {
        MANAGED_BY: OPERATOR,
        NAME_LABEL: "prometheus",
        INSTANCE_LABEL: name,
        PROMETHEUS_NAME_LABEL: name,
        "prometheus": name,
        SHARD_LABEL: str(shard),
    }
    pod_metadata = spec.get("podMetadata") or {}
    annotations = {DEFAULT_CONTAINER: "prometheus", **(pod_metadata.get("annotations") or {})}
    pod_labels = {VERSION_LABEL: version.text(), **(pod_metadata.get("labels") or {}), **selector}
    final_selector = {**selector, **settings.labels}  # operator --labels take precedence
    final_labels = {**pod_labels, **settings.labels}

    # Rule ConfigMaps are watched (and mounted, not read-only) by the reloader too.
    watched = []
    for config_map in rule_config_maps:
        reloader_mounts.append(_mount(config_map, f"{_PROMETHEUS_RULES_DIR}/{config_map}"))
        watched.append(f"{_PROMETHEUS_RULES_DIR}/{config_map}")
    reloader = _Reloader(
        name="config-reloader",
        config_file=f"{_PROMETHEUS_CONFIG_DIR}/prometheus.yaml.gz",
        envsubst_file=f"{_PROMETHEUS_CONFIG_OUT}/prometheus.env.yaml",
        mounts=reloader_mounts,
        watched=watched,
        shard=shard,
        log_level=resource.text("logLevel"),
        log_format=resource.text("logFormat"),
        pull_policy=spec.get("imagePullPolicy"),
    )
    # BuildConfigReloader (HTTP strategy): reload through the web port on the --localhost host.
    sidecar = replace(
        reloader,
        listen_local=bool(spec.get("listenLocal")),
        reload_url=_url(
            "http", f"{settings.local_host}:{PROMETHEUS_PORT}", _clean_path(route_prefix + "/-/reload")
        ),
    )
    init = replace(reloader, name="init-config-reloader", init=True)

    env = None
    go_gc = (spec.get("runtime") or {}).get("goGC")
    if go_gc is not None and not version.at_least("2.53.0"):
        env = [{"name": "GOGC", "value": str(go_gc)}]  # newer versions take it from the config file
    prometheus = _compact(
        {
            "name": "prometheus",
            "image": _image(resource, settings.prometheus_default_base_image, "v" + version.text()),
            "imagePullPolicy": spec.get("imagePullPolicy"),
            # MakeContainerPorts: no port when listening on loopback only.
            "ports": None
            if spec.get("listenLocal")
            else [{"name": port_name, "containerPort": PROMETHEUS_PORT, "protocol": "TCP"}],
            "args": _arguments(args, spec.get("additionalArgs") or []),
            "env": env,
            "volumeMounts": mounts,
            "startupProbe": startup,
            "livenessProbe": liveness,
            "readinessProbe": readiness,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    prometheus["resources"] = dict(spec.get("resources") or {})
    prometheus["securityContext"] = _operator_security_context()
    containers = merge_patch_containers(
        [prometheus, _config_reloader(sidecar, settings)], spec.get("containers") or []
    )
    init_containers = merge_patch_containers(
        [_config_reloader(init, settings)], spec.get("initContainers") or []
    )

    pod = _compact(
        {
            "shareProcessNamespace": False,  # true only with the ProcessSignal reload strategy
            "containers": containers,
            "initContainers": init_containers,
            "securityContext": spec.get("securityContext"),
            "serviceAccountName": resource.text("serviceAccountName") or None,
            "automountServiceAccountToken": _default(spec.get("automountServiceAccountToken"), True),
            "nodeSelector": spec.get("nodeSelector"),
            "schedulerName": resource.text("schedulerName") or None,
            "priorityClassName": resource.text("priorityClassName") or None,
            # DefaultTerminationGracePeriodSeconds: 10 minutes for the TSDB to shut down cleanly.
            "terminationGracePeriodSeconds": _default(spec.get("terminationGracePeriodSeconds"), 600),
            "volumes": volumes,
            "tolerations": spec.get("tolerations"),
            "affinity": spec.get("affinity"),
            "topologySpreadConstraints": _topology_spread(
                spec.get("topologySpreadConstraints") or [], final_selector
            ),
            "hostNetwork": spec.get("hostNetwork") or None,
            "enableServiceLinks": spec.get("enableServiceLinks"),
            "hostUsers": spec.get("hostUsers"),
            "imagePullSecrets": spec.get("imagePullSecrets"),
        }
    )
    _dns(resource, pod)
    data_volumes, claims = _storage(resource, f"{prefixed}-db")
    pod["volumes"] = [*pod["volumes"], *data_volumes, *(spec.get("volumes") or [])]
    replicas = spec.get("replicas")
    statefulset_spec = _compact(
        {
            "serviceName": spec.get("serviceName") or PROMETHEUS_SERVICE,
            # ReplicasNumberPtr: nil or negative is one replica.
            "replicas": 1 if replicas is None or int(replicas) < 0 else int(replicas),
            # Parallel by default (kubernetes/kubernetes#60164).
            "podManagementPolicy": spec.get("podManagementPolicy") or "Parallel",
            "updateStrategy": _update_strategy(resource),
            "minReadySeconds": spec.get("minReadySeconds") or None,
            "selector": {"matchLabels": final_selector},
            "template": {"metadata": {"labels": final_labels, "annotations": annotations}, "spec": pod},
            "volumeClaimTemplates": claims,
            "persistentVolumeClaimRetentionPolicy": spec.get("persistentVolumeClaimRetentionPolicy"),
        }
    )
    statefulset_name = prefixed if shard == 0 else f"{prefixed}-shard-{shard}"  # prometheusNameByShard
    labels = _labels(
        resource.metadata.get("labels"), {PROMETHEUS_MODE_LABEL: "server"}, final_selector, settings.labels
    )
    return _statefulset(resource, statefulset_name, labels, statefulset_spec, settings)


def _governing_service(
    resource: _Resource,
    name: str,
    marker: str,
    ports: list[Manifest],
    selector: str,
    settings: OperatorSettings,
) -> Manifest:
    spec: Manifest = {"clusterIP": "None", "ports": ports, "selector": {NAME_LABEL: selector}}
    if resource.kind == "Alertmanager":
        spec["publishNotReadyAddresses"] = True  # peers must find each other before they are ready
    metadata = _compact(
        {
            "name": name,
            "namespace": resource.namespace,
            "labels": _labels({marker: "true"}, settings.labels),
            "annotations": dict(settings.annotations),
            "ownerReferences": [_owner(resource.kind, resource.metadata, controller=False)],
        }
    )
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def expand_prometheus(
    obj: Mapping[str, Any], settings: OperatorSettings, *, rule_config_maps: Sequence[str] | None = None
) -> list[Manifest]:
    """The StatefulSet per shard and the governing Service `prometheus-operated` that
    prometheus-operator v0.93 creates for a Prometheus resource (pkg/prometheus/server/operator.go
    sync). `rule_config_maps` are the rule ConfigMap names the operator mounts; by default the three
    it always mounts (`rule_config_map_names`). Nothing when the operator would not reconcile it."""
    resource = _read("Prometheus", obj)
    if not settings.reconciles(obj):
        return []
    resource.check_fields(_PROMETHEUS_FIELDS, _PROMETHEUS_CONFIG_ONLY)
    version = _parse_version(resource.text("version", DEFAULT_PROMETHEUS_VERSION))
    if version.major not in (2, 3):  # NewConfigGenerator
        raise resource.refuse("version", f"{version.text()}: unsupported Prometheus version")
    if not version.at_least("2.7.0"):
        raise resource.refuse("version", f"{version.text()}: Prometheus before 2.7 is not modelled")
    names = list(rule_config_maps) if rule_config_maps is not None else rule_config_map_names(resource.name)
    objects = [
        _prometheus_statefulset(resource, settings, version, shard, names)
        for shard in range(_prometheus_shards(resource))
    ]
    if resource.spec.get("serviceName") is None:
        # A custom serviceName must already exist (k8s.EnsureCustomGoverningService); else the
        # operator reconciles prometheus-operated, selecting every Prometheus pod of the namespace.
        port_name = resource.text("portName", "web")
        ports = [{"name": port_name, "port": PROMETHEUS_PORT, "targetPort": port_name}]
        objects.append(
            _governing_service(
                resource, PROMETHEUS_SERVICE, "operated-prometheus", ports, "prometheus", settings
            )
        )
    return objects


# --- Alertmanager ------------------------------------------------------------------------------------

ALERTMANAGER_SERVICE = "alertmanager-operated"
ALERTMANAGER_PORT = 9093
ALERTMANAGER_MESH_PORT = 9094
_AM_CONFIG_DIR = "/etc/alertmanager/config"
_AM_CONFIG_OUT = "/etc/alertmanager/config_out"
_AM_WEB_CONFIG = "/etc/alertmanager/web_config/web-config.yaml"
_AM_CLUSTER_TLS = "/etc/alertmanager/cluster_tls_config/cluster-tls-config.yaml"


def _alertmanager_args(
    resource: _Resource, version: _Version, route_prefix: str, replicas: int, settings: OperatorSettings
) -> list[tuple[str, str]]:
    """pkg/alertmanager/statefulset.go makeStatefulSetSpec, the arguments in the order built."""
    spec = resource.spec
    name = resource.name
    args = [
        ("config.file", f"{_AM_CONFIG_OUT}/alertmanager.env.yaml"),
        ("storage.path", "/alertmanager"),
        ("data.retention", resource.text("retention", "120h")),
    ]
    # A single replica does not listen for peers ("--cluster.listen-address=" disables clustering).
    if replicas == 1 and not spec.get("forceEnableClusterMode"):
        args.append(("cluster.listen-address=", ""))
    else:
        args.append(("cluster.listen-address", f"[$(POD_IP)]:{ALERTMANAGER_MESH_PORT}"))
    listen = f"127.0.0.1:{ALERTMANAGER_PORT}" if spec.get("listenLocal") else f":{ALERTMANAGER_PORT}"
    args.append(("web.listen-address", listen))
    if resource.text("externalUrl"):
        args.append(("web.external-url", resource.text("externalUrl")))
    features = [str(f) for f in spec.get("enableFeatures") or []]
    if features and version.at_least("0.27.0"):
        args.append(("enable-feature", ",".join(features)))
    args.append(("web.route-prefix", route_prefix))
    if spec.get("minReadySeconds") is not None and version.at_least("0.30.0"):
        delay = ("dispatch.start-delay", f"{int(spec['minReadySeconds'])}s")
        # Left to additionalArgs when they set it (ArgumentsIntersection, also on "no-").
        taken = {str(a.get("name")) for a in spec.get("additionalArgs") or []}
        if not taken & {delay[0], f"no-{delay[0]}"}:
            args.append(delay)
    if resource.text("logLevel") not in ("", "info"):
        args.append(("log.level", resource.text("logLevel")))
    if resource.text("logFormat") not in ("", "logfmt") and version.at_least("0.16.0"):
        args.append(("log.format", resource.text("logFormat")))
    for key, flag in (
        ("clusterAdvertiseAddress", "cluster.advertise-address"),
        ("clusterGossipInterval", "cluster.gossip-interval"),
        ("clusterPushpullInterval", "cluster.pushpull-interval"),
        ("clusterPeerTimeout", "cluster.peer-timeout"),
    ):
        if resource.text(key):
            args.append((flag, resource.text(key)))
    if version.at_least("0.30.0"):
        args.append(("cluster.peer-name", "$(POD_NAME)"))
    if version.at_least("0.26.0"):
        # Keeps pods of another Alertmanager cluster that reuse recycled IPs out.
        args.append(("cluster.label", str(spec.get("clusterLabel") or f"{resource.namespace}/{name}")))
    service = resource.text("serviceName", ALERTMANAGER_SERVICE)
    domain = (
        f"{service}.{resource.namespace}.svc.{settings.cluster_domain}."
        if settings.cluster_domain
        else service
    )
    args += [
        ("cluster.peer", f"alertmanager-{name}-{i}.{domain}:{ALERTMANAGER_MESH_PORT}")
        for i in range(replicas)
    ]
    args += [("cluster.peer", str(peer)) for peer in spec.get("additionalPeers") or []]
    # A restarted member leaves the cluster after 5 minutes, not the default 6 hours.
    args.append(("cluster.reconnect-timeout", "5m"))
    return args


def _alertmanager_statefulset(resource: _Resource, settings: OperatorSettings) -> Manifest:
    """pkg/alertmanager/statefulset.go makeStatefulSet and makeStatefulSetSpec."""
    spec = resource.spec
    name = resource.name
    prefixed = f"alertmanager-{name}"
    if ((spec.get("alertmanagerConfiguration") or {}).get("templates")) or []:
        raise resource.refuse(
            "alertmanagerConfiguration.templates", "(notification template volumes) is not modelled"
        )
    version_text = resource.text("version", DEFAULT_ALERTMANAGER_VERSION)
    version = _parse_version(version_text)
    if not version.at_least("0.24.0"):
        raise resource.refuse("version", f"{version.text()}: Alertmanager before 0.24 is not modelled")
    port_name = resource.text("portName", "web")
    replicas_value = spec.get("replicas")
    replicas = 1 if replicas_value is None else max(int(replicas_value), 0)
    route_prefix = resource.text("routePrefix", "/")
    # makeStatefulSet defaults: a 200Mi memory request when none is set.
    resources = {k: dict(v) for k, v in (spec.get("resources") or {}).items()}
    resources.setdefault("requests", {}).setdefault("memory", "200Mi")

    claim = _claim_name(resource, f"{prefixed}-db")
    volumes: list[Manifest] = [
        {"name": "config-volume", "secret": {"secretName": f"{prefixed}-generated"}},
        {"name": "tls-assets", "projected": {"sources": [{"secret": {"name": f"{prefixed}-tls-assets-0"}}]}},
        {"name": "config-out", "emptyDir": {"medium": "Memory"}},  # tmpfs: the config holds secrets
    ]
    mounts = [
        _mount("config-volume", _AM_CONFIG_DIR),
        _mount("config-out", _AM_CONFIG_OUT, read_only=True),
        _mount("tls-assets", "/etc/alertmanager/certs", read_only=True),
        _mount(claim, "/alertmanager", sub_path=_storage_sub_path(resource, "alertmanager-db")),
    ]
    reloader_mounts = [
        _mount("config-volume", _AM_CONFIG_DIR, read_only=True),
        _mount("config-out", _AM_CONFIG_OUT),
    ]
    watched = [_AM_CONFIG_DIR]
    extra_volumes, extra_mounts = _secret_and_configmap_volumes(
        resource, "/etc/alertmanager/secrets", "/etc/alertmanager/configmaps"
    )
    volumes += extra_volumes
    mounts += extra_mounts
    reloader_mounts += extra_mounts  # the reloader watches secrets and ConfigMaps too
    watched += [m["mountPath"] for m in extra_mounts]
    mounts += [dict(m) for m in spec.get("volumeMounts") or []]
    args = _alertmanager_args(resource, version, route_prefix, replicas, settings)
    # The web config (from 0.22) and the cluster TLS config (from 0.24) are always mounted.
    args.append(("web.config.file", _AM_WEB_CONFIG))
    volumes.append({"name": "web-config", "secret": {"secretName": f"{prefixed}-web-config"}})
    web_mount = _mount("web-config", _AM_WEB_CONFIG, read_only=True, sub_path="web-config.yaml")
    mounts.append(web_mount)
    reloader_mounts.append(web_mount)
    volumes.append({"name": "cluster-tls-config", "secret": {"secretName": f"{prefixed}-cluster-tls-config"}})
    mounts.append(
        _mount("cluster-tls-config", _AM_CLUSTER_TLS, read_only=True, sub_path="cluster-tls-config.yaml")
    )

    ports = [
        {"name": "mesh-tcp", "containerPort": ALERTMANAGER_MESH_PORT, "protocol": "TCP"},
        {"name": "mesh-udp", "containerPort": ALERTMANAGER_MESH_PORT, "protocol": "UDP"},
    ]
    liveness = readiness = None
    if not spec.get("listenLocal"):
        ports.insert(0, {"name": port_name, "containerPort": ALERTMANAGER_PORT, "protocol": "TCP"})
        liveness = {
            "httpGet": {"path": _clean_path(route_prefix + "/-/healthy"), "port": port_name},
            "timeoutSeconds": 3,
            "failureThreshold": 10,
        }
        readiness = {
            "httpGet": {"path": _clean_path(route_prefix + "/-/ready"), "port": port_name},
            "initialDelaySeconds": 3,
            "timeoutSeconds": 3,
            "periodSeconds": 5,
            "failureThreshold": 10,
        }
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    if version.at_least("0.30.0"):
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    alertmanager = _compact(
        {
            "args": _arguments(args, spec.get("additionalArgs") or []),
            "name": "alertmanager",
            "image": _image(resource, settings.alertmanager_default_base_image, version_text),
            "imagePullPolicy": spec.get("imagePullPolicy"),
            "ports": ports,
            "volumeMounts": mounts,
            "livenessProbe": liveness,
            "readinessProbe": readiness,
            "env": env,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    alertmanager["resources"] = resources
    alertmanager["securityContext"] = _operator_security_context()
    reloader = _Reloader(
        name="config-reloader",
        config_file=f"{_AM_CONFIG_DIR}/alertmanager.yaml.gz",
        envsubst_file=f"{_AM_CONFIG_OUT}/alertmanager.env.yaml",
        mounts=reloader_mounts,
        watched=watched,
        shard=-1,
        log_level=resource.text("logLevel"),
        log_format=resource.text("logFormat"),
        pull_policy=spec.get("imagePullPolicy"),
    )
    sidecar = replace(
        reloader,
        reload_url=_url(
            "http", f"{settings.local_host}:{ALERTMANAGER_PORT}", _clean_path(route_prefix + "/-/reload")
        ),
        listen_local=bool(spec.get("listenLocal")),
        web_config_file=_AM_WEB_CONFIG,
    )
    init = replace(reloader, name="init-config-reloader", init=True)
    containers = merge_patch_containers(
        [alertmanager, _config_reloader(sidecar, settings)], spec.get("containers") or []
    )
    init_containers = merge_patch_containers(
        [_config_reloader(init, settings)], spec.get("initContainers") or []
    )

    # alertmanager/operator.go makeSelectorLabels; pod metadata first, the selector over it.
    selector = {NAME_LABEL: "alertmanager", MANAGED_BY: OPERATOR, INSTANCE_LABEL: name, "alertmanager": name}
    pod_metadata = spec.get("podMetadata") or {}
    pod_labels = {VERSION_LABEL: version.text(), **(pod_metadata.get("labels") or {}), **selector}
    annotations = {**(pod_metadata.get("annotations") or {}), DEFAULT_CONTAINER: "alertmanager"}
    final_selector = {**selector, **settings.labels}
    final_labels = {**pod_labels, **settings.labels}
    pod = _compact(
        {
            "automountServiceAccountToken": spec.get("automountServiceAccountToken"),
            "nodeSelector": spec.get("nodeSelector"),
            "schedulerName": resource.text("schedulerName") or None,
            "priorityClassName": resource.text("priorityClassName") or None,
            "terminationGracePeriodSeconds": _default(spec.get("terminationGracePeriodSeconds"), 120),
            "initContainers": init_containers,
            "containers": containers,
            "volumes": volumes,
            "serviceAccountName": resource.text("serviceAccountName") or None,
            "securityContext": spec.get("securityContext"),
            "tolerations": spec.get("tolerations"),
            "affinity": spec.get("affinity"),
            "topologySpreadConstraints": spec.get("topologySpreadConstraints"),
            "enableServiceLinks": spec.get("enableServiceLinks"),
            "hostUsers": spec.get("hostUsers"),
            "hostNetwork": spec.get("hostNetwork") or None,
            "imagePullSecrets": spec.get("imagePullSecrets"),
        }
    )
    _dns(resource, pod)
    data_volumes, claims = _storage(resource, f"{prefixed}-db")
    pod["volumes"] = [*pod["volumes"], *data_volumes, *(spec.get("volumes") or [])]
    statefulset_spec = _compact(
        {
            "serviceName": resource.text("serviceName", ALERTMANAGER_SERVICE),
            "replicas": replicas,
            "minReadySeconds": spec.get("minReadySeconds") or None,
            "podManagementPolicy": spec.get("podManagementPolicy") or "Parallel",
            "updateStrategy": _update_strategy(resource),
            "selector": {"matchLabels": final_selector},
            "template": {"metadata": {"labels": final_labels, "annotations": annotations}, "spec": pod},
            "volumeClaimTemplates": claims,
            "persistentVolumeClaimRetentionPolicy": spec.get("persistentVolumeClaimRetentionPolicy"),
        }
    )
    labels = _labels(resource.metadata.get("labels"), final_selector, settings.labels)
    return _statefulset(resource, prefixed, labels, statefulset_spec, settings)


def expand_alertmanager(obj: Mapping[str, Any], settings: OperatorSettings) -> list[Manifest]:
    """The StatefulSet and the governing Service `alertmanager-operated` that prometheus-operator
    v0.93 creates for an Alertmanager resource (pkg/alertmanager/operator.go sync)."""
    resource = _read("Alertmanager", obj)
    if not settings.reconciles(obj):
        return []
    resource.check_fields(_ALERTMANAGER_FIELDS, _ALERTMANAGER_CONFIG_ONLY)
    objects = [_alertmanager_statefulset(resource, settings)]
    if resource.spec.get("serviceName") is None:
        # makeStatefulSetService: web and mesh ports, named after this resource's portName.
        port_name = resource.text("portName", "web")
        ports: list[Manifest] = [
            {"name": port_name, "port": ALERTMANAGER_PORT, "targetPort": port_name, "protocol": "TCP"},
            {"name": "tcp-mesh", "port": ALERTMANAGER_MESH_PORT, "targetPort": "mesh-tcp", "protocol": "TCP"},
            {"name": "udp-mesh", "port": ALERTMANAGER_MESH_PORT, "targetPort": "mesh-udp", "protocol": "UDP"},
        ]
        objects.append(
            _governing_service(
                resource, ALERTMANAGER_SERVICE, "operated-alertmanager", ports, "alertmanager", settings
            )
        )
    return objects


def expanders(settings: OperatorSettings) -> dict[str, Expander]:
    """Expanders for `naomi.cluster.model.ClusterModel`: kind -> the objects the operator creates."""

    def prometheus(item: ModelObject) -> list[Manifest]:
        return expand_prometheus(item.obj, settings)

    def alertmanager(item: ModelObject) -> list[Manifest]:
        return expand_alertmanager(item.obj, settings)

    return {"Prometheus": prometheus, "Alertmanager": alertmanager}


def operator_expanders(objects: Iterable[Mapping[str, Any]]) -> dict[str, Expander]:
    """`expanders` with the settings of the one prometheus-operator Deployment among `objects`
    (e.g. a rendered kube-prometheus-stack release); none when no such Deployment is there."""
    operators = [operator_settings(obj) for obj in objects if _operator_container(obj) is not None]
    if len(operators) > 1:
        raise ValueError(
            f"{len(operators)} prometheus-operator Deployments: which one reconciles is not modelled"
        )
    return expanders(operators[0]) if operators else {}
