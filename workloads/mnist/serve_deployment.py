"""Digits on Ray Serve: the upload endpoint of `serving.py` with request batching.

RayService entry point `workloads.mnist.serve_deployment:app_builder` (args: model_uri,
num_replicas, max_replicas, num_cpus, tracking_uri, poll_seconds). Replicas follow the registry,
start without a model on a bare cluster and export metrics through `ray.util.metrics`, as for QoE
(`workloads.qoe.serve_deployment`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from workloads.common.follow import DEFAULT_POLL_SECONDS, Follower
from workloads.common.ray_serve import Request, deployment_options, poll_seconds, replica_key, run_batch
from workloads.common.serving import ModelSlot, RayMetrics, Served, create_app
from workloads.mnist.registry import MODEL_NAME
from workloads.mnist.serving import CLASS_BUCKETS, Classifier, DigitsInfo, misclassified, served

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"


def load_classifier(
    model_uri: str, version: str, height: int = 8, width: int = 8
) -> tuple[Classifier, DigitsInfo]:
    import mlflow

    model = mlflow.pytorch.load_model(model_uri)
    model.eval()
    return Classifier(model), DigitsInfo(name=MODEL_NAME, version=version, height=height, width=width)


@serve.deployment(name="mnist", max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class DigitsDeployment:
    def __init__(
        self, model_uri: str = DEFAULT_URI, poll: float = DEFAULT_POLL_SECONDS, key: bytes | None = None
    ) -> None:
        self.metrics = RayMetrics(MODEL_NAME, value_buckets=CLASS_BUCKETS)
        self.slot = ModelSlot()
        self.key = key
        self.follower = Follower(
            model_uri, self._load, self.slot, poll_seconds=poll, on_swap=self.metrics.version
        )
        self.follower.poll_once()
        self.follower.start(poll_now=False)

    def _load(self, model_uri: str, version: str) -> Served:
        classifier, info = load_classifier(model_uri, version)
        return served(info, lambda rows: self.classify((classifier, rows)))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def classify(self, requests: list[Request]) -> list[np.ndarray]:
        return run_batch(requests)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(
            name=MODEL_NAME, slot=self.slot, metrics=self.metrics, error=misclassified, key=self.key
        )

    def __del__(self) -> None:
        follower = getattr(self, "follower", None)  # absent if __init__ failed
        if follower is not None:
            follower.stop()


def app_builder(args: dict[str, Any]) -> Any:
    options = deployment_options(args)
    return DigitsDeployment.options(**options).bind(
        str(args.get("model_uri", DEFAULT_URI)), poll_seconds(args), replica_key()
    )
