"""The digits pipeline end to end on embedded defaults (`naomi run mnist`): the cluster's code.

seed -> load -> split -> Ray Data preprocessing + Ray Train (>= 2 workers) -> evaluate -> gated
registration (MLflow) -> Ray Serve upload endpoint -> smoke test (JSON, PNG upload, bad input).
State under one folder: objects/, mlflow/, checkpoints/.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workloads.common.progress import OnEpoch
from workloads.common.registry import Stopwatch, use_local_mlflow
from workloads.common.storage import LocalStore
from workloads.mnist.data import SEED_KEY, load, seed
from workloads.mnist.registry import DEFAULT_THRESHOLD, MODEL_NAME, register
from workloads.mnist.train import TrainConfig, evaluate, split, train


@dataclass(frozen=True)
class MnistOptions:
    state: Path
    epochs: int = 8
    workers: int = 2
    threshold: float = DEFAULT_THRESHOLD


@dataclass
class MnistSummary:
    images: int = 0
    split: dict[str, int] = field(default_factory=dict)
    accuracy: float = 0.0
    version: str = ""
    alias: str = ""
    reason: str = ""
    endpoint: str = ""
    sample: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tracking_uri: str = ""
    workers: int = 0


def run(
    options: MnistOptions, step: Callable[[str], None] = lambda _: None, on_epoch: OnEpoch | None = None
) -> MnistSummary:
    """Run every step; `step(name)` is called as each starts and `on_epoch(epoch, epochs,
    metrics)` as each training epoch ends (progress display)."""
    import ray

    summary = MnistSummary(workers=options.workers)
    state = options.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    store = LocalStore(state / "objects")
    lap = Stopwatch(summary.timings).lap

    step("seed")
    seed(store)
    digits = load(store, SEED_KEY)
    train_set, test_set = split(digits)
    summary.images, summary.split = len(digits), {"train": len(train_set), "test": len(test_set)}
    lap("seed")

    step("train")
    if not ray.is_initialized():
        ray.init(
            num_cpus=options.workers + 1,  # one more than the trainers: Ray Data and Serve
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    config = TrainConfig(epochs=options.epochs, workers=options.workers)
    result = train(train_set, config, str(state / "checkpoints"), on_epoch=on_epoch)
    lap("train")

    step("evaluate")
    summary.accuracy = evaluate(result.model, test_set)
    lap("evaluate")

    step("register")
    summary.tracking_uri = use_local_mlflow(state / "mlflow", "mnist")
    example = (test_set.images[:2].astype("float32") / 255.0)[:, None, :, :]
    registered = register(
        result.model, summary.accuracy, asdict(config), result.history, example, threshold=options.threshold
    )
    summary.version, summary.alias, summary.reason = (
        registered.version,
        registered.alias,
        registered.decision.reason,
    )
    lap("register")

    step("serve")
    import httpx

    from workloads.common.ray_serve import serve_on_loopback
    from workloads.mnist.serve_deployment import app_builder

    application = app_builder(
        {"model_uri": f"models:/{MODEL_NAME}/{registered.version}", "tracking_uri": summary.tracking_uri}
    )
    with serve_on_loopback(application, MODEL_NAME) as base:
        summary.endpoint = f"{base}/predict"
        lap("serve")
        step("smoke")
        as_json = httpx.post(summary.endpoint, json={"images": test_set.images[:5].tolist()}, timeout=30)
        as_json.raise_for_status()
        upload = httpx.post(
            summary.endpoint,
            content=_png(test_set.images[0]),
            headers={"content-type": "image/png"},
            timeout=30,
        )
        upload.raise_for_status()
        bad = httpx.post(summary.endpoint, content=b"not an image", timeout=30)
        summary.sample = {
            "truth": [int(v) for v in test_set.labels[:5]],
            "predictions": as_json.json()["predictions"],
            "png_prediction": upload.json()["predictions"][0],
            "png_truth": int(test_set.labels[0]),
            "rejected_status": bad.status_code,
        }
    lap("smoke")
    return summary


def _png(image: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).resize((64, 64), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def table_rows(summary: MnistSummary) -> list[tuple[str, str]]:
    sample = summary.sample
    return [
        (
            "data",
            f"{summary.images} digit images (embedded), train {summary.split['train']}, test {summary.split['test']}",
        ),
        ("training", f"CNN, Ray Data preprocessing, Ray Train with {summary.workers} workers"),
        ("test accuracy", f"{summary.accuracy:.4f}"),
        ("registry", f"mnist version {summary.version} -> @{summary.alias} ({summary.reason})"),
        ("endpoint", f"{summary.endpoint} (Ray Serve; stopped after the smoke test)"),
        ("sample", f"predicted {sample['predictions']} for true {sample['truth']}"),
        ("PNG upload", f"predicted {sample['png_prediction']} (true {sample['png_truth']})"),
        ("bad request", f"HTTP {sample['rejected_status']}"),
        ("timings", ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items())),
        ("MLflow UI", f"mlflow ui --backend-store-uri {summary.tracking_uri} --host 127.0.0.1"),
    ]
