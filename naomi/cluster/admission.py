"""Pod Security admission: the Pod Security Standards exactly as the Kubernetes 1.32 controller applies them.

This module owns the judgement the API server's PodSecurity admission plugin makes on a pod: which checks
run at a level and policy version, what each check forbids and the reason/detail text it rejects with,
and how a namespace's `pod-security.kubernetes.io/enforce` labels select that level. It is a
transcription of `k8s.io/pod-security-admission` at tag v0.32.9 (commit 65f0c1dbfccd, the library
Kubernetes 1.32.9 vendors): every check below cites its `policy/check_*.go` file and function, and the
registry (`policy/registry.go`) decides which revisions and overrides apply at a version. Pure Python
over plain manifest dicts; no I/O.

The controller judges the Pod after the API server has applied its defaults, so two defaults that
change a verdict are applied first (kubernetes/kubernetes `pkg/apis/core/v1/defaults.go`): a volume
with no source becomes an `emptyDir` (SetDefaults_Volume), and in a `hostNetwork` Pod every port of a
container or init container without a `hostPort` gets `hostPort = containerPort` (SetDefaults_Pod,
defaultHostNetworkPorts; since 1.28 only Pods, not pod templates, are defaulted this way). Not
modelled (cluster configuration, not policy): the AdmissionConfiguration exemptions (usernames,
runtime classes, namespaces) and the alpha `UserNamespacesPodSecurityStandards` relaxation, which is off
by default in 1.32 (`policy/helpers.go` relaxPolicyForUserNamespacePod returns false unless enabled).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["privileged", "baseline", "restricted"]
_CheckLevel = Literal["baseline", "restricted"]
Version = tuple[int, int]

# registry.go populate: policy versions newer than the newest MinimumVersion of any check (here 1.32,
# the sysctls revision) and "latest" are evaluated as that newest version.
LATEST: Version = (1, 32)

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"


@dataclass(frozen=True)
class Violation:
    """One failed check: its upstream ID, the controller's text and where in the pod it failed."""

    check: str
    message: str
    containers: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


# --- reading manifests ---------------------------------------------------------------------------
# The controller sees typed Go structs: a field that is absent or null is nil, `{}` is a non-nil empty
# struct, and a value of the wrong type never decodes. These helpers keep that distinction and refuse
# wrongly typed values (naming the field) instead of judging a pod the API server would not accept.


