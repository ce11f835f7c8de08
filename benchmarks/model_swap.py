"""Benchmark: a model swap under load — the generic model server following `qoe-bench@champion`.

Registers two versions of the reference-shaped QoE LSTM in a throw-away MLflow (sqlite), serves the
alias with the following app (`workloads.common.model_server.following_app`, poll every 0.5 s)
on 127.0.0.1, keeps 4 persistent clients asking, promotes version 2 and prints: requests answered
while the swap was under way (promotion -> every client answered by version 2), errors (target 0),
the swap time (promotion -> first answer from version 2, which includes up to one poll interval)
and the load time of the new version. `--smoke`: fewer requests (the test suite runs it; no timing
is asserted).

    .venv/bin/python benchmarks/model_swap.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

POLL_SECONDS = 0.5


def main(argv: Sequence[str] | None = None) -> None:
    import httpx
    import mlflow
    import torch
    from mlflow.models import infer_signature

    from workloads.common.follow import Follower
    from workloads.common.model_server import load, served
    from workloads.common.serving import ModelSlot, Served, create_app, serve_locally
    from workloads.qoe.model import ModelConfig, QoeForecaster

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run, to check the benchmark runs")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        experiment = mlflow.create_experiment("bench", artifact_location=(Path(folder) / "a").as_uri())
        example = np.random.default_rng(1).random((2, 10, 4)).astype(np.float32)
        for seed in (1, 2):
            torch.manual_seed(seed)
            model = QoeForecaster(ModelConfig(hidden=64, layers=2), target_index=0).eval()
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
        client = mlflow.MlflowClient()
        client.set_registered_model_alias("qoe-bench", "champion", "1")
        loads: list[float] = []

        def timed_load(uri: str, version: str) -> Served:  # the server's loader, timed
            began = time.perf_counter()
            loaded = served(load(uri, version))
            loads.append(time.perf_counter() - began)
            return loaded

        slot = ModelSlot()
        follower = Follower("models:/qoe-bench@champion", timed_load, slot, poll_seconds=POLL_SECONDS)
        app = create_app(name="qoe-bench", slot=slot)
        follower.start()
        server, port = serve_locally(app)
        url = f"http://127.0.0.1:{port}/predict"
        body = json.dumps({"inputs": example[:1].tolist()}).encode()
        answers: list[list[tuple[float, int, str]]] = [[] for _ in range(4)]
        stop = threading.Event()

        def ask(mine: list[tuple[float, int, str]]) -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    response = http.post(url, content=body, headers={"content-type": "application/json"})
                    version = response.json().get("version", "") if response.status_code == 200 else ""
                    mine.append((time.perf_counter(), response.status_code, version))

        deadline = time.monotonic() + 60
        while slot.served is None and time.monotonic() < deadline:
            time.sleep(0.05)
        clients = [threading.Thread(target=ask, args=(mine,)) for mine in answers]
        for thread in clients:
            thread.start()
        time.sleep(0.5 if options.smoke else 3.0)  # load before the promotion (a benchmark, not a test)
        promoted = time.perf_counter()
        client.set_registered_model_alias("qoe-bench", "champion", "2")
        while time.monotonic() < deadline and not all(m and m[-1][2] == "2" for m in answers):
            time.sleep(0.01)
        done = time.perf_counter()
        time.sleep(0.2 if options.smoke else 1.0)
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        follower.stop()
        server.should_exit = True
    flat = [a for mine in answers for a in mine]
    during = [a for a in flat if promoted <= a[0] <= done]
    first_new = min((a[0] for a in flat if a[2] == "2"), default=float("nan"))
    errors = sum(1 for a in flat if a[1] != 200)
    print(f"requests answered: {len(flat)} in all, {len(during)} during the swap; errors {errors}  target 0")
    print(
        f"swap time (promotion -> first answer from version 2): {first_new - promoted:.2f} s "
        f"(polling every {POLL_SECONDS} s); every client on version 2 after {done - promoted:.2f} s"
    )
    print(f"load of the new version beside the old one: {loads[-1]:.2f} s" if loads else "no load timed")


if __name__ == "__main__":
    main()
