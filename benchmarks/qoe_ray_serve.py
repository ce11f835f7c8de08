"""Benchmark P5 through Ray Serve: the QoE deployment (FastAPI ingress + @serve.batch) on local Ray.

Logs the reference-shaped LSTM to a throw-away MLflow (sqlite), deploys `app_builder` on 127.0.0.1,
then sends 500 requests paced at 50 req/s (bounded, loopback only) and 400 requests from 8
concurrent clients with persistent connections (batching at work). Prints p50/p99 and errors; target (CHECKS.md P5): HTTP p99
<= 20 ms at 50 req/s with 0 errors. Ray listens on every interface, so run it isolated:
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python benchmarks/qoe_ray_serve.py'
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import ray

from workloads.common.loadtest import concurrent, paced
from workloads.common.ray_serve import serve_on_loopback
from workloads.qoe.model import ModelConfig, QoeForecaster
from workloads.qoe.serve_deployment import app_builder


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as folder:
        tracking = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        mlflow.set_tracking_uri(tracking)
        experiment = mlflow.create_experiment("bench", artifact_location=(Path(folder) / "a").as_uri())
        model = QoeForecaster(ModelConfig(hidden=64, layers=2), target_index=0).eval()
        with mlflow.start_run(experiment_id=experiment):
            logged = mlflow.pytorch.log_model(
                model, name="model", serialization_format="pickle", pip_requirements=["torch"]
            )
        started = time.perf_counter()
        application = app_builder({"model_uri": logged.model_uri, "tracking_uri": tracking, "num_cpus": 1})
        with serve_on_loopback(application, "qoe") as base:
            print(f"Serve started and deployment ready in {time.perf_counter() - started:.1f} s")
            body = json.dumps({"windows": np.random.default_rng(1).random((1, 10, 4)).tolist()}).encode()
            url = f"{base}/predict"
            print(
                f"Ray Serve HTTP, 500 requests at 50 req/s: {paced(url, body, rate=50, count=500).summary()}"
            )
            print("  target (CHECKS.md P5): p99 <= 20 ms, 0 errors")
            load = concurrent(url, body, clients=8, per_client=50)
            print(f"Ray Serve HTTP, 400 requests from 8 clients: {load.summary()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
