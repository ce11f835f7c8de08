"""MLflow's Prometheus metrics for a metrics-only login: a sidecar of the MLflow pod.

MLflow's own `/metrics` sits behind the basic-auth app, and mlflow 3.17.2 refuses every
authenticated non-admin on a route that has no permission validator (`MLFLOW_BASIC_AUTH_FAIL_CLOSED`,
default true; `/metrics` has none: `mlflow/server/auth/__init__.py` _before_request), so scraping
it would take the admin login. The server's workers write their metrics as files into
`PROMETHEUS_MULTIPROC_DIR` (prometheus_flask_exporter's GunicornInternalPrometheusMetrics, which
`mlflow server --expose-prometheus DIR` activates); this process reads the same files from the
shared volume (prometheus_client MultiProcessCollector) and serves them at `GET /metrics` to
`METRICS_USERNAME`/`METRICS_PASSWORD` only (HTTP basic auth). `GET /healthz` answers probes.

    PROMETHEUS_MULTIPROC_DIR=/mlflow-tmp/prometheus METRICS_USERNAME=metrics METRICS_PASSWORD=... \\
      python metrics_server.py --port 9102
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import os
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


def authorized(header: str | None, username: str, password: str) -> bool:
    """Whether an `Authorization` header carries exactly this basic-auth login."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        given_user, _, given_password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return user_ok and password_ok


def make_handler(directory: str, username: str, password: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif path != "/metrics":
                self._send(404, b"not found\n", "text/plain")
            elif not authorized(self.headers.get("Authorization"), username, password):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mlflow-metrics"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif not os.path.isdir(directory):  # MLflow creates it when it starts
                self._send(503, b"mlflow has not started yet\n", "text/plain")
            else:
                registry = CollectorRegistry()
                MultiProcessCollector(registry, path=directory)
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes every 30 s: stay quiet
            return

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    username, password = os.environ.get("METRICS_USERNAME", ""), os.environ.get("METRICS_PASSWORD", "")
    if not directory or not username or not password:
        raise SystemExit(
            "metrics-server: PROMETHEUS_MULTIPROC_DIR, METRICS_USERNAME and METRICS_PASSWORD are required"
        )
    server = ThreadingHTTPServer((args.host, args.port), make_handler(directory, username, password))
    print(f"metrics-server: {directory} on {args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
