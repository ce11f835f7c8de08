"""The QoE pipeline end to end on embedded defaults: the same steps the cluster runs.

ingest -> features -> train (Ray Train) -> evaluate -> register/promote (MLflow) -> serve ->
smoke predictions. State lives under one folder: the object store (`objects/`), MLflow's sqlite
database and artifacts (`mlflow/`), Ray Train checkpoints (`checkpoints/`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workloads import catalogue
from workloads.common.progress import OnEpoch
from workloads.common.registry import Stopwatch, use_local_mlflow
from workloads.common.storage import LocalStore
from workloads.qoe.data import CellReports, ingest, load_file, synthetic_reports
from workloads.qoe.features import FeatureSpec, Windows, build
from workloads.qoe.registry import MODEL_NAME, register
from workloads.qoe.train import Evaluation, TrainConfig, evaluate, train

DATASET = catalogue.pipeline("qoe").dataset


@dataclass(frozen=True)
class RunOptions:
    state: Path
    data: Path | None = None  # a VIAVI cell.json.gz; None: synthetic data
    epochs: int = 6
    batch_size: int = 128
    workers: int = 2
    steps: int = 2000  # synthetic time steps (10 ms each)


@dataclass
class Summary:
    rows: int = 0
    active_cells: int = 0
    windows: dict[str, int] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    version: str = ""
    alias: str = ""
    reason: str = ""
    endpoint: str = ""
    sample: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tracking_uri: str = ""
    samples_per_second: float = 0.0


def run(
    options: RunOptions, step: Callable[[str], None] = lambda _: None, on_epoch: OnEpoch | None = None
) -> Summary:
    """Run every step; `step(name)` is called as each starts and `on_epoch(epoch, epochs,
    metrics)` as each training epoch ends (progress display)."""
    import ray

    summary = Summary()
    state = options.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    store = LocalStore(state / "objects")
    lap = Stopwatch(summary.timings).lap

    step("ingest")
    if options.data is not None:
        # Validated in full (and every read error named) before anything is stored.
        reports = load_file(options.data)
        store.put(DATASET, reports.to_parquet())
    else:
        reports = ingest(synthetic_reports(steps=options.steps), store, DATASET)
    summary.rows = len(reports)
    lap("ingest")

    step("features")
    spec = FeatureSpec()
    splits = build(CellReports.from_parquet(store.get(DATASET)), spec)
    for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        store.put(f"features/qoe/{name}.parquet", part.to_parquet())
        summary.windows[name] = len(part)
    summary.active_cells = len(splits.active_cells)
    lap("features")

    step("train")
    if not ray.is_initialized():
        ray.init(
            num_cpus=max(options.workers, 2),
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    config = TrainConfig(epochs=options.epochs, batch_size=options.batch_size, workers=options.workers)
    result = train(splits, spec, config, str(state / "checkpoints"), on_epoch=on_epoch)
    summary.samples_per_second = result.samples_per_second
    lap("train")

    step("evaluate")
    test = Windows.from_parquet(store.get("features/qoe/test.parquet"))
    summary.evaluation = evaluate(result.model, test)
    lap("evaluate")

    step("register")
    summary.tracking_uri = use_local_mlflow(state / "mlflow", "qoe")
    registered = register(result.model, summary.evaluation, spec, config, result.history, test.x[:2])
    summary.version, summary.alias, summary.reason = (
        registered.version,
        registered.alias,
        registered.decision.reason,
    )
    lap("register")

    step("serve")
    from workloads.common.ray_serve import serve_on_loopback
    from workloads.qoe.serve_deployment import app_builder

    model_uri = f"models:/{MODEL_NAME}@{registered.alias}"
    application = app_builder({"model_uri": model_uri, "tracking_uri": summary.tracking_uri})
    with serve_on_loopback(application, MODEL_NAME) as base:
        summary.endpoint = f"{base}/predict"
        lap("serve")

        step("smoke")
        import httpx

        sample = test.x[:3]
        response = httpx.post(summary.endpoint, json={"windows": sample.tolist()}, timeout=30)
        response.raise_for_status()
        summary.sample = {
            "cells": [str(c) for c in test.cell[:3]],
            "truth": [float(v) for v in test.y[:3]],
            "predictions": response.json()["predictions"],
        }
        bad = httpx.post(
            summary.endpoint,
            content=b'{"windows": [[["x"]]]}',
            timeout=30,
            headers={"content-type": "application/json"},
        )
        summary.sample["rejected_status"] = bad.status_code
    lap("smoke")
    return summary


def table_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary as (label, text) rows for the CLI's table."""
    scores = summary.evaluation
    assert scores is not None
    sample = summary.sample
    return [
        ("data", f"{summary.rows} cell reports, {summary.active_cells} active cells"),
        ("windows", ", ".join(f"{k} {v}" for k, v in summary.windows.items())),
        ("training", f"{summary.samples_per_second:.0f} samples/s (Ray Train)"),
        (
            "test MAE",
            f"model {scores.model_mae:.4g} | last value {scores.last_value_mae:.4g} | linear {scores.linear_mae:.4g}",
        ),
        ("registry", f"qoe version {summary.version} -> @{summary.alias} ({summary.reason})"),
        ("endpoint", f"{summary.endpoint} (Ray Serve; stopped after the smoke test)"),
        (
            "sample",
            "; ".join(
                f"{c}: {p:.4g} (true {t:.4g})"
                for c, p, t in zip(sample["cells"], sample["predictions"], sample["truth"], strict=True)
            ),
        ),
        ("bad request", f"HTTP {sample['rejected_status']}"),
        ("timings", ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items())),
        ("MLflow UI", f"mlflow ui --backend-store-uri {summary.tracking_uri} --host 127.0.0.1"),
    ]


def summary_json(summary: Summary) -> str:
    data = {k: v for k, v in summary.__dict__.items() if k != "evaluation"}
    data["evaluation"] = summary.evaluation.as_metrics() if summary.evaluation else None
    return json.dumps(data, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))
