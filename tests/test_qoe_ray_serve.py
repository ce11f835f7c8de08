"""QoE on Ray Serve: the deployment loads a logged model, batches concurrent requests, rejects bad ones."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.serve")


@pytest.fixture(scope="module")
def endpoint(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    import mlflow
    import torch

    from workloads.common.ray_serve import serve_on_loopback
    from workloads.qoe.model import ModelConfig, QoeForecaster
    from workloads.qoe.serve_deployment import app_builder

    folder = tmp_path_factory.mktemp("mlflow")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    experiment = mlflow.create_experiment("serve", artifact_location=(folder / "artifacts").as_uri())
    torch.manual_seed(3)
    model = QoeForecaster(ModelConfig(hidden=8, layers=1), target_index=0)
    model.eval()
    with mlflow.start_run(experiment_id=experiment):
        mlflow.pytorch.log_model(
            model,
            name="model",
            registered_model_name="qoe",
            serialization_format="pickle",
            pip_requirements=["torch"],
        )
    mlflow.MlflowClient().set_registered_model_alias("qoe", "champion", "1")
    application = app_builder(
        {"model_uri": "models:/qoe@champion", "tracking_uri": tracking, "num_cpus": 0.25}
    )
    with serve_on_loopback(application, "qoe") as base:
        yield base, model


def test_builder_rejects_unknown_args() -> None:
    from workloads.qoe.serve_deployment import app_builder

    with pytest.raises(ValueError, match="unknown serving args: replicas"):
        app_builder({"replicas": 2})


def test_serves_the_champion_and_batches_concurrent_requests(endpoint: tuple[str, Any]) -> None:
    import httpx
    import torch

    url, model = endpoint
    health = httpx.get(f"{url}/healthz", timeout=30).json()
    assert health["version"] == "1" and health["input"] == {"window": 10, "features": 4}
    windows = np.random.default_rng(5).random((24, 10, 4)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(windows)).numpy()

    def ask(index: int) -> list[float]:
        chunk = windows[index * 3 : index * 3 + 3].tolist()
        response = httpx.post(f"{url}/predict", json={"windows": chunk}, timeout=30)
        assert response.status_code == 200, response.text
        return list(response.json()["predictions"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(8)))
    # Each caller gets its own rows back, whatever batch they were stacked into.
    np.testing.assert_allclose(np.concatenate(answers), expected, rtol=1e-4, atol=1e-3)
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'naomi_serving_request_seconds_count{model="qoe"}' in metrics


def test_bad_requests_get_4xx_and_the_service_stays_up(endpoint: tuple[str, Any]) -> None:
    import httpx

    url, _ = endpoint
    bad = [
        b"{not json",
        b'{"windows": [[["1"]]]}',
        b'{"windows": [[[NaN, 1, 2, 3]]]}',
        b'{"windows": []}',
    ]
    for body in bad:
        response = httpx.post(
            f"{url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert 400 <= response.status_code < 500 and response.json()["error"], body
    ok = httpx.post(f"{url}/predict", json={"windows": np.zeros((1, 10, 4)).tolist()}, timeout=30)
    assert ok.status_code == 200
