"""Benchmark P6: QoE training throughput with Ray Train, batch 128, 2 CPU workers (prints figures).

Run inside a loopback-only network namespace (Ray listens on every interface):
    unshare -n bash -c 'ip link set lo up; exec .venv/bin/python benchmarks/qoe_training.py'
Target (CHECKS.md P6): >= 1,500 samples/s at batch 128 on 2 cores. `--smoke`: one short epoch on
little data (the test suite runs it; no timing is asserted).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence

import ray

from workloads.qoe.data import load_reports, synthetic_reports
from workloads.qoe.features import FeatureSpec, build
from workloads.qoe.train import TrainConfig, evaluate, train


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="one short epoch, to check the benchmark runs")
    options = parser.parse_args(argv)
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    spec = FeatureSpec()
    splits = build(load_reports(synthetic_reports(steps=300 if options.smoke else 3000)), spec)
    config = TrainConfig(epochs=1 if options.smoke else 5, batch_size=128, workers=2)
    with tempfile.TemporaryDirectory() as storage:
        started = time.perf_counter()
        result = train(splits, spec, config, storage)
        wall = time.perf_counter() - started
    scores = evaluate(result.model, splits.test)
    seen = len(splits.train) * config.epochs
    print(
        f"train windows {len(splits.train)}, epochs {config.epochs}, batch {config.batch_size}, workers {config.workers}"
    )
    print(
        f"training loop throughput: {result.samples_per_second:.0f} samples/s (sum over workers)  target >= 1500"
    )
    print(f"end to end incl. Ray Train start-up: {seen / wall:.0f} samples/s over {wall:.1f} s")
    print(
        f"test MAE {scores.model_mae:.2f} vs last value {scores.last_value_mae:.2f}, linear {scores.linear_mae:.2f}"
    )
    if started_ray:
        ray.shutdown()


if __name__ == "__main__":
    main()
