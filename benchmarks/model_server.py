"""Benchmark: the generic MLflow model server (serving runtime `deployment`) on 2 cores.

Registers the reference-shaped QoE LSTM in a throw-away MLflow (sqlite), loads it the way the
Deployment does (`models:/qoe-bench@champion`), serves it with uvicorn on 127.0.0.1 and measures
500 requests paced at 50 req/s, then 800 requests from 8 concurrent clients (throughput). Bounded,
loopback only. Prints p50/p99 and errors.

    .venv/bin/python benchmarks/model_server.py
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import numpy as np
from mlflow.models import infer_signature

from workloads.common.model_server import build_app, load
from workloads.common.serving import serve_locally
from workloads.qoe.model import ModelConfig, QoeForecaster


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def main() -> None:
    import torch

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
        headers = {"content-type": "application/json"}
        latencies, failures = [], 0
        with httpx.Client(timeout=10) as client:
            for _ in range(30):
                client.post(url, content=body, headers=headers)
            start = time.perf_counter()
            for index in range(500):
                delay = start + index / 50 - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent = time.perf_counter()
                failures += client.post(url, content=body, headers=headers).status_code != 200
                latencies.append(time.perf_counter() - sent)
        print(
            f"500 requests at 50 req/s: p50 {percentile(latencies, 50):.2f} ms, "
            f"p99 {percentile(latencies, 99):.2f} ms, errors {failures}"
        )

        def worker(count: int) -> tuple[list[float], int]:
            times, errors = [], 0
            with httpx.Client(timeout=10) as client:
                for _ in range(count):
                    sent = time.perf_counter()
                    errors += client.post(url, content=body, headers=headers).status_code != 200
                    times.append(time.perf_counter() - sent)
            return times, errors

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(worker, [100] * 8))
        wall = time.perf_counter() - began
        concurrent = [t for times, _ in results for t in times]
        print(
            f"800 requests from 8 clients: {len(concurrent) / wall:.0f} req/s, p50 {percentile(concurrent, 50):.2f} ms, "
            f"p99 {percentile(concurrent, 99):.2f} ms, errors {sum(e for _, e in results)}"
        )
        server.should_exit = True


if __name__ == "__main__":
    main()
