"""Start-up from the render (CHECKS 19): our containers started as rendered come up and answer the
kubelet's probes and Prometheus' scrapes with the Host header those send (`<pod IP>:<port>`).

The kubelet's behaviour lives in `naomi.cluster.startup` (environment, `$(VAR)` expansion, probe
requests, each citing its kubernetes source); these tests run the real program from this
environment with the rendered command line and environment. Only what points at cluster Services
is substituted (the Postgres URI by a sqlite file, the object store by a moto S3 server on
loopback), and mounted files are written to a scratch folder.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from naomi.cluster.startup import (
    Image,
    StartupError,
    command_line,
    environment,
    expand,
    probe_request,
    probe_succeeded,
    rewrite_paths,
)
from naomi.render.tree import Rendered

POD_IP = "10.1.23.45"  # an address of edge-lab's pod network (naomi:cluster.podCidr 10.1.0.0/16)


# --- the kubelet's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "x"),
        ("$$(A)", "$(A)"),  # escaped
        ("$$$(A)", "$x"),
        ("$(MISSING)", "$(MISSING)"),  # unknown references stay as written
        ("a$(A", "a$(A"),  # incomplete reference
        ("$x $", "$x $"),  # a lone operator is kept
        ("$(B)", "$(A)"),  # no recursive expansion
        ("--url=http://$(A):$(A)/", "--url=http://x:x/"),
    ],
)
def test_expansion_follows_the_kubelet(text: str, expected: str) -> None:
    assert expand(text, {"A": "x", "B": "$(A)"}) == expected


def test_environment_is_built_in_order_and_refuses_missing_secret_keys() -> None:
    secrets = {("s", "k"): "secret-value"}
    container = {
        "env": [
            {"name": "LATER", "value": "$(FIRST)-$(SECRET)"},  # defined before FIRST: not expanded
            {"name": "FIRST", "value": "one"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "BOTH", "value": "$(FIRST)-$(SECRET)"},
        ]
    }
    env = environment(container, secret=lambda n, k: secrets.get((n, k)), config_map=lambda n, k: None)
    assert env == {
        "LATER": "$(FIRST)-$(SECRET)",
        "FIRST": "one",
        "SECRET": "secret-value",
        "BOTH": "one-secret-value",
    }
    missing = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}]}
    with pytest.raises(StartupError, match="env X: secret 's' key 'nope' does not exist"):
        environment(missing, secret=lambda n, k: secrets.get((n, k)), config_map=lambda n, k: None)


def test_command_line_uses_the_image_entrypoint_only_without_command() -> None:
    image = Image(entrypoint=("python", "-m", "server"), cmd=("--port", "1"))
    assert command_line({"args": ["--port", "$(P)"]}, {"P": "8"}, image) == [
        "python",
        "-m",
        "server",
        "--port",
        "8",
    ]
    assert command_line({}, {}, image) == ["python", "-m", "server", "--port", "1"]
    assert command_line({"command": ["sh", "-c", "echo $(P)"]}, {"P": "8"}, image) == ["sh", "-c", "echo 8"]


def test_probe_request_carries_the_pod_ip_as_host() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 5000}]}
    request = probe_request({"httpGet": {"path": "/mlflow/health", "port": "http"}}, container, POD_IP)
    assert request is not None
    assert (request.port, request.path, request.host_header) == (5000, "/mlflow/health", f"{POD_IP}:5000")
    assert request.headers == {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    custom = probe_request(
        {"httpGet": {"path": "/", "port": 8080, "httpHeaders": [{"name": "host", "value": "localhost"}]}},
        container,
        POD_IP,
    )
    assert custom is not None and custom.host_header == "localhost"


# --- the render as the kubelet reads it -------------------------------------------------------


def find(objects: list[dict[str, Any]], kind: str, namespace: str, name: str) -> dict[str, Any]:
    for obj in objects:
        metadata = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and metadata.get("namespace") == namespace
            and metadata.get("name") == name
        ):
            return obj
    raise AssertionError(f"{kind} {namespace}/{name} not in the render")


class RenderedData:
    """Secrets and ConfigMaps of one namespace of a render, as the kubelet resolves them."""

    def __init__(self, objects: list[dict[str, Any]], namespace: str) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self.config_maps: dict[str, dict[str, str]] = {}
        for obj in objects:
            if (obj.get("metadata") or {}).get("namespace") != namespace:
                continue
            name = obj["metadata"]["name"]
            if obj["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
                self.secrets[name] = {**data, **{k: str(v) for k, v in (obj.get("stringData") or {}).items()}}
            elif obj["kind"] == "ConfigMap":
                self.config_maps[name] = {k: str(v) for k, v in (obj.get("data") or {}).items()}

    @staticmethod
    def _resolver(store: Mapping[str, Mapping[str, str]]) -> Any:
        def resolve(name: str, key: str) -> str | None:
            if name not in store:
                return None
            return "\0".join(store[name]) if key == "*" else store[name].get(key)

        return resolve

    @property
    def secret(self) -> Any:
        return self._resolver(self.secrets)

    @property
    def config_map(self) -> Any:
        return self._resolver(self.config_maps)


def _free_port(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.25)
    pytest.fail(f"nothing listens on {port} after {seconds} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def mlflow_as_rendered(
    renders: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    pytest.importorskip("mlflow")
    moto_server = pytest.importorskip("moto.server")
    from minio import Minio

    objects = renders["edge-lab"].kubernetes
    deployment = find(objects, "Deployment", "naomi-platform", "mlflow")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "mlflow")
    sidecar = next(c for c in pod["containers"] if c["name"] == "metrics")  # Prometheus' endpoint
    data = RenderedData(objects, "naomi-platform")
    workdir = tmp_path_factory.mktemp("mlflow-as-rendered")

    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    s3_host, s3_port = moto.get_host_and_port()
    endpoint = f"http://{s3_host}:{s3_port}"
    Minio(f"{s3_host}:{s3_port}", "any", "any", secure=False, region="us-east-1").make_bucket("mlflow")

    def local(value: str) -> str:
        # Cluster Services become loopback equivalents; nothing else in the value changes.
        value = re.sub(r"http://object-store\.[a-z-]+\.svc\.cluster\.local:9000", endpoint, value)
        return re.sub(
            r"postgresql(?:\+\w+)?://[^\s]+/(\w+)", lambda m: f"sqlite:///{workdir / m.group(1)}.db", value
        )

    env = {
        k: local(v) for k, v in environment(container, secret=data.secret, config_map=data.config_map).items()
    }
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        folder = workdir / mount["name"]
        folder.mkdir(exist_ok=True)
        mounts[mount["mountPath"]] = str(folder)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "secret" in volume:
            for key, value in data.secrets[volume["secret"]["secretName"]].items():
                (folder / key).write_text(local(value))
    env = dict(zip(env, rewrite_paths(list(env.values()), mounts), strict=True))
    argv = rewrite_paths(command_line(container, env), mounts)
    assert argv[:2] == ["mlflow", "server"], argv
    argv[0] = str(Path(sys.executable).parent / "mlflow")
    argv = ["127.0.0.1" if word == "0.0.0.0" else word for word in argv]  # loopback only (tests)
    port = int(argv[argv.index("--port") + 1])
    if not _free_port(port):
        pytest.skip(f"port {port} is taken on this machine (the rendered port is kept as is)")
    log = workdir / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            argv, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    # The metrics sidecar as rendered, sharing the server's tmp volume (its metrics files).
    sidecar_env = environment(sidecar, secret=data.secret, config_map=data.config_map)
    sidecar_mounts = {}
    for mount in sidecar.get("volumeMounts") or []:
        folder = workdir / mount["name"]
        folder.mkdir(exist_ok=True)
        sidecar_mounts[mount["mountPath"]] = str(folder)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "configMap" in volume:
            for key, value in data.config_maps[volume["configMap"]["name"]].items():
                (folder / key).write_text(value)
    sidecar_env = dict(
        zip(sidecar_env, rewrite_paths(list(sidecar_env.values()), sidecar_mounts), strict=True)
    )
    sidecar_argv = rewrite_paths(command_line(sidecar, sidecar_env), sidecar_mounts)
    assert sidecar_argv[0] == "python", sidecar_argv
    sidecar_argv = [sys.executable, *sidecar_argv[1:], "--host", "127.0.0.1"]  # loopback only (tests)
    sidecar_log = workdir / "metrics.log"
    with sidecar_log.open("w") as output:
        metrics = subprocess.Popen(
            sidecar_argv,
            env=sidecar_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process, log)
        yield deployment, container, data, sidecar
    finally:
        for started in (metrics, process):  # each with what it spawned (uvicorn workers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pid, signal.SIGTERM)
            try:
                started.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(started.pid, signal.SIGKILL)
                started.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pid, signal.SIGKILL)
        moto.stop()


def _send(request: Any, *, auth: tuple[str, str] | None = None, attempts: int = 60) -> Any:
    import httpx

    for _ in range(attempts):  # probes repeat until the server is up (failureThreshold x period)
        headers = {**request.headers, "Host": request.host_header}  # what the server sees
        response = httpx.get(request.url("127.0.0.1"), headers=headers, auth=auth, timeout=5)
        if response.status_code != 503:
            return response
        time.sleep(1)
    return response


@pytest.mark.slow
@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_mlflow_answers_the_kubelets_probes(mlflow_as_rendered: Any, probe: str) -> None:
    _, container, _, _ = mlflow_as_rendered
    request = probe_request(container[probe], container, POD_IP)
    assert request is not None
    response = _send(request)
    assert probe_succeeded(response.status_code), (
        f"{probe} GET {request.path} with Host {request.host_header} -> {response.status_code} {response.text[:200]}"
    )


@pytest.mark.slow
def test_prometheus_can_scrape_mlflow(renders: dict[str, Rendered], mlflow_as_rendered: Any) -> None:
    """The ServiceMonitor's endpoint as Prometheus scrapes it: the pod's address as Host, basic auth."""
    _, _, data, sidecar = mlflow_as_rendered
    monitor = find(renders["edge-lab"].kubernetes, "ServiceMonitor", "naomi-platform", "mlflow")
    (endpoint,) = monitor["spec"]["endpoints"]
    service = find(renders["edge-lab"].kubernetes, "Service", "naomi-platform", "mlflow")
    target = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])["targetPort"]
    scrape = probe_request({"httpGet": {"path": endpoint["path"], "port": target}}, sidecar, POD_IP)
    assert scrape is not None
    auth = endpoint["basicAuth"]
    login = (
        data.secrets[auth["username"]["name"]][auth["username"]["key"]],
        data.secrets[auth["password"]["name"]][auth["password"]["key"]],
    )
    response = _send(scrape, auth=login)
    assert response.status_code == 200, (
        f"scrape with Host {scrape.host_header} -> {response.status_code} {response.text[:200]}"
    )
    assert "mlflow_exporter_info" in response.text  # the server's own metrics, read by the sidecar
    assert _send(scrape).status_code == 401  # the metrics login is required


def test_mlflow_server_image_runs_the_clients_mlflow() -> None:
    """images/mlflow pins the MLflow every client locks (a 3.15 server refused its own probes)."""
    import tomllib

    from infra.versions import MLFLOW_VERSION
    from naomi.paths import PROJECT_DIR

    locked = {
        p["name"]: p["version"] for p in tomllib.loads((PROJECT_DIR / "uv.lock").read_text())["package"]
    }
    pins = (PROJECT_DIR / "images" / "requirements" / "mlflow.txt").read_text()
    assert f"mlflow[auth]=={MLFLOW_VERSION}\n" in pins
    assert locked["mlflow"] == MLFLOW_VERSION
