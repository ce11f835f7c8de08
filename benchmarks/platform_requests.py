"""Benchmark P1/P2: what the platform requests, over every pod that will run (prints figures).

Pods come from the cluster model: ours, the charts' (sidecars, init containers) and the
operators' (KubeRay heads and a RayService's workers, prometheus-operator's Prometheus and
Alertmanager with their config reloaders). P1 (CHECKS.md): the edge profile without Ray pool
workers and jobs, with one served model, <= 3 CPU and <= 6 GiB summed over every container. P2: a
Raspberry Pi pool's worker <= 2.5 GiB.

    .venv/bin/python benchmarks/platform_requests.py            # every example stack
    .venv/bin/python benchmarks/platform_requests.py --smoke    # edge-lab only (a test runs it)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from naomi.cluster.checks import cluster_model
from naomi.paths import PROJECT_DIR, shared_dir
from naomi.render.engine import evaluate_stack
from naomi.render.tree import render
from naomi.sizing import platform_pods, pod_requests, totals


def _charts_cache() -> Path | None:
    import os

    if os.environ.get("NAOMI_CHARTS"):
        return Path(os.environ["NAOMI_CHARTS"])
    shared = shared_dir()
    return shared / "reference" / "chart-archives" if shared is not None else None


def report(stack: str, cache: Path | None) -> None:
    evaluation = evaluate_stack(PROJECT_DIR, stack)
    rendered = render(evaluation, charts_cache=cache)
    if rendered.charts_missing:
        print(
            f"stack {stack}: charts missing from the cache {rendered.charts_missing}: the sums lack their pods"
        )
    model = cluster_model(rendered)
    profile = evaluation.config.get("naomi:profile", "edge")
    models = [m["name"] for m in json.loads(evaluation.config.get("naomi:serving", "{}")).get("models", [])]
    variants = [("all served models", models)] + [(f"one served model: {name}", [name]) for name in models]
    for title, served in variants:
        every, scheduled, rows = totals(platform_pods(model.pods, served))
        target = "  (P1 target <= 3 CPU / 6 GiB)" if profile == "edge" and len(served) <= 1 else ""
        print(
            f"stack {stack} (profile {profile}), {title}: {every.cpu:.2f} CPU, {every.memory_gib:.2f} GiB over every "
            f"container; scheduler {scheduled.cpu:.2f} CPU, {scheduled.memory_gib:.2f} GiB; {len(rows)} pods{target}"
        )
        if title == "all served models":
            for row in sorted(rows, key=lambda r: -r.all_containers.memory):
                warn = f"  no requests: {', '.join(row.unrequested)}" if row.unrequested else ""
                print(
                    f"    {row.owner:70.70s} x{row.replicas} {row.all_containers.cpu:5.2f} CPU "
                    f"{row.all_containers.memory / 2**20:7.0f} MiB  [{row.origin.split(':')[0]}]{warn}"
                )
    for pod in model.pods:
        if pod.labels.get("ray.io/node-type") == "worker" and pod.origin.startswith("operator:RayCluster"):
            row = pod_requests(pod)
            target = "  (P2 target, Pi pool: <= 2.5 GiB)" if pod.labels.get("ray.io/group") == "pi" else ""
            print(
                f"    Ray pool {pod.labels.get('ray.io/group')}: {row.all_containers.cpu:.2f} CPU "
                f"{row.all_containers.memory_gib:.2f} GiB per worker{target}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="edge-lab only (the test suite runs it)")
    smoke = parser.parse_args().smoke
    cache = _charts_cache()
    for stack in ("edge-lab",) if smoke else ("dev", "edge-lab", "lab-ha"):
        report(stack, cache)


if __name__ == "__main__":
    main()
