"""What Traefik's Kubernetes CRD provider does with our IngressRoutes and Middlewares.

Traefik v3 (the chart's appVersion v3.7.11) builds its router table from IngressRoutes in the
namespaces it watches and drops every route whose backend it cannot resolve, logging an error
and serving 404 for that path. The rules modelled here, from traefik/traefik v3
`pkg/provider/kubernetes/crd/`:

- only objects in watched namespaces are read at all (`--providers.kubernetescrd.namespaces`;
  empty = every namespace); a Service or Middleware outside them is "not within watched
  namespaces" (`client.go` clientWrapper.GetService / isWatchedNamespace);
- a Service or Middleware in another namespace than the IngressRoute's needs
  `--providers.kubernetescrd.allowCrossNamespace=true` (`kubernetes_http.go` / `kubernetes.go`
  "cross-namespace ... not allowed");
- the Service must exist and expose the port the route names, by number or by name
  (`kubernetes_http.go` loadServers "service port not found");
- each Middleware must exist (else the router is not created: "middleware ... does not exist");
- `tls: {}` uses the default TLSStore's certificate Secret, which must exist in the store's
  namespace.

The watched namespaces and the cross-namespace switch are read from the Traefik container's
arguments, as the chart renders them from our values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProviderSettings:
    """The CRD provider's flags, as the Traefik container receives them."""

    namespaces: frozenset[str]  # empty: all namespaces
    allow_cross_namespace: bool

    @classmethod
    def from_arguments(cls, arguments: Sequence[str]) -> ProviderSettings:
        namespaces: frozenset[str] = frozenset()
        allow = False
        for argument in arguments:
            key, _, value = argument.partition("=")
            if key.lower() == "--providers.kubernetescrd.namespaces":
                namespaces = frozenset(part for part in value.split(",") if part)
            elif key.lower() == "--providers.kubernetescrd.allowcrossnamespace":
                allow = value.lower() in ("", "true")
        return cls(namespaces=namespaces, allow_cross_namespace=allow)

    def watched(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


def traefik_settings(objects: Iterable[Mapping[str, Any]]) -> ProviderSettings | None:
    """The provider settings of the (single) Traefik Deployment among `objects`, if any."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        for container in (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []:
            arguments = [str(a) for a in container.get("args") or []]
            if any(a.startswith("--providers.kubernetescrd") for a in arguments):
                return ProviderSettings.from_arguments(arguments)
    return None


def _index(objects: Iterable[Mapping[str, Any]], kind: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    found = {}
    for obj in objects:
        if obj.get("kind") == kind:
            metadata = obj.get("metadata") or {}
            found[(str(metadata.get("namespace")), str(metadata.get("name")))] = obj
    return found


def _service_has_port(service: Mapping[str, Any], port: int | str) -> bool:
    for declared in (service.get("spec") or {}).get("ports") or []:
        if declared.get("port") == port or (isinstance(port, str) and declared.get("name") == port):
            return True
    return False


def route_problems(objects: Sequence[Mapping[str, Any]], settings: ProviderSettings) -> list[str]:
    """Every IngressRoute path Traefik would not serve, with the reason Traefik gives."""
    services = _index(objects, "Service")
    middlewares = _index(objects, "Middleware")
    secrets = _index(objects, "Secret")
    stores = _index(objects, "TLSStore")
    problems: list[str] = []
    for (namespace, name), route in sorted(_index(objects, "IngressRoute").items()):
        where = f"IngressRoute {namespace}/{name}"
        if not settings.watched(namespace):
            problems.append(f"{where}: ignored, its namespace is not within watched namespaces")
            continue
        spec = route.get("spec") or {}
        for rule in spec.get("routes") or []:
            for reference in rule.get("middlewares") or []:
                target = (str(reference.get("namespace") or namespace), str(reference["name"]))
                problems += _reference(where, "middleware", target, namespace, settings, middlewares)
            for service in rule.get("services") or []:
                if service.get("kind", "Service") != "Service":
                    continue
                target = (str(service.get("namespace") or namespace), str(service["name"]))
                found = _reference(where, "service", target, namespace, settings, services)
                problems += found
                if not found and not _service_has_port(services[target], service.get("port")):
                    problems.append(
                        f"{where}: service {target[0]}/{target[1]}: service port not found: {service.get('port')}"
                    )
        if "tls" in spec and not (spec.get("tls") or {}).get("secretName"):
            default = [store for (ns, store_name), store in stores.items() if store_name == "default"]
            secret = (
                (((default[0].get("spec") or {}).get("defaultCertificate") or {}).get("secretName"))
                if default
                else None
            )
            store_namespace = (default[0].get("metadata") or {}).get("namespace") if default else None
            if secret is None:
                problems.append(f"{where}: tls without secretName and no default TLSStore certificate")
            elif (str(store_namespace), str(secret)) not in secrets:
                problems.append(
                    f"{where}: the default TLSStore's certificate Secret {store_namespace}/{secret} does not exist"
                )
    return problems


def _reference(
    where: str,
    what: str,
    target: tuple[str, str],
    namespace: str,
    settings: ProviderSettings,
    known: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[str]:
    if target[0] != namespace and not settings.allow_cross_namespace:
        return [f"{where}: {what} {target[0]}/{target[1]}: cross-namespace reference is not allowed"]
    if not settings.watched(target[0]):
        return [f"{where}: {what} {target[0]}/{target[1]}: namespace is not within watched namespaces"]
    if target not in known:
        return [f"{where}: {what} {target[0]}/{target[1]} does not exist"]
    return []
