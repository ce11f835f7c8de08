"""QoE on Ray Serve: the FastAPI app of `serving.py` as a Ray Serve ingress with request batching.

Each replica follows `models:/qoe@champion` (or the URI it is given) in MLflow: it starts with
the version the alias names, or without a model on a bare cluster (`/predict` says 503 until one
is promoted), and swaps to a newly promoted version within one poll (`poll_seconds`) without a
restart or a dropped request (`workloads.common.follow`). `/predict` goes through `@serve.batch`:
concurrent requests are stacked into one forward pass per model version. Metrics go through
`ray.util.metrics`, so Ray's metrics port (what the PodMonitor scrapes) exports them as
`ray_naomi_serving_*`; feedback ids are signed with a key every replica shares. The cluster runs it
from a RayService (`serving.models[]` with runtime `ray-serve`) as
`import_path: workloads.qoe.serve_deployment:app_builder` with `args: {model_uri: ...}`;
`naomi run qoe` runs the same builder on local Ray. MLflow's location and credentials come from
the environment (`MLFLOW_TRACKING_URI`, `MLFLOW_TRACKING_USERNAME`/`PASSWORD`), as the platform
injects them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from workloads.common.follow import DEFAULT_POLL_SECONDS, Follower
from workloads.common.ray_serve import Request, deployment_options, poll_seconds, replica_key, run_batch
from workloads.common.serving import ModelSlot, RayMetrics, Served, create_app
from workloads.qoe.registry import MODEL_NAME
from workloads.qoe.serving import ModelInfo, Predictor, served

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_predictor(model_uri: str, version: str) -> Predictor:
    """The registered forecaster at `model_uri` (one version), with its input shape."""
    import mlflow

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    info = ModelInfo(
        name=MODEL_NAME, version=version, window=model.config.window, features=model.config.features
    )
    return Predictor(model, info)


@serve.deployment(name="qoe", max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class QoeDeployment:
    """One replica: the current model version, a batching queue, the strict HTTP surface."""

    def __init__(
        self, model_uri: str = DEFAULT_URI, poll: float = DEFAULT_POLL_SECONDS, key: bytes | None = None
    ) -> None:
        self.metrics = RayMetrics(MODEL_NAME)
        self.slot = ModelSlot()
        self.key = key
        self.follower = Follower(
            model_uri, self._load, self.slot, poll_seconds=poll, on_swap=self.metrics.version
        )
        self.follower.poll_once()  # a replica of an existing model becomes ready with it loaded
        self.follower.start(poll_now=False)

    def _load(self, model_uri: str, version: str) -> Served:
        predictor = load_predictor(model_uri, version)
        return served(predictor.info, lambda rows: self.forecast((predictor, rows)))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def forecast(self, requests: list[Request]) -> list[np.ndarray]:
        return run_batch(requests)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(name=MODEL_NAME, slot=self.slot, metrics=self.metrics, key=self.key)

    def __del__(self) -> None:
        follower = getattr(self, "follower", None)  # absent if __init__ failed
        if follower is not None:
            follower.stop()


def app_builder(args: dict[str, Any]) -> Any:
    """RayService / `serve run` entry point: `args` may set model_uri, num_replicas, max_replicas,
    num_cpus, tracking_uri and poll_seconds (otherwise MLflow's environment variables apply)."""
    options = deployment_options(args)
    return QoeDeployment.options(**options).bind(
        str(args.get("model_uri", DEFAULT_URI)), poll_seconds(args), replica_key()
    )
