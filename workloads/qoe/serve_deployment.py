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

from workloads.qoe.registry import MODEL_NAME
from workloads.qoe.serving import ModelInfo, Predictor, create_app

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_predictor(model_uri: str) -> Predictor:
    """The registered forecaster behind `model_uri`, with its input shape and version."""
    import mlflow

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    version = model_uri  # runs:/... or a path: the URI is the version
    if model_uri.startswith("models:/"):
        name, _, alias = model_uri.removeprefix("models:/").partition("@")
        if alias:
            version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
        else:
            version = name.rsplit("/", 1)[-1]
    info = ModelInfo(
        name=MODEL_NAME, version=str(version), window=model.config.window, features=model.config.features
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
        sizes = [len(windows) for windows in requests]
        forecasts = self.predictor(np.concatenate(requests))
        return list(np.split(forecasts, np.cumsum(sizes)[:-1]))

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.forecast, self.predictor.info)


def deployment_options(args: dict[str, Any]) -> dict[str, Any]:
    """Ray Serve options from RayService args (shared by every naomi Serve app); unknown keys refused."""
    unknown = set(args) - {"model_uri", "num_replicas", "max_replicas", "num_cpus", "tracking_uri"}
    if unknown:
        raise ValueError(f"unknown serving args: {', '.join(sorted(unknown))}")
    actor: dict[str, Any] = {"num_cpus": float(args.get("num_cpus", 0.5))}
    if "tracking_uri" in args:
        actor["runtime_env"] = {"env_vars": {"MLFLOW_TRACKING_URI": str(args["tracking_uri"])}}
    # Per-request access logs cost ~1 ms of a 2-core box per request; errors are still logged.
    options: dict[str, Any] = {
        "ray_actor_options": actor,
        "logging_config": {"enable_access_log": False, "log_level": "WARNING"},
    }
    if "max_replicas" in args:
        options["autoscaling_config"] = {
            "min_replicas": int(args.get("num_replicas", 1)),
            "max_replicas": int(args["max_replicas"]),
            "target_ongoing_requests": 8,
        }
    else:
        options["num_replicas"] = int(args.get("num_replicas", 1))
    return options


def app_builder(args: dict[str, Any]) -> Any:
    """RayService / `serve run` entry point: `args` may set model_uri, num_replicas, max_replicas,
    num_cpus and tracking_uri (otherwise MLflow's environment variables apply)."""
    return QoeDeployment.options(**deployment_options(args)).bind(str(args.get("model_uri", DEFAULT_URI)))
