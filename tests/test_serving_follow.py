"""The generic model server against the real MLflow server (auth on, artifacts through its S3
proxy): on a bare cluster it starts without a model and says so (503), serves the first version
once it is promoted, and follows the alias to the next version without an error during the swap
(issue 15, defects 3 and 4); started as rendered (edge-lab's `qoe-edge`, CHECKS 19) it answers the
kubelet's probes without its model. The server fixture is the one `tests/test_mlflow_server.py`
starts."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")

import httpx
import numpy as np

from naomi.cluster.startup import command_line, environment, probe_request, rewrite_paths
from naomi.render.tree import Rendered
from tests.test_mlflow_server import Server, server  # noqa: F401  (the module's MLflow server)
from tests.test_startup import POD_IP, RenderedData, find
from tests.test_startup_workloads import entrypoint, probe_until, start_as_rendered, stop

MODEL = "follow-check"
ROWS = [[1.0, 2.0], [3.0, 5.0]]


@dataclass
class Following:
    url: str
    before: dict[str, Any]  # what the server answered before any model existed


class Linear:
    """y = a*x1 + b*x2 as an MLflow pyfunc model (no sklearn: its serializer imports every
    estimator, ~10 s per log on these machines)."""

    def __init__(self, coefficients: tuple[float, float]) -> None:
        self.coefficients = np.asarray(coefficients, dtype=np.float64)

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return np.asarray(model_input, dtype=np.float64) @ self.coefficients


def _register(coefficients: tuple[float, float]) -> str:
    """Log the linear model as the next version of MODEL; returns the version."""
    import mlflow
    from mlflow.models import infer_signature

    python_model = type("LinearModel", (Linear, mlflow.pyfunc.PythonModel), {})(coefficients)
    example = np.array([[1.0, 0.0], [0.0, 1.0]])
    mlflow.set_experiment("follow")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            registered_model_name=MODEL,
            signature=infer_signature(example, python_model.predict(None, example)),
            pip_requirements=["numpy"],
        )
    return str(info.registered_model_version)


def _promote(version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", version)


def _until(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"{what} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def following(server: Server) -> Iterator[Following]:  # noqa: F811
    import mlflow

    from workloads.common.model_server import following_app
    from workloads.common.serving import serve_locally

    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    }
    os.environ.update(
        MLFLOW_TRACKING_URI=server.url,
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=server.password,
    )
    mlflow.set_tracking_uri(server.url)
    app, follower = following_app(f"models:/{MODEL}@champion", poll_seconds=0.2)
    follower.start()
    http_server, port = serve_locally(app)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: httpx.get(f"{url}/ready").status_code == 200, 30, "ready (the registry has no model)")
        predict = httpx.post(f"{url}/predict", json={"inputs": ROWS})
        before = {
            "health": httpx.get(f"{url}/healthz").json(),
            "status": predict.status_code,
            "body": predict.json(),
            "retry": predict.headers.get("retry-after"),
        }
        yield Following(url=url, before=before)
    finally:
        follower.stop()
        http_server.should_exit = True
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_first_install_serves_503_until_a_model_is_promoted(following: Following) -> None:
    before = following.before
    assert before["health"]["status"] == "waiting"
    assert (before["status"], before["retry"]) == (503, "30")
    assert before["body"] == {
        "error": f"no model yet: registered model '{MODEL}' has no version with the alias 'champion' yet"
    }
    _promote(_register((2.0, -1.0)))
    answer = _until(
        lambda: (r := httpx.post(f"{following.url}/predict", json={"inputs": ROWS})).status_code == 200 and r,
        60,
        "version 1 answers after its promotion",
    ).json()
    assert answer["version"] == "1"
    np.testing.assert_allclose(answer["predictions"], [0.0, 1.0], atol=1e-6)


def test_promotion_reaches_the_next_request_without_an_error(following: Following) -> None:
    if httpx.post(f"{following.url}/predict", json={"inputs": ROWS}).status_code != 200:
        test_first_install_serves_503_until_a_model_is_promoted(following)
    version = _register((1.0, 1.0))
    answers: list[list[tuple[int, str]]] = [[], []]  # per client, in the order it was answered
    stop = threading.Event()

    def keep_asking(mine: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=following.url, timeout=10) as client:
            while not stop.is_set():
                response = client.post("/predict", json={"inputs": ROWS})
                mine.append((response.status_code, response.json().get("version", "")))

    clients = [threading.Thread(target=keep_asking, args=(mine,)) for mine in answers]
    for client in clients:
        client.start()
    try:
        _until(
            lambda: all(len(mine) > 5 for mine in answers), 30, "clients are answered before the promotion"
        )
        _promote(version)
        _until(
            lambda: all(mine[-1][1] == version for mine in answers),
            60,
            f"version {version} answers both clients",
        )
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    for mine in answers:
        assert {status for status, _ in mine} == {200}, [a for a in mine if a[0] != 200][:5]
        versions = [v for _, v in mine]
        swap = versions.index(version)
        assert set(versions[:swap]) == {"1"} and set(versions[swap:]) == {version}  # one swap, never back
    latest = httpx.post(f"{following.url}/predict", json={"inputs": ROWS}).json()
    np.testing.assert_allclose(latest["predictions"], [3.0, 8.0], atol=1e-6)
    metrics = httpx.get(f"{following.url}/metrics").text
    assert f'naomi_serving_model_version{{model="{MODEL}"}} {float(version)}' in metrics


RENDERED_URI = "models:/qoe/1"  # edge-lab's qoe-edge pins version 1
ABSENT_URI = "models:/qoe/900001"


@pytest.fixture
def model_server_as_rendered(
    renders: dict[str, Rendered],
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[bytes], Path]]:
    objects = renders["edge-lab"].kubernetes
    pod = find(objects, "Deployment", "naomi-serving", "qoe-edge")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    data = RenderedData(objects, "naomi-serving")
    env = environment(container, secret=data.secret, config_map=data.config_map)
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.naomi-platform.svc.cluster.local")
    env["MLFLOW_TRACKING_URI"] = server.url
    # The serving login (scoped: READ on the registered models), its password as the users Job set it.
    assert env["MLFLOW_TRACKING_USERNAME"] == "serving"
    assert env["MLFLOW_TRACKING_PASSWORD"].startswith("<secret")  # generated: the test server's
    env["MLFLOW_TRACKING_PASSWORD"] = server.logins["serving"]
    mounts = {m["mountPath"]: str(tmp_path / m["name"]) for m in container["volumeMounts"]}
    for folder in mounts.values():
        Path(folder).mkdir()
    env = dict(zip(env, rewrite_paths(list(env.values()), mounts), strict=True))
    argv = rewrite_paths(command_line(container, env, entrypoint("model-server")), mounts)
    # The session's MLflow is shared: other tests may have registered qoe versions already. The
    # rendered pin (models:/qoe/1) becomes a version nobody registers, of the same model (the
    # serving login may read it: the users Job granted READ on it).
    assert argv.count(RENDERED_URI) == 1, argv
    argv = [ABSENT_URI if word == RENDERED_URI else word for word in argv]
    process = start_as_rendered(argv, env, tmp_path)
    try:
        yield container, process, tmp_path / "server.log"
    finally:
        stop(process)


@pytest.mark.slow
def test_model_server_as_rendered_is_ready_without_its_model(model_server_as_rendered: Any) -> None:
    """Its model (`models:/qoe/1`) does not exist yet: alive, ready (Pulumi's rollout completes),
    and /predict says what it waits for."""
    container, process, log = model_server_as_rendered
    assert container["args"] == ["--model-uri", RENDERED_URI]
    ready = probe_until(container, "readinessProbe", process, log)
    assert ready.json()["ready"] is True
    alive = probe_until(container, "livenessProbe", process, log)
    assert alive.json()["status"] == "waiting"
    port = probe_request(container["readinessProbe"], container, POD_IP)
    assert port is not None
    answer = httpx.post(f"http://127.0.0.1:{port.port}/predict", json={"inputs": [[1.0]]})
    assert answer.status_code == 503
    version = ABSENT_URI.rsplit("/", 1)[1]
    assert answer.json() == {"error": f"no model yet: registered model 'qoe' has no version {version} yet"}
