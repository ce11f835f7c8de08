"""Benchmark P5 through Ray Serve: the QoE deployment (FastAPI ingress + @serve.batch) on local Ray.

Registers the reference-shaped LSTM in a throw-away MLflow (sqlite) as `qoe@champion`, deploys
`app_builder` on 127.0.0.1 exactly as the RayService does (the replica follows the alias), then
sends 500 requests paced at 50 req/s on one persistent connection (bounded, loopback only) and
1,600 requests from 8 concurrent clients with persistent connections (batching at work). Prints
p50/p99, throughput and errors. Targets (CHECKS.md P5): p99 <= 20 ms at 50 req/s with 0 errors,
>= 250 req/s with 8 persistent clients, on 2 cores. Ray's processes get the RayService pods'
Serve environment (`workloads.common.serve_env.SERVE_PROCESS_ENV`: Ray's HAProxy ingress with
direct ingress to the replicas) unless a Ray is already running (the test suite's, started the
same way). Ray listens on every interface, so run it isolated:
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python benchmarks/qoe_ray_serve.py'
`--smoke` sends a handful of requests (the test suite runs it; no timing is asserted).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few requests, to check the benchmark runs")
    options = parser.parse_args(argv)
    import mlflow
    import ray

    from workloads.common.loadtest import concurrent, paced
    from workloads.common.ray_serve import init_ray_like_serving_pods, serve_on_loopback
    from workloads.qoe.model import ModelConfig, QoeForecaster
    from workloads.qoe.serve_deployment import app_builder

    started_ray = not ray.is_initialized()
    if started_ray:
        init_ray_like_serving_pods(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as folder:
        tracking = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        mlflow.set_tracking_uri(tracking)
        experiment = mlflow.create_experiment("bench", artifact_location=(Path(folder) / "a").as_uri())
        model = QoeForecaster(ModelConfig(hidden=64, layers=2), target_index=0).eval()
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pytorch.log_model(
                model,
                name="model",
                registered_model_name="qoe",
                serialization_format="pickle",
                pip_requirements=["torch"],
            )
        mlflow.MlflowClient().set_registered_model_alias("qoe", "champion", "1")
        started = time.perf_counter()
        application = app_builder(
            {"model_uri": "models:/qoe@champion", "tracking_uri": tracking, "num_cpus": 1}
        )
        with serve_on_loopback(application, "qoe") as base:
            print(f"Serve started and deployment ready in {time.perf_counter() - started:.1f} s")
            body = json.dumps({"windows": np.random.default_rng(1).random((1, 10, 4)).tolist()}).encode()
            url = f"{base}/predict"
            count, per_client = (20, 5) if options.smoke else (500, 200)
            paced_load = paced(url, body, rate=50, count=count, warmup=5 if options.smoke else 30)
            print(f"Ray Serve HTTP, {count} requests at 50 req/s: {paced_load.summary()}")
            print("  target (CHECKS.md P5): p99 <= 20 ms, 0 errors")
            load = concurrent(url, body, clients=8, per_client=per_client)
            print(f"Ray Serve HTTP, {8 * per_client} requests from 8 persistent clients: {load.summary()}")
            print("  target (CHECKS.md P5): >= 250 req/s, 0 errors")
    if started_ray:
        ray.shutdown()


if __name__ == "__main__":
    main()