def _object(value: Any, path: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise ValueError(f"{path}: expected an object, got {type(value).__name__}")


def _items(value: Any, path: str) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return value
    raise ValueError(f"{path}: expected a list, got {type(value).__name__}")


def _flag(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{path}: expected a boolean, got {value!r}")


def _integer(value: Any, path: str) -> int | None:
    # Pulumi hands numbers over as floats (2.0); an integral float is the same JSON number.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{path}: expected an integer, got {value!r}")


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"{path}: expected a string, got {value!r}")


@dataclass(frozen=True)
class _Container:
    kind: str  # initContainers, containers or ephemeralContainers
    name: str
    path: str  # e.g. spec.initContainers[init-db]
    context: Mapping[str, Any] | None  # securityContext; None when absent (nil)
    ports: Sequence[Any]


@dataclass(frozen=True)
class _Pod:
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    context: Mapping[str, Any] | None  # spec.securityContext
    containers: tuple[_Container, ...]  # visit order of policy/visitor.go: init, regular, ephemeral

    @property
    def windows(self) -> bool:
        # The 1.25+ revisions exempt pods whose spec.os.name is windows (corev1.Windows = "windows").
        os_ = _object(self.spec.get("os"), "spec.os") or {}
        return _text(os_.get("name"), "spec.os.name") == "windows"


def _read_pod(metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> _Pod:
    annotations = _object(metadata.get("annotations"), "metadata.annotations") or {}
    containers = []
    # policy/visitor.go visitContainers: initContainers, then containers, then ephemeralContainers.
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for index, raw in enumerate(_items(spec.get(kind), f"spec.{kind}")):
            container = _object(raw, f"spec.{kind}[{index}]") or {}
            name = _text(container.get("name"), f"spec.{kind}[{index}].name")
            path = f"spec.{kind}[{name}]"
            context = _object(container.get("securityContext"), f"{path}.securityContext")
            ports = _items(container.get("ports"), f"{path}.ports")
            containers.append(_Container(kind, name, path, context, ports))
    return _Pod(
        annotations={str(k): _text(v, f"metadata.annotations[{k}]") for k, v in annotations.items()},
        spec=spec,
        context=_object(spec.get("securityContext"), "spec.securityContext"),
        containers=tuple(containers),
    )


def _sub(parent: Mapping[str, Any] | None, key: str, path: str) -> Mapping[str, Any] | None:
    return None if parent is None else _object(parent.get(key), f"{path}.{key}")


# --- the upstream text helpers (policy/helpers.go) -------------------------------------------------


def _join_quote(items: Iterable[str]) -> str:
    listed = list(items)
    return '"' + '", "'.join(listed) + '"' if listed else ""


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _setters(pod_is_bad: bool, containers: Sequence[str]) -> list[str]:
    """The "pod and containers "a", "b"" phrase several checks build from their bad setters."""
    setters = ["pod"] if pod_is_bad else []
    if containers:
        setters.append(f"{_pluralize('container', 'containers', len(containers))} {_join_quote(containers)}")
    return setters


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def _go_quote(value: str) -> str:
    """Go's %q (strconv.Quote), which the annotation checks use to print values."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _violation(
    check: str,
    reason: str,
    detail: str,
    containers: Iterable[str] = (),
    fields: Iterable[str] = (),
) -> Violation:
    # The per-check part of AggregateCheckResult.ForbiddenDetail (policy/checks.go): "reason (detail)".
    message = f"{reason} ({detail})" if detail else reason
    return Violation(check, message, tuple(dict.fromkeys(containers)), tuple(dict.fromkeys(fields)))


# --- baseline checks -------------------------------------------------------------------------------


def _app_armor_profile(pod: _Pod) -> Violation | None:
    """policy/check_appArmorProfile.go appArmorProfile_1_0 (fields and the deprecated beta annotations)."""
    allowed_types = {"RuntimeDefault", "Localhost"}
    bad_values: set[str] = set()
    fields: list[str] = []
    pod_profile = _sub(pod.context, "appArmorProfile", "spec.securityContext")
    pod_bad = False
    if pod_profile is not None:
        profile_type = _text(pod_profile.get("type"), "spec.securityContext.appArmorProfile.type")
        if profile_type not in allowed_types:
            pod_bad = True
            bad_values.add(profile_type)
            fields.append("spec.securityContext.appArmorProfile.type")
    bad_containers = []
    for c in pod.containers:
        profile = _sub(c.context, "appArmorProfile", f"{c.path}.securityContext")
        if profile is not None:
            profile_type = _text(profile.get("type"), f"{c.path}.securityContext.appArmorProfile.type")
            if profile_type not in allowed_types:
                bad_containers.append(c.name)
                bad_values.add(profile_type)
                fields.append(f"{c.path}.securityContext.appArmorProfile.type")
    setters = _setters(pod_bad, bad_containers)
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    annotations = sorted(
        (key, value)
        for key, value in pod.annotations.items()
        if key.startswith(prefix)
        and not (value == "" or value == "runtime/default" or value.startswith("localhost/"))
    )
    forbidden = sorted(f"{key}={_go_quote(value)}" for key, value in annotations)
    values = sorted(bad_values) + forbidden
    if forbidden:
        setters.append(_pluralize("annotation", "annotations", len(forbidden)))
    if not setters:
        return None
    names = {c.name for c in pod.containers}
    annotated = [key.removeprefix(prefix) for key, _ in annotations if key.removeprefix(prefix) in names]
    return _violation(
        "appArmorProfile",
        _pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}",
        [*bad_containers, *annotated],
        [*fields, *(f"metadata.annotations[{key}]" for key, _ in annotations)],
    )


# policy/check_capabilities_baseline.go capabilities_allowed_1_0
_DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _capability_list(c: _Container, key: str) -> list[str]:
    capabilities = _sub(c.context, "capabilities", f"{c.path}.securityContext") or {}
    path = f"{c.path}.securityContext.capabilities.{key}"
    return [_text(item, path) for item in _items(capabilities.get(key), path)]


def _capabilities_baseline(pod: _Pod) -> Violation | None:
    """policy/check_capabilities_baseline.go capabilitiesBaseline_1_0."""
    bad_containers = []
    non_default: set[str] = set()
    for c in pod.containers:
        added = [cap for cap in _capability_list(c, "add") if cap not in _DEFAULT_CAPABILITIES]
        if added:
            bad_containers.append(c.name)
            non_default.update(added)
    if not bad_containers:
        return None
    return _violation(
        "capabilities_baseline",
        "non-default capabilities",
        f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
        f"must not include {_join_quote(sorted(non_default))} in securityContext.capabilities.add",
        bad_containers,
        [f"{c.path}.securityContext.capabilities.add" for c in pod.containers if c.name in bad_containers],
    )


def _host_namespaces(pod: _Pod) -> Violation | None:
    """policy/check_hostNamespaces.go hostNamespaces_1_0."""
    shared = [key for key in ("hostNetwork", "hostPID", "hostIPC") if _flag(pod.spec.get(key), f"spec.{key}")]
    if not shared:
        return None
    return _violation(
        "hostNamespaces",
        "host namespaces",
        ", ".join(f"{key}=true" for key in shared),
        fields=[f"spec.{key}" for key in shared],
    )


def _volumes(pod: _Pod) -> list[tuple[str, Mapping[str, Any]]]:
    volumes = []
    for index, raw in enumerate(_items(pod.spec.get("volumes"), "spec.volumes")):
        volume = _object(raw, f"spec.volumes[{index}]") or {}
        volumes.append((_text(volume.get("name"), f"spec.volumes[{index}].name"), volume))
    return volumes


def _host_path_volumes(pod: _Pod) -> Violation | None:
    """policy/check_hostPathVolumes.go hostPathVolumes_1_0."""
    names = [name for name, volume in _volumes(pod) if volume.get("hostPath") is not None]
    if not names:
        return None
    return _violation(
        "hostPathVolumes",
        "hostPath volumes",
        f"{_pluralize('volume', 'volumes', len(names))} {_join_quote(names)}",
        fields=[f"spec.volumes[{name}].hostPath" for name in names],
    )


def _host_ports(pod: _Pod) -> Violation | None:
    """policy/check_hostPorts.go hostPorts_1_0, on the defaulted Pod: with hostNetwork, a port of a
    container or init container without hostPort has hostPort = containerPort (defaultHostNetworkPorts
    in kubernetes/kubernetes pkg/apis/core/v1/defaults.go; ephemeral containers are not defaulted)."""
    host_network = _flag(pod.spec.get("hostNetwork"), "spec.hostNetwork") is True
    bad_containers = []
    ports: set[str] = set()
    fields = []
    for c in pod.containers:
        bad = False
        for index, raw in enumerate(c.ports):
            path = f"{c.path}.ports[{index}]"
            port = _object(raw, path) or {}
            host_port = _integer(port.get("hostPort"), f"{path}.hostPort")
            if not host_port and host_network and c.kind != "ephemeralContainers":
                host_port = _integer(port.get("containerPort"), f"{path}.containerPort")
            if host_port:
                bad = True
                ports.add(str(host_port))
                fields.append(f"{c.path}.ports[{index}].hostPort")
        if bad:
            bad_containers.append(c.name)
    if not bad_containers:
        return None
    # sets.String.List() sorts the ports as strings, so "10000" comes before "8080" as upstream prints it.
    return _violation(
        "hostPorts",
        "hostPort",
        f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
        f"{_pluralize('uses', 'use', len(bad_containers))} {_pluralize('hostPort', 'hostPorts', len(ports))} "
        f"{', '.join(sorted(ports))}",
        bad_containers,
        fields,
    )


def _context_flag(c: _Container, key: str) -> bool | None:
    return None if c.context is None else _flag(c.context.get(key), f"{c.path}.securityContext.{key}")


def _privileged(pod: _Pod) -> Violation | None:
    """policy/check_privileged.go privileged_1_0."""
    bad = [c for c in pod.containers if _context_flag(c, "privileged") is True]
    if not bad:
        return None
    names = [c.name for c in bad]
    return _violation(
        "privileged",
        "privileged",
        f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
        "must not set securityContext.privileged=true",
        names,
        [f"{c.path}.securityContext.privileged" for c in bad],
    )


def _proc_mount(pod: _Pod) -> Violation | None:
    """policy/check_procMount.go procMount_1_0 (without the opt-in user-namespace relaxation)."""
    bad = []
    types: set[str] = set()
    for c in pod.containers:
        value = None if c.context is None else c.context.get("procMount")
        if value is not None:
            proc_mount = _text(value, f"{c.path}.securityContext.procMount")
            if proc_mount != "Default":  # corev1.DefaultProcMount
                bad.append(c)
                types.add(proc_mount)
    if not bad:
        return None
    names = [c.name for c in bad]
    return _violation(
        "procMount",
        "procMount",
        f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
        f"must not set securityContext.procMount to {_join_quote(sorted(types))}",
        names,
        [f"{c.path}.securityContext.procMount" for c in bad],
    )


# policy/check_seLinuxOptions.go selinuxAllowedTypes1_0 / selinuxAllowedTypes1_31
_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux_options(allowed_types: frozenset[str]) -> Callable[[_Pod], Violation | None]:
    """policy/check_seLinuxOptions.go seLinuxOptions (seLinuxOptions1_0, seLinuxOptions1_31)."""

    def check(pod: _Pod) -> Violation | None:
        bad_types: set[str] = set()
        set_user = set_role = False

        def valid(options: Mapping[str, Any], path: str) -> bool:
            nonlocal set_user, set_role
            ok = True
            selinux_type = _text(options.get("type"), f"{path}.type")
            if selinux_type not in allowed_types:
                ok = False
                bad_types.add(selinux_type)
            if _text(options.get("user"), f"{path}.user"):
                set_user = True
                ok = False
            if _text(options.get("role"), f"{path}.role"):
                set_role = True
                ok = False
            return ok

        fields = []
        pod_options = _sub(pod.context, "seLinuxOptions", "spec.securityContext")
        pod_bad = pod_options is not None and not valid(pod_options, "spec.securityContext.seLinuxOptions")
        if pod_bad:
            fields.append("spec.securityContext.seLinuxOptions")
        bad_containers = []
        for c in pod.containers:
            options = _sub(c.context, "seLinuxOptions", f"{c.path}.securityContext")
            if options is not None and not valid(options, f"{c.path}.securityContext.seLinuxOptions"):
                bad_containers.append(c.name)
                fields.append(f"{c.path}.securityContext.seLinuxOptions")
        setters = _setters(pod_bad, bad_containers)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{_pluralize('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        if set_user:
            data.append("user may not be set")
        if set_role:
            data.append("role may not be set")
        return _violation(
            "seLinuxOptions",
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
            bad_containers,
            fields,
        )

    return check


def _valid_seccomp_annotation(value: str) -> bool:
    # corev1.SeccompProfileRuntimeDefault, DeprecatedSeccompProfileDockerDefault, SeccompLocalhostProfileNamePrefix
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def _seccomp_profile_baseline_1_0(pod: _Pod) -> Violation | None:
    """policy/check_seccompProfile_baseline.go seccompProfileBaseline_1_0 (alpha annotations, v1.0-v1.18)."""
    forbidden: dict[str, tuple[str, str | None]] = {}  # rendered -> (field, container)
    pod_key = "seccomp.security.alpha.kubernetes.io/pod"
    if pod_key in pod.annotations and not _valid_seccomp_annotation(pod.annotations[pod_key]):
        forbidden[f"{pod_key}={_go_quote(pod.annotations[pod_key])}"] = (
            f"metadata.annotations[{pod_key}]",
            None,
        )
    for c in pod.containers:
        key = "container.seccomp.security.alpha.kubernetes.io/" + c.name
        if key in pod.annotations and not _valid_seccomp_annotation(pod.annotations[key]):
            forbidden[f"{key}={_go_quote(pod.annotations[key])}"] = (f"metadata.annotations[{key}]", c.name)
    if not forbidden:
        return None
    rendered = sorted(forbidden)
    return _violation(
        "seccompProfile_baseline",
        "seccompProfile",
        f"forbidden {_pluralize('annotation', 'annotations', len(rendered))} {', '.join(rendered)}",
        [name for _, name in (forbidden[r] for r in rendered) if name is not None],
        [forbidden[r][0] for r in rendered],
    )


_VALID_SECCOMP_TYPES = frozenset(
    {"RuntimeDefault", "Localhost"}
)  # policy/check_seccompProfile_baseline.go validSeccomp


def _seccomp_type(profile: Mapping[str, Any], path: str) -> str:
    return _text(profile.get("type"), f"{path}.seccompProfile.type")


def _explicitly_bad_seccomp(pod: _Pod) -> tuple[bool, bool, list[_Container], set[str]]:
    """(pod set a bad type, pod set a good type, containers that set a bad type, the bad types)."""
    bad_values: set[str] = set()
    pod_bad = pod_good = False
    pod_profile = _sub(pod.context, "seccompProfile", "spec.securityContext")
    if pod_profile is not None:
        value = _seccomp_type(pod_profile, "spec.securityContext")
        pod_bad, pod_good = value not in _VALID_SECCOMP_TYPES, value in _VALID_SECCOMP_TYPES
        if pod_bad:
            bad_values.add(value)
    bad = []
    for c in pod.containers:
        profile = _sub(c.context, "seccompProfile", f"{c.path}.securityContext")
        if profile is not None:
            value = _seccomp_type(profile, f"{c.path}.securityContext")
            if value not in _VALID_SECCOMP_TYPES:
                bad.append(c)
                bad_values.add(value)
    return pod_bad, pod_good, bad, bad_values


def _explicit_seccomp_violation(
    check: str, pod_bad: bool, bad: list[_Container], bad_values: set[str]
) -> Violation | None:
    setters = _setters(pod_bad, [c.name for c in bad])
    if not setters:
        return None
    fields = ["spec.securityContext.seccompProfile.type"] if pod_bad else []
    return _violation(
        check,
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        f"{_join_quote(sorted(bad_values))}",
        [c.name for c in bad],
        [*fields, *(f"{c.path}.securityContext.seccompProfile.type" for c in bad)],
    )


def _seccomp_profile_baseline_1_19(pod: _Pod) -> Violation | None:
    """policy/check_seccompProfile_baseline.go seccompProfileBaseline_1_19 (the seccompProfile fields)."""
    pod_bad, _, bad, bad_values = _explicitly_bad_seccomp(pod)
    return _explicit_seccomp_violation("seccompProfile_baseline", pod_bad, bad, bad_values)


# policy/check_sysctls.go sysctlsAllowedV1Dot0 .. sysctlsAllowedV1Dot32
_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> Callable[[_Pod], Violation | None]:
    """policy/check_sysctls.go sysctls (sysctlsV1Dot0, V1Dot27, V1Dot29, V1Dot32)."""

    def check(pod: _Pod) -> Violation | None:
        path = "spec.securityContext.sysctls"
        forbidden = []
        for index, raw in enumerate(_items((pod.context or {}).get("sysctls"), path)):
            name = _text((_object(raw, f"{path}[{index}]") or {}).get("name"), f"{path}[{index}].name")
            if name not in allowed:
                forbidden.append(name)
        if not forbidden:
            return None
        return _violation(
            "sysctls", "forbidden sysctls", ", ".join(forbidden), fields=[f"{path}[{n}]" for n in forbidden]
        )

    return check


def _windows_host_process(pod: _Pod) -> Violation | None:
    """policy/check_windowsHostProcess.go windowsHostProcess_1_0."""

    def host_process(context: Mapping[str, Any] | None, path: str) -> bool:
        options = _sub(context, "windowsOptions", path)
        return (
            options is not None
            and _flag(options.get("hostProcess"), f"{path}.windowsOptions.hostProcess") is True
        )

    bad = [c for c in pod.containers if host_process(c.context, f"{c.path}.securityContext")]
    pod_bad = host_process(pod.context, "spec.securityContext")
    setters = _setters(pod_bad, [c.name for c in bad])
    if not setters:
        return None
    fields = ["spec.securityContext.windowsOptions.hostProcess"] if pod_bad else []
    return _violation(
        "windowsHostProcess",
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
        [c.name for c in bad],
        [*fields, *(f"{c.path}.securityContext.windowsOptions.hostProcess" for c in bad)],
    )


# --- restricted checks -----------------------------------------------------------------------------


def _allow_privilege_escalation_1_8(pod: _Pod) -> Violation | None:
    """policy/check_allowPrivilegeEscalation.go allowPrivilegeEscalation_1_8."""
    bad = [c for c in pod.containers if _context_flag(c, "allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    names = [c.name for c in bad]
    return _violation(
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation != false",
        f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
        "must set securityContext.allowPrivilegeEscalation=false",
        names,
        [f"{c.path}.securityContext.allowPrivilegeEscalation" for c in bad],
    )


def _capabilities_restricted_1_22(pod: _Pod) -> Violation | None:
    """policy/check_capabilities_restricted.go capabilitiesRestricted_1_22."""
    missing_drop_all: list[_Container] = []
    adding: list[_Container] = []
    forbidden: set[str] = set()
    for c in pod.containers:
        if "ALL" not in _capability_list(c, "drop"):
            missing_drop_all.append(c)
        added = [cap for cap in _capability_list(c, "add") if cap != "NET_BIND_SERVICE"]
        if added:
            adding.append(c)
            forbidden.update(added)
    details = []
    if missing_drop_all:
        names = [c.name for c in missing_drop_all]
        details.append(
            f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
            'must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        names = [c.name for c in adding]
        details.append(
            f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
            f"must not include {_join_quote(sorted(forbidden))} in securityContext.capabilities.add"
        )
    if not details:
        return None
    bad = [c for c in pod.containers if c in missing_drop_all or c in adding]
    return _violation(
        "capabilities_restricted",
        "unrestricted capabilities",
        "; ".join(details),
        [c.name for c in bad],
        [
            *(f"{c.path}.securityContext.capabilities.drop" for c in missing_drop_all),
            *(f"{c.path}.securityContext.capabilities.add" for c in adding),
        ],
    )


# policy/check_restrictedVolumes.go restrictedVolumes_1_0: the allowed inline sources, then the
# forbidden ones in the order its switch names them (the first one set names the type).
_ALLOWED_VOLUME_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
_RESTRICTED_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)
# Every source of corev1.VolumeSource at k8s.io/api v0.32.9 (core/v1/types.go): the two lists and `image`.
_VOLUME_SOURCES = (*_ALLOWED_VOLUME_SOURCES, *_RESTRICTED_VOLUME_SOURCES, "image")


def _restricted_volumes(pod: _Pod) -> Violation | None:
    """policy/check_restrictedVolumes.go restrictedVolumes_1_0 (the `image` source is "unknown" there)."""
    bad_names = []
    bad_types: set[str] = set()
    fields = []
    for name, volume in _volumes(pod):
        # SetDefaults_Volume (kubernetes/kubernetes pkg/apis/core/v1/defaults.go): a volume with no
        # source at all is an emptyDir by the time admission sees it.
        if not any(volume.get(source) is not None for source in _VOLUME_SOURCES):
            continue
        if any(volume.get(source) is not None for source in _ALLOWED_VOLUME_SOURCES):
            continue
        bad_names.append(name)
        source = next((s for s in _RESTRICTED_VOLUME_SOURCES if volume.get(s) is not None), None)
        bad_types.add(source or "unknown")
        fields.append(f"spec.volumes[{name}].{source}" if source else f"spec.volumes[{name}]")
    if not bad_names:
        return None
    return _violation(
        "restrictedVolumes",
        "restricted volume types",
        f"{_pluralize('volume', 'volumes', len(bad_names))} {_join_quote(bad_names)} "
        f"{_pluralize('uses', 'use', len(bad_names))} "
        f"{_pluralize('restricted volume type', 'restricted volume types', len(bad_types))} "
        f"{_join_quote(sorted(bad_types))}",
        fields=fields,
    )


def _run_as_non_root(pod: _Pod) -> Violation | None:
    """policy/check_runAsNonRoot.go runAsNonRoot_1_0 (a container inherits a pod-level true)."""
    pod_value = (
        None
        if pod.context is None
        else _flag(pod.context.get("runAsNonRoot"), "spec.securityContext.runAsNonRoot")
    )
    explicitly_bad = [c for c in pod.containers if _context_flag(c, "runAsNonRoot") is False]
    implicitly_bad = [
        c for c in pod.containers if _context_flag(c, "runAsNonRoot") is None and pod_value is not True
    ]
    setters = _setters(pod_value is False, [c.name for c in explicitly_bad])
    # An explicit false anywhere is reported alone, as upstream returns before the implicit case.
    if setters:
        fields = ["spec.securityContext.runAsNonRoot"] if pod_value is False else []
        return _violation(
            "runAsNonRoot",
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
            [c.name for c in explicitly_bad],
            [*fields, *(f"{c.path}.securityContext.runAsNonRoot" for c in explicitly_bad)],
        )
    if not implicitly_bad:
        return None
    names = [c.name for c in implicitly_bad]
    return _violation(
        "runAsNonRoot",
        "runAsNonRoot != true",
        f"pod or {_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
        "must set securityContext.runAsNonRoot=true",
        names,
        [f"{c.path}.securityContext.runAsNonRoot" for c in implicitly_bad],
    )


def _run_as_user_1_23(pod: _Pod) -> Violation | None:
    """policy/check_runAsUser.go runAsUser_1_23 (only an explicit 0 is forbidden)."""

    def root(context: Mapping[str, Any] | None, path: str) -> bool:
        return context is not None and _integer(context.get("runAsUser"), f"{path}.runAsUser") == 0

    pod_bad = root(pod.context, "spec.securityContext")
    bad = [c for c in pod.containers if root(c.context, f"{c.path}.securityContext")]
    setters = _setters(pod_bad, [c.name for c in bad])
    if not setters:
        return None
    fields = ["spec.securityContext.runAsUser"] if pod_bad else []
    return _violation(
        "runAsUser",
        "runAsUser=0",
        f"{' and '.join(setters)} must not set runAsUser=0",
        [c.name for c in bad],
        [*fields, *(f"{c.path}.securityContext.runAsUser" for c in bad)],
    )


def _seccomp_profile_restricted_1_19(pod: _Pod) -> Violation | None:
    """policy/check_seccompProfile_restricted.go seccompProfileRestricted_1_19 (a container inherits the pod's)."""
    pod_bad, pod_good, bad, bad_values = _explicitly_bad_seccomp(pod)
    explicit = _explicit_seccomp_violation("seccompProfile_restricted", pod_bad, bad, bad_values)
    if explicit is not None:
        return explicit
    unset = [
        c
        for c in pod.containers
        if _sub(c.context, "seccompProfile", f"{c.path}.securityContext") is None and not pod_good
    ]
    if not unset:
        return None
    names = [c.name for c in unset]
    return _violation(
        "seccompProfile_restricted",
        "seccompProfile",
        f"pod or {_pluralize('container', 'containers', len(names))} {_join_quote(names)} "
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        names,
        [f"{c.path}.securityContext.seccompProfile.type" for c in unset],
    )


def _except_windows(check: Callable[[_Pod], Violation | None]) -> Callable[[_Pod], Violation | None]:
    """The 1.25 revisions (allowPrivilegeEscalation_1_25, capabilitiesRestricted_1_25,
    seccompProfileRestricted_1_25): a pod with spec.os.name=windows passes; API validation forbids
    it to set these Linux-only fields at all."""

    def check_unless_windows(pod: _Pod) -> Violation | None:
        return None if pod.windows else check(pod)

    return check_unless_windows


# --- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Revision:
    since: Version  # VersionedCheck.MinimumVersion
    evaluate: Callable[[_Pod], Violation | None]
    overrides: tuple[str, ...] = ()  # VersionedCheck.OverrideCheckIDs: baseline checks it replaces


@dataclass(frozen=True)
class _Check:
    id: str
    level: _CheckLevel
    revisions: tuple[_Revision, ...]


# Each check's Check{ID, Level, Versions} from its policy/check_*.go constructor (CheckAppArmorProfile, ...).
_CHECKS: tuple[_Check, ...] = (
    _Check("appArmorProfile", "baseline", (_Revision((1, 0), _app_armor_profile),)),
    _Check("capabilities_baseline", "baseline", (_Revision((1, 0), _capabilities_baseline),)),
    _Check("hostNamespaces", "baseline", (_Revision((1, 0), _host_namespaces),)),
    _Check("hostPathVolumes", "baseline", (_Revision((1, 0), _host_path_volumes),)),
    _Check("hostPorts", "baseline", (_Revision((1, 0), _host_ports),)),
    _Check("privileged", "baseline", (_Revision((1, 0), _privileged),)),
    _Check("procMount", "baseline", (_Revision((1, 0), _proc_mount),)),
    _Check(
        "seLinuxOptions",
        "baseline",
        (
            _Revision((1, 0), _se_linux_options(_SELINUX_TYPES_1_0)),
            _Revision((1, 31), _se_linux_options(_SELINUX_TYPES_1_31)),
        ),
    ),
    _Check(
        "seccompProfile_baseline",
        "baseline",
        (
            _Revision((1, 0), _seccomp_profile_baseline_1_0),
            _Revision((1, 19), _seccomp_profile_baseline_1_19),
        ),
    ),
    _Check(
        "sysctls",
        "baseline",
        (
            _Revision((1, 0), _sysctls(_SYSCTLS_1_0)),
            _Revision((1, 27), _sysctls(_SYSCTLS_1_27)),
            _Revision((1, 29), _sysctls(_SYSCTLS_1_29)),
            _Revision((1, 32), _sysctls(_SYSCTLS_1_32)),
        ),
    ),
    _Check("windowsHostProcess", "baseline", (_Revision((1, 0), _windows_host_process),)),
    _Check(
        "allowPrivilegeEscalation",
        "restricted",
        (
            _Revision((1, 8), _allow_privilege_escalation_1_8),
            _Revision((1, 25), _except_windows(_allow_privilege_escalation_1_8)),
        ),
    ),
    _Check(
        "capabilities_restricted",
        "restricted",
        (
            _Revision((1, 22), _capabilities_restricted_1_22, ("capabilities_baseline",)),
            _Revision((1, 25), _except_windows(_capabilities_restricted_1_22), ("capabilities_baseline",)),
        ),
    ),
    _Check(
        "restrictedVolumes", "restricted", (_Revision((1, 0), _restricted_volumes, ("hostPathVolumes",)),)
    ),
    _Check("runAsNonRoot", "restricted", (_Revision((1, 0), _run_as_non_root),)),
    _Check("runAsUser", "restricted", (_Revision((1, 23), _run_as_user_1_23),)),
    _Check(
        "seccompProfile_restricted",
        "restricted",
        (
            _Revision((1, 19), _seccomp_profile_restricted_1_19, ("seccompProfile_baseline",)),
            _Revision(
                (1, 25), _except_windows(_seccomp_profile_restricted_1_19), ("seccompProfile_baseline",)
            ),
        ),
    ),
)

CHECK_IDS: tuple[str, ...] = tuple(check.id for check in _CHECKS)


def _revision_at(check: _Check, version: Version) -> _Revision | None:
    """registry.go inflateVersions: a revision applies from its MinimumVersion until the next one's."""
    applicable = [revision for revision in check.revisions if revision.since <= version]
    return applicable[-1] if applicable else None


def _checks_at(level: _CheckLevel, version: Version) -> list[tuple[str, _Revision]]:
    """registry.go populate: baseline checks, then restricted ones, each sorted by ID; at restricted, a
    baseline check is dropped while a restricted check that overrides it applies."""
    levels = ("baseline",) if level == "baseline" else ("baseline", "restricted")
    active = [(c, r) for c in _CHECKS if c.level in levels and (r := _revision_at(c, version)) is not None]
    overridden = {name for c, r in active if c.level == "restricted" for name in r.overrides}
    ordered = sorted(active, key=lambda pair: (pair[0].level != "baseline", pair[0].id))
    return [(c.id, r) for c, r in ordered if c.id not in overridden]


_VERSION = re.compile(r"v?1\.(0|[1-9][0-9]*)")
_LABEL_VERSION = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")  # api/helpers.go versionRegexp


def parse_version(version: str) -> Version:
    """A policy version: "latest", "v1.x" (the label form, api/helpers.go ParseVersion) or "1.x"."""
    if version == "latest":
        return LATEST
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ValueError(f'policy version {version!r}: must be "latest", "v1.x" or "1.x"')
    return (1, int(match.group(1)))


def evaluate_pod(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], level: Level, version: str = "1.32"
) -> list[Violation]:
    """Every check the controller would fail for this pod metadata and spec at `level` and `version`
    (registry.go checkRegistry.EvaluatePod): none at privileged, in the controller's order otherwise."""
    if level not in ("privileged", "baseline", "restricted"):
        raise ValueError(f"level {level!r}: must be one of privileged, baseline, restricted")
    policy_version = min(parse_version(version), LATEST)
    if level == "privileged":
        return []
    pod = _read_pod(metadata, spec)
    return [
        v for _, revision in _checks_at(level, policy_version) if (v := revision.evaluate(pod)) is not None
    ]


def evaluate_manifest(pod: Mapping[str, Any], level: Level, version: str = "1.32") -> list[Violation]:
    """`evaluate_pod` on a Pod object (for a workload's template, pass its metadata and spec)."""
    if pod.get("kind") != "Pod":
        raise ValueError(f"expected a Pod object, got kind {pod.get('kind')!r}")
    return evaluate_pod(pod.get("metadata") or {}, pod.get("spec") or {}, level, version)


def enforced_level(namespace_labels: Mapping[str, str]) -> tuple[Level, str]:
    """The (level, version) a namespace's labels make the controller enforce (api/helpers.go
    PolicyToEvaluate over the default AdmissionConfiguration, privileged:latest). As upstream, an
    unparseable level enforces restricted and an unparseable version means latest; latest is 1.32."""
    levels: dict[str, Level] = {
        "privileged": "privileged",
        "baseline": "baseline",
        "restricted": "restricted",
    }
    level: Level = "privileged"
    if ENFORCE_LABEL in namespace_labels:
        level = levels.get(namespace_labels[ENFORCE_LABEL], "restricted")
    # ParseVersion accepts only "latest" and "v1.x" in a label (not the bare "1.x" evaluate_pod takes).
    label = namespace_labels.get(ENFORCE_VERSION_LABEL, "latest")
    match = _LABEL_VERSION.fullmatch(label)
    minor = int(match.group(1)) if match else LATEST[1]
    return level, f"1.{minor}"


def denial_message(violations: Sequence[Violation], level: Level, version: str = "1.32") -> str:
    """The controller's rejection text after `pods "<name>" is forbidden: ` (admission/admission.go
    EvaluatePod with AggregateCheckResult.ForbiddenDetail), e.g.
    `violates PodSecurity "restricted:v1.32": host namespaces (hostNetwork=true)`."""
    label = "latest" if version == "latest" else "v{}.{}".format(*parse_version(version))
    return f'violates PodSecurity "{level}:{label}": ' + ", ".join(v.message for v in violations)
