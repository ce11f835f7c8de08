"""Benchmark P5: QoE serving latency — the handler alone, then HTTP on loopback at 50 req/s.

Handler: parse + validate + forecast of one window, p50/p99 over 2,000 calls on 2 threads.
HTTP: the FastAPI app under uvicorn on 127.0.0.1, 500 requests paced at 50 req/s (bounded,
loopback only), p50/p99 and the error count. Targets (CHECKS.md P5): handler p99 <= 5 ms, HTTP
p99 <= 20 ms at 50 req/s with 0 errors. Model: the reference-shaped LSTM (untrained weights; latency
does not depend on them). `--smoke`: a few calls and requests (the test suite runs it; no timing
is asserted).

    .venv/bin/python benchmarks/qoe_serving.py
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from workloads.common.loadtest import paced
from workloads.common.serving import serve_locally
from workloads.qoe.model import ModelConfig, QoeForecaster
from workloads.qoe.serving import ModelInfo, Predictor, create_app, parse_windows

INFO = ModelInfo(name="qoe", version="bench", window=10, features=4)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few requests, to check the benchmark runs")
    options = parser.parse_args(argv)
    calls, requests = (50, 20) if options.smoke else (2000, 500)
    model = QoeForecaster(ModelConfig(hidden=64, layers=2), target_index=0)
    model.eval()
    predictor = Predictor(model, INFO)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    body = json.dumps({"windows": np.random.default_rng(1).random((1, 10, 4)).tolist()}).encode()
    for _ in range(50):
        predictor(parse_windows(body, INFO))

    def one() -> float:
        started = time.perf_counter()
        predictor(parse_windows(body, INFO))
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        handler = list(pool.map(lambda _: one(), range(calls)))
    print(
        f"handler, 1 window, 2 threads: p50 {percentile(handler, 50):.2f} ms, p99 {percentile(handler, 99):.2f} ms"
        "  target p99 <= 5 ms"
    )

    server, port = serve_locally(create_app(predictor, INFO))
    load = paced(f"http://127.0.0.1:{port}/predict", body, rate=50, count=requests, warmup=20)
    server.should_exit = True
    torch.set_num_threads(threads)
    print(
        f"HTTP on loopback, {requests} requests at 50 req/s: {load.summary()}  target p99 <= 20 ms, 0 errors"
    )


if __name__ == "__main__":
    main()
