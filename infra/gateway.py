"""The single entry point: Traefik (official chart) with TLS, basic auth and path routes.

Why Traefik: ingress-nginx is retired; Traefik is maintained, multi-arch, ships an official
chart with a values schema, speaks the Kubernetes Gateway API and its own IngressRoute CRD, and
has basic-auth and strip-prefix middlewares built in, so no extra auth proxy is needed on a
Raspberry Pi lab. Routing is by path prefix on one address (`https://<node-ip>:<port>/mlflow`),
so it works on a LAN without DNS. TLS comes from a CA the stack generates (pulumi-tls; export
`gatewayCaCertificate` and trust it once) or from certificates the user supplies. The gateway's
Service is the only NodePort the platform renders.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from infra.charts import ReleaseSettings, chart_release
from infra.contract import ClusterNetwork, Contract, Flow, Pods, Route, tcp
from infra.naming import PART_OF, labels
from infra.profiles import Resources
from infra.versions import TRAEFIK

CONTAINER_PORT = 8443
TLS_SECRET = "gateway-tls"
USERS_SECRET = "gateway-users"
AUTH_MIDDLEWARE = "basic-auth"
# The chart's pod labels (traefik 41.3.0 templates/_helpers.tpl traefik.labelselector).
TRAEFIK_LABELS = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-naomi-gateway"}


@dataclass(frozen=True, kw_only=True)
class ProvidedCertificate:
    certificate: pulumi.Input[str]
    private_key: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class GatewayArgs:
    namespace: str
    address: str
    node_port: int
    resources: Resources
    users: tuple[str, ...] = ("admin",)
    routes: tuple[Route, ...] = ()
    tls_mode: Literal["generated-ca", "provided"] = "generated-ca"
    provided: ProvidedCertificate | None = None
    network: ClusterNetwork
    extra_values: dict[str, Any] = field(default_factory=dict)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)

    def __post_init__(self) -> None:
        if not 30000 <= self.node_port <= 32767:
            raise ValueError(f"GatewayArgs.node_port must be in 30000-32767 (got {self.node_port})")
        if self.tls_mode == "provided" and self.provided is None:
            raise ValueError("GatewayArgs.provided is required when tls_mode is 'provided'")
        prefixes = [prefix for route in self.routes for prefix in (route.prefix, *route.extra_prefixes)]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"GatewayArgs.routes: prefixes must be unique ({prefixes})")
        if not self.users:
            raise ValueError("GatewayArgs.users must name at least one user")

    @property
    def base_url(self) -> str:
        return self.url(self.address, self.node_port)

    @property
    def pods(self) -> Pods:
        return Pods(self.namespace, TRAEFIK_LABELS, "traefik")

    @property
    def watched_namespaces(self) -> list[str]:
        """Where Traefik's CRD provider looks: its own namespace and every route's.

        Traefik v3 resolves an IngressRoute's Service only inside the watched namespaces ("namespace
        is not within watched namespaces", traefik/traefik v3.7 pkg/provider/kubernetes/crd/client.go
        GetService/isWatchedNamespace), so each backend namespace must be listed; the chart's
        ClusterRole (`rbac.namespaced: false`, traefik-helm-chart v41.3.0 templates/rbac/) grants
        the reads there.
        """
        return sorted({self.namespace, *(route.namespace for route in self.routes)})

    @staticmethod
    def url(address: str, port: int) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{port}"


def traefik_values(args: GatewayArgs) -> dict[str, Any]:
    """The Traefik chart values (checked against the chart's values.yaml and values.schema.json)."""
    values: dict[str, Any] = {
        "deployment": {"replicas": 1},
        "ingressClass": {"enabled": False},
        "providers": {
            "kubernetesCRD": {
                "enabled": True,
                "allowCrossNamespace": True,
                "namespaces": args.watched_namespaces,
            },
            "kubernetesIngress": {"enabled": False},
        },
        "ingressRoute": {"dashboard": {"enabled": False}},
        "ports": {
            "web": {"expose": {"default": False}},
            "websecure": {
                "port": CONTAINER_PORT,
                "exposedPort": 443,
                "nodePort": args.node_port,
                "http": {"tls": {"enabled": True}},
            },
        },
        "service": {"spec": {"type": "NodePort"}},
        "tlsStore": {"default": {"defaultCertificate": {"secretName": TLS_SECRET}}},
        "tlsOptions": {"default": {"minVersion": "VersionTLS12", "sniStrict": False}},
        "resources": args.resources.spec(),
        "podSecurityContext": {
            "runAsGroup": 65532,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }
    return _merge(values, args.extra_values)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


class Gateway(pulumi.ComponentResource):
    """Traefik release, TLS certificate, users, middlewares, routes and their network allows."""

    base_url: str
    ca_certificate: pulumi.Output[str]
    users: pulumi.Output[dict[str, str]]
    contract: Contract

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:platform:Gateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.base_url = args.base_url

        certificate, private_key, ca = self._certificate(name, args, child)
        self.ca_certificate = ca
        tls_secret = k8s.core.v1.Secret(
            f"{name}-tls",
            metadata={"name": TLS_SECRET, "namespace": args.namespace, "labels": labels("gateway", name)},
            type="kubernetes.io/tls",
            string_data={"tls.crt": certificate, "tls.key": private_key},
            opts=child,
        )

        passwords = {
            user: random.RandomPassword(f"{name}-user-{user}", length=24, special=False, opts=child)
            for user in args.users
        }
        htpasswd = pulumi.Output.all(*(passwords[user].bcrypt_hash for user in args.users)).apply(
            lambda hashes: (
                "\n".join(f"{user}:{digest}" for user, digest in zip(args.users, hashes, strict=True)) + "\n"
            )
        )
        users_secret = k8s.core.v1.Secret(
            f"{name}-users",
            metadata={"name": USERS_SECRET, "namespace": args.namespace, "labels": labels("gateway", name)},
            type="Opaque",
            string_data={"users": htpasswd},
            opts=child,
        )
        self.users = pulumi.Output.secret(
            pulumi.Output.all(*(passwords[user].result for user in args.users)).apply(
                lambda results: dict(zip(args.users, results, strict=True))
            )
        )

        # Helm release (its hooks and lifecycle kept); Traefik's CRDs are applied before it by
        # infra.charts, a ConfigGroup, from the same chart archive, and upgraded with it.
        release, _ = chart_release(
            name,
            chart=TRAEFIK,
            release="traefik",
            namespace=args.namespace,
            values=traefik_values(args),
            settings=args.release,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[tls_secret, users_secret]),
        )
        after_release = pulumi.ResourceOptions(parent=self, depends_on=[release])
        k8s.apiextensions.CustomResource(
            f"{name}-basic-auth",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata={
                "name": AUTH_MIDDLEWARE,
                "namespace": args.namespace,
                "labels": labels("gateway", name),
            },
            spec={"basicAuth": {"secret": USERS_SECRET, "realm": "naomi", "removeHeader": True}},
            opts=after_release,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-security-headers",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata={
                "name": "security-headers",
                "namespace": args.namespace,
                "labels": labels("gateway", name),
            },
            spec={
                "headers": {
                    "stsSeconds": 31536000,
                    "contentTypeNosniff": True,
                    "referrerPolicy": "same-origin",
                    "customFrameOptionsValue": "SAMEORIGIN",
                }
            },
            opts=after_release,
        )
        for route in args.routes:
            self._route(name, args, route, after_release)
        self.contract = gateway_contract(args)
        self.register_outputs({"baseUrl": self.base_url, "caCertificate": self.ca_certificate})

    def _certificate(
        self, name: str, args: GatewayArgs, child: pulumi.ResourceOptions
    ) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]]:
        if args.tls_mode == "provided":
            assert args.provided is not None
            certificate = pulumi.Output.secret(args.provided.certificate)
            return certificate, pulumi.Output.secret(args.provided.private_key), pulumi.Output.from_input("")
        try:
            ipaddress.ip_address(args.address)
            ip_addresses, dns_names = [args.address], []
        except ValueError:
            ip_addresses, dns_names = [], [args.address]
        ca_key = tls.PrivateKey(f"{name}-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=24 * 365 * 10,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            subject=tls.SelfSignedCertSubjectArgs(common_name="naomi gateway CA", organization=PART_OF),
            opts=child,
        )
        server_key = tls.PrivateKey(f"{name}-server", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-server",
            private_key_pem=server_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=args.address, organization=PART_OF),
            ip_addresses=ip_addresses,
            dns_names=dns_names,
            opts=child,
        )
        server = tls.LocallySignedCert(
            f"{name}-server",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=24 * 365 * 2,
            early_renewal_hours=24 * 30,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        chain = pulumi.Output.concat(server.cert_pem, ca.cert_pem)
        return chain, pulumi.Output.secret(server_key.private_key_pem), ca.cert_pem

    def _route(self, name: str, args: GatewayArgs, route: Route, opts: pulumi.ResourceOptions) -> None:
        middlewares = [{"name": "security-headers", "namespace": args.namespace}]
        if route.auth:
            middlewares.append({"name": AUTH_MIDDLEWARE, "namespace": args.namespace})
        if route.strip_prefix:
            k8s.apiextensions.CustomResource(
                f"{name}-{route.name}-strip",
                api_version="traefik.io/v1alpha1",
                kind="Middleware",
                metadata={
                    "name": f"{route.name}-strip",
                    "namespace": args.namespace,
                    "labels": labels("gateway", name),
                },
                spec={"stripPrefix": {"prefixes": [route.prefix]}},
                opts=opts,
            )
            middlewares.append({"name": f"{route.name}-strip", "namespace": args.namespace})
        k8s.apiextensions.CustomResource(
            f"{name}-{route.name}",
            api_version="traefik.io/v1alpha1",
            kind="IngressRoute",
            metadata={"name": route.name, "namespace": args.namespace, "labels": labels("gateway", name)},
            spec={
                "entryPoints": ["websecure"],
                "routes": [
                    {
                        "kind": "Rule",
                        "match": " || ".join(
                            # The prefix itself or below it: Traefik's PathPrefix is a plain
                            # string prefix (`/mlflowfoo` would match `/mlflow`).
                            f"Path(`{p}`) || PathPrefix(`{p}/`)"
                            for p in (route.prefix, *route.extra_prefixes)
                        ),
                        "middlewares": middlewares,
                        "services": [
                            {
                                "name": route.service,
                                "namespace": route.namespace,
                                "port": route.port,
                                # Only where it differs from Traefik's default (http), so other
                                # routes render as before.
                                **({"scheme": route.scheme} if route.scheme != "http" else {}),
                            }
                        ],
                    }
                ],
                "tls": {},
            },
            opts=opts,
        )


def gateway_contract(args: GatewayArgs) -> Contract:
    """Users reach Traefik's websecure port; Traefik reaches every route's pods and the API server."""
    traefik = args.pods
    flows = [
        Flow(args.network.outside, traefik, tcp(CONTAINER_PORT), "users reach the gateway (NodePort)"),
        args.network.to_api_server(
            traefik,
            "the CRD provider watches IngressRoutes, Middlewares, Services, EndpointSlices and Secrets",
            "traefik/traefik v3.7 pkg/provider/kubernetes/crd",
        ),
        *(
            Flow(traefik, route.backend, tcp(route.pod_port), f"gateway route {route.prefix}")
            for route in args.routes
        ),
    ]
    return Contract(flows=tuple(flows))
