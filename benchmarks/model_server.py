"""Benchmark: the generic MLflow model server (serving runtime `deployment`) on 2 cores.

Registers the reference-shaped QoE LSTM in a throw-away MLflow (sqlite), loads it the way the
Deployment does (`models:/qoe-bench@champion`), serves it with uvicorn on 127.0.0.1 and measures
500 requests paced at 50 req/s, then 800 requests from 8 concurrent clients (throughput). Bounded,
loopback only. Prints p50/p99 and errors. `--smoke`: a few requests (the test suite runs it; no
timing is asserted).

    .venv/bin/python benchmarks/model_server.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import infer_signature

from workloads.common.loadtest import concurrent, paced
from workloads.common.model_server import build_app, load
from workloads.common.serving import serve_locally
from workloads.qoe.model import ModelConfig, QoeForecaster


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few requests, to check the benchmark runs")
    options = parser.parse_args(argv)
    count, per_client = (20, 3) if options.smoke else (500, 100)

    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        experiment = mlflow.create_experiment("bench", artifact_location=(Path(folder) / "a").as_uri())
        model = QoeForecaster(ModelConfig(hidden=64, layers=2), target_index=0).eval()
        example = np.random.default_rng(1).random((2, 10, 4)).astype(np.float32)
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pytorch.log_model(
                model,
                name="model",
                registered_model_name="qoe-bench",
                signature=infer_signature(example, output),
                serialization_format="pickle",
                pip_requirements=["torch"],
            )
        mlflow.MlflowClient().set_registered_model_alias("qoe-bench", "champion", "1")
        started = time.perf_counter()
        server, port = serve_locally(build_app(load("models:/qoe-bench@champion")))
        print(f"model loaded and serving in {time.perf_counter() - started:.1f} s")
        url = f"http://127.0.0.1:{port}/predict"
        body = json.dumps({"inputs": example[:1].tolist()}).encode()
        print(f"{count} requests at 50 req/s: {paced(url, body, rate=50, count=count).summary()}")
        burst = concurrent(url, body, clients=8, per_client=per_client)
        print(f"{8 * per_client} requests from 8 clients: {burst.summary()}")
        server.should_exit = True


if __name__ == "__main__":
    main()
