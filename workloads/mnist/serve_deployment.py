"""Digits on Ray Serve: the upload endpoint of `serving.py` with request batching.

RayService entry point `workloads.mnist.serve_deployment:app_builder` (args: model_uri,
num_replicas, max_replicas, num_cpus, tracking_uri), as for QoE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from workloads.mnist.registry import MODEL_NAME
from workloads.mnist.serving import Classifier, DigitsInfo, create_app

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_classifier(model_uri: str, height: int = 8, width: int = 8) -> tuple[Classifier, DigitsInfo]:
    import mlflow

    from workloads.common.model_server import resolve_version

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    version = resolve_version(model_uri)[1] if model_uri.startswith("models:/") else model_uri
    return Classifier(model), DigitsInfo(name=MODEL_NAME, version=version, height=height, width=width)


@serve.deployment(name="mnist", max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class DigitsDeployment:
    def __init__(self, model_uri: str = DEFAULT_URI) -> None:
        self.classifier, self.info = load_classifier(model_uri)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def classify(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        sizes = [len(images) for images in requests]
        labels = self.classifier(np.concatenate(requests))
        return list(np.split(labels, np.cumsum(sizes)[:-1]))

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.classify, self.info)


def app_builder(args: dict[str, Any]) -> Any:
    from workloads.qoe.serve_deployment import deployment_options

    options = deployment_options(args)
    return DigitsDeployment.options(**options).bind(str(args.get("model_uri", DEFAULT_URI)))
