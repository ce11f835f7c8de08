"""QoE on Ray Serve: the FastAPI app of `serving.py` as a Ray Serve ingress with request batching.

Each replica loads `models:/qoe@champion` (or the URI it is given) from MLflow once, builds the
same strict FastAPI app the local server uses, and answers `/predict` through `@serve.batch`:
concurrent requests are stacked into one forward pass. The cluster runs it from a RayService
(`serving.models[]` with runtime `ray-serve`) as `import_path: workloads.qoe.serve_deployment:app_builder`
with `args: {model_uri: ...}`; `naomi run qoe` runs the same builder on local Ray.
MLflow's location and credentials come from the environment (`MLFLOW_TRACKING_URI`,
`MLFLOW_TRACKING_USERNAME`/`PASSWORD`), as the platform injects them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from workloads.common.model_server import model_version
from workloads.common.ray_serve import deployment_options, run_batch
from workloads.qoe.registry import MODEL_NAME
from workloads.qoe.serving import ModelInfo, Predictor, create_app

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_predictor(model_uri: str) -> Predictor:
    """The registered forecaster behind `model_uri`, with its input shape and version."""
    import mlflow

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    info = ModelInfo(
        name=MODEL_NAME,
        version=model_version(model_uri),
        window=model.config.window,
        features=model.config.features,
    )
    return Predictor(model, info)


@serve.deployment(name="qoe", max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class QoeDeployment:
    """One replica: the model in memory, a batching queue, the strict HTTP surface."""

    def __init__(self, model_uri: str = DEFAULT_URI) -> None:
        self.predictor = load_predictor(model_uri)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def forecast(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        return run_batch(self.predictor, requests)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.forecast, self.predictor.info)


def app_builder(args: dict[str, Any]) -> Any:
    """RayService / `serve run` entry point: `args` may set model_uri, num_replicas, max_replicas,
    num_cpus and tracking_uri (otherwise MLflow's environment variables apply)."""
    return QoeDeployment.options(**deployment_options(args)).bind(str(args.get("model_uri", DEFAULT_URI)))
