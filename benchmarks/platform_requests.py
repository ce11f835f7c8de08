"""Benchmark P1/P2: resources the platform requests, summed from each example stack's render.

Prints long-running requests per component and per stack (Jobs and CronJobs are transient and
listed apart). Target (CHECKS.md P1): the `edge` profile <= 3 CPU and <= 6 GiB requested,
without Ray worker pools and jobs. Components from later issues (Ray, Flyte, monitoring) add
to these sums as they land.

    .venv/bin/python benchmarks/platform_requests.py
"""

from __future__ import annotations

from naomi.paths import PROJECT_DIR
from naomi.render.engine import evaluate_stack
from naomi.render.tree import render
from naomi.sizing import Requests, long_running_requests, ray_pool_requests


def main() -> None:
    for stack in ("dev", "edge-lab", "lab-ha"):
        evaluation = evaluate_stack(PROJECT_DIR, stack)
        rendered = render(evaluation)
        profile = evaluation.config.get("naomi:profile", "edge")
        per_owner = long_running_requests(rendered.kubernetes, rendered.helm)
        total = Requests()
        for requests in per_owner.values():
            total.cpu += requests.cpu
            total.memory += requests.memory
        print(
            f"stack {stack} (profile {profile}): {total.cpu:.2f} CPU, {total.memory_gib:.2f} GiB requested "
            f"by {len(per_owner)} long-running workloads"
            + ("  target <= 3 CPU / 6 GiB" if profile == "edge" else "")
        )
        for owner, requests in sorted(per_owner.items()):
            print(f"    {owner:40s} {requests.cpu:5.2f} CPU {requests.memory / 2**20:7.0f} MiB")
        for pool, requests in sorted(ray_pool_requests(rendered.kubernetes).items()):
            print(
                f"    Ray pool {pool:31s} {requests.cpu:5.2f} CPU {requests.memory / 2**20:7.0f} MiB per worker"
                + ("  target (Pi pool) <= 2.5 GiB" if pool == "pi" else "")
            )


if __name__ == "__main__":
    main()
