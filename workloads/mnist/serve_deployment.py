"""Digits on Ray Serve: the upload endpoint of `serving.py` with request batching.

RayService entry point `workloads.mnist.serve_deployment:app_builder` (args: model_uri,
num_replicas, max_replicas, num_cpus, tracking_uri), as for QoE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from workloads.common.model_server import model_version
from workloads.common.ray_serve import deployment_options, run_batch
from workloads.mnist.registry import MODEL_NAME
from workloads.mnist.serving import Classifier, DigitsInfo, create_app

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_classifier(model_uri: str, height: int = 8, width: int = 8) -> tuple[Classifier, DigitsInfo]:
    import mlflow

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    info = DigitsInfo(name=MODEL_NAME, version=model_version(model_uri), height=height, width=width)
    return Classifier(model), info


@serve.deployment(name="mnist", max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class DigitsDeployment:
    def __init__(self, model_uri: str = DEFAULT_URI) -> None:
        self.classifier, self.info = load_classifier(model_uri)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def classify(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        return run_batch(self.classifier, requests)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.classify, self.info)


def app_builder(args: dict[str, Any]) -> Any:
    options = deployment_options(args)
    return DigitsDeployment.options(**options).bind(str(args.get("model_uri", DEFAULT_URI)))
