"""Ray Data preprocessing and Ray Train (TorchTrainer, >= 2 CPU workers) for the digits CNN.

`split` is a deterministic stratified train/test split; `preprocess` turns raw uint8 images into
normalised float tensors with Ray Data (`map_batches`, distributed over the cluster); each
training worker reads its shard of the dataset (`get_dataset_shard`). `evaluate` measures
hold-out accuracy, which the promotion gate compares with a threshold and the champion.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workloads.common.progress import OnEpoch, epoch_feed, report_epoch
from workloads.mnist.data import Digits
from workloads.mnist.model import DigitsCNN


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 3e-3
    workers: int = 2
    channels: int = 16
    seed: int = 7


@dataclass(frozen=True)
class TrainResult:
    model: DigitsCNN
    history: list[dict[str, float]]
    seconds: float


def split(digits: Digits, test_fraction: float = 0.2, seed: int = 7) -> tuple[Digits, Digits]:
    """Stratified: the same fraction of every label goes to the hold-out, reproducibly."""
    rng = np.random.default_rng(seed)
    test_index: list[int] = []
    for label in np.unique(digits.labels):
        members = np.flatnonzero(digits.labels == label)
        test_index.extend(rng.permutation(members)[: max(1, round(len(members) * test_fraction))].tolist())
    mask = np.zeros(len(digits), dtype=bool)
    mask[test_index] = True
    return (
        Digits(images=digits.images[~mask], labels=digits.labels[~mask]),
        Digits(images=digits.images[mask], labels=digits.labels[mask]),
    )


def normalise(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uint8 (n, H, W) -> float32 (n, 1, H, W) in 0..1; labels as int64."""
    return {
        "image": (batch["image"].astype(np.float32) / 255.0)[:, None, :, :],
        "label": batch["label"].astype(np.int64),
    }


def preprocess(digits: Digits) -> Any:
    """A Ray Dataset of normalised images (Ray Data runs `normalise` on the cluster's CPUs)."""
    import ray.data

    items = ray.data.from_items(
        [
            {"image": image, "label": int(label)}
            for image, label in zip(digits.images, digits.labels, strict=True)
        ]
    )
    # Materialised before training: Ray Train's workers then hold every CPU they asked for
    # without starving Ray Data's tasks (on a 2-CPU machine they would wait for each other).
    return items.map_batches(normalise, batch_format="numpy", batch_size=256).materialize()


def _loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    torch.manual_seed(int(config["seed"]))
    torch.set_num_threads(1)
    model = ray.train.torch.prepare_model(DigitsCNN(int(config["channels"])))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["learning_rate"]))
    shard = ray.train.get_dataset_shard("train")
    rank = ray.train.get_context().get_world_rank()
    for epoch in range(int(config["epochs"])):
        model.train()
        total, correct, count, started = 0.0, 0, 0, time.perf_counter()
        for batch in shard.iter_torch_batches(batch_size=int(config["batch_size"]), dtypes=None):
            logits = model(batch["image"])
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(batch["label"])
            correct += int((logits.argmax(1) == batch["label"]).sum())
            count += len(batch["label"])
        metrics = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "train_accuracy": correct / max(count, 1),
            "samples_per_second": count / max(time.perf_counter() - started, 1e-9),
        }
        if rank == 0:
            core = model.module if hasattr(model, "module") else model
            with tempfile.TemporaryDirectory() as folder:
                torch.save(core.state_dict(), Path(folder) / "model.pt")
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
            report_epoch(config.get("progress"), epoch, int(config["epochs"]), metrics)
        else:
            ray.train.report(metrics)


def train(
    train_set: Digits,
    config: TrainConfig,
    storage_path: str,
    storage_filesystem: Any = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Fit the CNN with `config.workers` Ray Train workers; the last epoch's weights are kept.

    `on_epoch(epoch, epochs, metrics)` is called in this process as each epoch finishes.
    """
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    with epoch_feed(on_epoch) as feed:
        trainer = TorchTrainer(
            _loop,
            train_loop_config={
                "seed": config.seed,
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "channels": config.channels,
                "progress": feed,
            },
            datasets={"train": preprocess(train_set)},
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=False, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(
                name="mnist",
                storage_path=storage_path,
                storage_filesystem=storage_filesystem,
                checkpoint_config=CheckpointConfig(num_to_keep=2),
            ),
        )
        started = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise RuntimeError("training reported no checkpoint")
    model = DigitsCNN(config.channels)
    with result.checkpoint.as_directory() as folder:
        model.load_state_dict(torch.load(Path(folder) / "model.pt", weights_only=True))
    model.eval()
    history = [
        {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        for metrics in result.metrics_dataframe.to_dict("records")
    ]
    return TrainResult(model=model, history=history, seconds=seconds)


def evaluate(model: DigitsCNN, test_set: Digits) -> float:
    """Hold-out accuracy."""
    batch = normalise({"image": test_set.images, "label": test_set.labels})
    with torch.no_grad():
        predicted = model(torch.from_numpy(batch["image"])).argmax(1).numpy()
    return float(np.mean(predicted == test_set.labels))
