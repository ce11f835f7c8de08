"""What the kubelet does to start a container as rendered: environment, command line, probes.

A rendered container only says what the kubelet is asked to do; these functions do what the
kubelet does with it, so a test can start the real program with exactly that command line and
environment and then probe it exactly as the kubelet (or Prometheus) will:

- environment: `envFrom` first, then `env` in order, each value expanded with the variables
  defined before it; `valueFrom` references resolved from the Secrets/ConfigMaps of the render
  (kubernetes v1.32 `pkg/kubelet/kubelet_pods.go` makeEnvironmentVariables);
- command line: `command` (else the image's ENTRYPOINT) + `args` (else the image's CMD), with
  `$(VAR)` references expanded from the container's environment; `$$` escapes a `$`; an
  unknown reference stays as written (kubernetes `third_party/forked/golang/expansion/expand.go`
  Expand / MappingFuncFor);
- HTTP probes: `GET <scheme>://<host or pod IP>:<port><path>`, named ports resolved against the
  container's ports, headers `User-Agent: kube-probe/<major>.<minor>` and `Accept: */*` unless
  the probe sets them, and the Host header taken from `httpHeaders` or else the URL, i.e.
  `<pod IP>:<port>` (kubernetes `pkg/probe/http/request.go` NewRequestForHTTPGetAction,
  newProbeRequest). Success is a status in [200, 400) (`pkg/probe/http/http.go` DoHTTPProbe).

Volume mounts are files the test materialises itself; paths are left as rendered, so callers
map a mount path to a folder with `rewrite_paths`. What only a real node confirms: the image's
own filesystem, users and installed versions (the tests run the same program from this
environment), and DNS names of cluster Services (callers substitute loopback endpoints).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KUBELET_VERSION = "1.32"  # the Kubernetes version the project targets (naomi:kubernetesVersion)

Resolver = Callable[[str, str], str | None]  # (object name, key) -> value, None when absent


class StartupError(ValueError):
    """The kubelet would refuse to start the container (e.g. a missing Secret key)."""


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion, as `expansion.Expand` with `MappingFuncFor(mapping)`."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable_name(text[cursor + 1 :])
            if is_variable:
                out.append(mapping.get(read, f"$({read})"))
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_variable_name(text: str) -> tuple[str, bool, int]:
    """`tryReadVariableName`: `$$` -> `$`; `$(NAME)` -> NAME; `$(` unclosed and `$x` kept."""
    if text[0] == "$":
        return "$", False, 1
    if text[0] == "(":
        close = text.find(")", 1)
        if close != -1:
            return text[1:close], True, close + 1
        return "$(", False, 1
    return "$" + text[0], False, 1


def environment(
    container: Mapping[str, Any],
    *,
    secret: Resolver,
    config_map: Resolver,
    pod_fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env in order)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, resolve in (("secretRef", secret), ("configMapRef", config_map)):
            reference = source.get(kind)
            if reference is None:
                continue
            keys = resolve(str(reference["name"]), "*")
            if keys is None:
                if reference.get("optional"):
                    continue
                raise StartupError(f"envFrom {kind} {reference['name']!r} does not exist")
            for key in keys.split("\0"):
                found = resolve(str(reference["name"]), key)
                if found is not None:
                    env[prefix + key] = found
    fields = dict(pod_fields or {})
    for variable in container.get("env") or []:
        name = str(variable["name"])
        if "value" in variable:
            env[name] = expand(str(variable["value"]), env)
            continue
        source = variable.get("valueFrom") or {}
        value: str | None = None
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secret(str(ref["name"]), str(ref["key"]))
            missing = f"secret {ref['name']!r} key {ref['key']!r}"
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = config_map(str(ref["name"]), str(ref["key"]))
            missing = f"configMap {ref['name']!r} key {ref['key']!r}"
        elif "fieldRef" in source:
            path = str(source["fieldRef"]["fieldPath"])
            value = fields.get(path)
            missing = f"field {path}"
        else:
            raise StartupError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is None:
            if (source.get("secretKeyRef") or source.get("configMapKeyRef") or {}).get("optional"):
                continue
            raise StartupError(f"env {name}: {missing} does not exist")
        env[name] = value
    return env


@dataclass(frozen=True)
class Image:
    """What an image contributes when the container does not say: ENTRYPOINT and CMD."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def command_line(container: Mapping[str, Any], env: Mapping[str, str], image: Image = Image()) -> list[str]:
    """`command` or ENTRYPOINT, then `args` or CMD, with `$(VAR)` expanded (as the kubelet does)."""
    # kubernetes pkg/kubelet/container/helpers.go ExpandContainerCommandAndArgs: command and
    # args are expanded; an image's own ENTRYPOINT/CMD are passed through untouched.
    if "command" in container:
        command = [expand(str(word), env) for word in container["command"]]
        args = [expand(str(word), env) for word in container.get("args") or []]
    else:
        command = list(image.entrypoint)
        args = (
            [expand(str(word), env) for word in container["args"]] if "args" in container else list(image.cmd)
        )
    return command + args


@dataclass(frozen=True)
class ProbeRequest:
    """The HTTP request a probe sends: where to connect and what the server sees."""

    scheme: str
    host: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def host_header(self) -> str:
        return self.headers.get("Host", f"{self.host}:{self.port}")

    def url(self, connect_host: str, connect_port: int | None = None) -> str:
        """The URL to open from a test, connecting to `connect_host` instead of the pod IP."""
        return f"{self.scheme}://{connect_host}:{connect_port or self.port}{self.path}"


def resolve_port(port: int | str, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or a container port name (`pkg/probe/util.go` ResolveContainerPort)."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise StartupError(f"container {container.get('name')}: no port named {port!r}")


def probe_request(
    probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, *, purpose: str = "probe"
) -> ProbeRequest | None:
    """The request the kubelet sends for an `httpGet` probe (None for exec/tcp/grpc probes)."""
    http = probe.get("httpGet")
    if http is None:
        return None
    headers: dict[str, str] = {}
    for header in http.get("httpHeaders") or []:
        headers[str(header["name"]).title()] = str(header["value"])
    headers.setdefault("User-Agent", f"kube-{purpose}/{KUBELET_VERSION}")
    headers.setdefault("Accept", "*/*")
    path = str(http.get("path") or "")
    return ProbeRequest(
        scheme=str(http.get("scheme") or "HTTP").lower(),
        host=str(http.get("host") or pod_ip),
        port=resolve_port(http["port"], container),
        path=path if path.startswith("/") else f"/{path}",
        headers=headers,
    )


def probe_succeeded(status: int) -> bool:
    """`pkg/probe/http/http.go` DoHTTPProbe: 200 <= status < 400 is success."""
    return 200 <= status < 400


def rewrite_paths(values: Sequence[str], mounts: Mapping[str, str]) -> list[str]:
    """Map mount paths in `values` to local folders in one pass (a mapped path is not re-mapped).

    A mount path matches where it is followed by `/` or ends the value (`/tmp` does not match
    `/tmpfoo`); the longest mount wins.
    """
    if not mounts:
        return list(values)
    ordered = sorted(mounts, key=len, reverse=True)
    pattern = re.compile("|".join(f"{re.escape(m.rstrip('/'))}(?=/|$)" for m in ordered))
    local = {m.rstrip("/"): mounts[m].rstrip("/") for m in ordered}
    return [pattern.sub(lambda match: local[match.group(0)], value) for value in values]
