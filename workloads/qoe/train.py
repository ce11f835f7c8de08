"""Training with Ray Train (TorchTrainer on CPU workers) and evaluation against naive baselines.

`train` runs the same loop on a laptop (local Ray) and on the cluster (a RayJob from Flyte):
data-parallel workers, per-epoch validation loss reported to Ray Train, the best checkpoint kept.
`evaluate` scores the model on the time-ordered hold-out of active cells next to the two naive
forecasts (last value, linear extrapolation of the last step).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workloads.common.progress import OnEpoch, epoch_feed, report_epoch
from workloads.qoe.features import FeatureSpec, Splits, Windows
from workloads.qoe.model import ModelConfig, QoeForecaster


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    workers: int = 2
    seed: int = 7
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass(frozen=True)
class TrainResult:
    model: QoeForecaster
    history: list[dict[str, float]]
    samples_per_second: float
    seconds: float


def _loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop: data-parallel SGD, report validation loss and a checkpoint per epoch."""
    import ray.train
    import ray.train.torch

    torch.manual_seed(int(config["seed"]))
    torch.set_num_threads(1)
    model = QoeForecaster(ModelConfig(**config["model"]), int(config["target_index"]))
    model.load_state_dict(config["initial_state"])
    model = ray.train.torch.prepare_model(model)
    core = model.module if hasattr(model, "module") else model
    train_x, train_y = torch.from_numpy(config["train_x"]), torch.from_numpy(config["train_y"])
    valid_x, valid_y = torch.from_numpy(config["valid_x"]), torch.from_numpy(config["valid_y"])
    dataset = torch.utils.data.TensorDataset(train_x, train_y)
    loader = ray.train.torch.prepare_data_loader(
        torch.utils.data.DataLoader(dataset, batch_size=int(config["batch_size"]), shuffle=True)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["learning_rate"]))
    rank = ray.train.get_context().get_world_rank()
    for epoch in range(int(config["epochs"])):
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        model.train()
        total, count, started = 0.0, 0, time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            loss = core.loss(x, y) if model is core else _ddp_loss(model, core, x, y)
            loss.backward()
            optimizer.step()
            total += float(loss) * len(y)
            count += len(y)
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            valid_loss = float(core.loss(valid_x, valid_y))
        metrics = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "valid_loss": valid_loss,
            "samples_per_second": count / max(seconds, 1e-9),
        }
        if rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(core.state_dict(), Path(folder) / "model.pt")
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
            report_epoch(config.get("progress"), epoch, int(config["epochs"]), metrics)
        else:
            ray.train.report(metrics)


def _ddp_loss(model: Any, core: QoeForecaster, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss through the DDP wrapper, so gradients are all-reduced across workers."""
    target = (y - x[:, -1, core.target_index]) / core.delta_std
    prediction = (model(x) - x[:, -1, core.target_index]) / core.delta_std
    return torch.nn.functional.mse_loss(prediction, target)


def train(
    splits: Splits,
    spec: FeatureSpec,
    config: TrainConfig,
    storage_path: str,
    storage_filesystem: Any = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Fit on `splits.train`, early-select on `splits.validation` (Ray Train, `config.workers` CPUs).

    Checkpoints go to `storage_path` (a folder, or `bucket/prefix` on `storage_filesystem`, a
    pyarrow S3 filesystem on the cluster). `on_epoch(epoch, epochs, metrics)` is called in this
    process as each epoch finishes (a progress display).
    """
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    target_index = spec.features.index(spec.target)
    model_config = ModelConfig(
        **{**asdict(config.model), "features": len(spec.features), "window": spec.window}
    )
    model = QoeForecaster(model_config, target_index)
    model.fit_scaling(splits.train.x, splits.train.y)
    with epoch_feed(on_epoch) as feed:
        trainer = TorchTrainer(
            _loop,
            train_loop_config={
                "seed": config.seed,
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "model": model_config.as_dict(),
                "target_index": target_index,
                "initial_state": model.state_dict(),
                "train_x": splits.train.x,
                "train_y": splits.train.y,
                "valid_x": splits.validation.x,
                "valid_y": splits.validation.y,
                "progress": feed,
            },
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=False, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(
                name="qoe",
                storage_path=storage_path,
                storage_filesystem=storage_filesystem,
                # Every epoch's checkpoint is kept (a few hundred KB each): its metrics are the history.
                checkpoint_config=CheckpointConfig(
                    checkpoint_score_attribute="valid_loss", checkpoint_score_order="min"
                ),
            ),
        )
        started = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - started
    reported = sorted(result.best_checkpoints, key=lambda pair: pair[1]["epoch"])
    if not reported:
        raise RuntimeError("training reported no checkpoint")
    history = [
        {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))} for _, metrics in reported
    ]
    best, _ = min(reported, key=lambda pair: pair[1]["valid_loss"])
    with best.as_directory() as folder:
        model.load_state_dict(torch.load(Path(folder) / "model.pt", weights_only=True))
    rate = float(np.mean([h["samples_per_second"] for h in history])) * config.workers if history else 0.0
    model.eval()
    return TrainResult(model=model, history=history, samples_per_second=rate, seconds=seconds)


@dataclass(frozen=True)
class Evaluation:
    model_mae: float
    last_value_mae: float
    linear_mae: float
    model_rmse: float
    windows: int

    @property
    def beats_baselines(self) -> bool:
        return self.model_mae < self.last_value_mae and self.model_mae < self.linear_mae

    def as_metrics(self) -> dict[str, float]:
        return {
            "test_mae": self.model_mae,
            "test_rmse": self.model_rmse,
            "baseline_last_mae": self.last_value_mae,
            "baseline_linear_mae": self.linear_mae,
            "test_windows": float(self.windows),
        }


def predict(model: QoeForecaster, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    with torch.no_grad():
        parts = [model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def evaluate(model: QoeForecaster, test: Windows) -> Evaluation:
    forecast = predict(model, test.x)
    error = forecast - test.y
    return Evaluation(
        model_mae=float(np.mean(np.abs(error))),
        last_value_mae=float(np.mean(np.abs(test.last - test.y))),
        linear_mae=float(np.mean(np.abs(test.last + test.slope - test.y))),
        model_rmse=float(np.sqrt(np.mean(error**2))),
        windows=len(test),
    )
