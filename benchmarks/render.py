"""Benchmark: what `naomi render` spends its time on, with the upstream charts rendered
(prints figures; no asserts).

For edge-lab and lab-ha: program evaluation under mocks, chart render (every release's archive
rendered by the Helm SDK, CRDs read, objects placed), and the rest (the tree in memory and the
files written); best of 3, with the object counts (ours, chart objects, chart CRDs). Target: the
whole render <= 5 s per stack on 2 cores. Charts come from $NAOMI_CHARTS, else
../shared/reference/chart-archives.

    .venv/bin/python benchmarks/render.py            # best of 3
    .venv/bin/python benchmarks/render.py --smoke    # one run each (what the test runs)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from naomi.cluster import charts
from naomi.cluster.checks import cluster_model, run_checks
from naomi.paths import PROJECT_DIR, shared_dir
from naomi.render.engine import evaluate_stack
from naomi.render.tree import Rendered, render, write

STACKS = ("edge-lab", "lab-ha")


def chart_cache() -> Path:
    if os.environ.get(charts.CACHE_ENV):
        return charts.cache_dir()
    shared = shared_dir()
    if shared is None:
        sys.exit("no chart cache: set NAOMI_CHARTS or provide ../shared/reference/chart-archives")
    return shared / "reference" / "chart-archives"


def one_run(stack: str, cache: Path) -> tuple[dict[str, float], Rendered]:
    """Seconds per phase of one render of `stack`, and the render."""
    chart_seconds = 0.0
    original = charts.render_release

    def timed_release(*args: Any, **kwargs: Any) -> charts.ReleaseRender:
        nonlocal chart_seconds
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            chart_seconds += time.perf_counter() - started

    started = time.perf_counter()
    evaluation = evaluate_stack(PROJECT_DIR, stack)
    evaluated = time.perf_counter()
    charts.render_release = timed_release  # the tree calls it through the module
    try:
        rendered = render(evaluation, charts_cache=cache)
    finally:
        charts.render_release = original
    with tempfile.TemporaryDirectory(prefix="naomi-bench-") as scratch:
        write(rendered, Path(scratch) / stack)
    written = time.perf_counter()
    model = cluster_model(rendered)  # operator expansions (KubeRay, prometheus-operator, Flyte)
    pods = len(model.pods)
    expanded = time.perf_counter()
    run_checks(evaluation, rendered)  # admission, flows, placement, gateway (rebuilds the model)
    finished = time.perf_counter()
    return {
        "evaluation": evaluated - started,
        "charts": chart_seconds,
        "rest": written - evaluated - chart_seconds,
        "expansion": expanded - written,
        "checks": finished - expanded,
        "pods": float(pods),
        "total": finished - started,
    }, rendered


def best_of(
    runs: int, action: Callable[[], tuple[dict[str, float], Rendered]]
) -> tuple[dict[str, float], Rendered]:
    """The run with the smallest total (its own split, so the phases add up)."""
    results = [action() for _ in range(runs)]
    return min(results, key=lambda result: result[0]["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one run per stack")
    arguments = parser.parse_args()
    runs = 1 if arguments.smoke else 3
    cache = chart_cache()
    evaluate_stack(PROJECT_DIR, "dev")  # warm imports, as the stack evaluation benchmark does
    print(
        f"chart cache: {cache}; {'one run' if runs == 1 else f'best of {runs}'} per stack, cpus {os.cpu_count()}"
    )
    for stack in STACKS:
        seconds, rendered = best_of(runs, lambda s=stack: one_run(s, cache))
        crds = sum(1 for item in rendered.chart_objects if item.crd)
        # The operator charts' CRDs are applied by the program itself (infra.charts): ours.
        applied = sum(1 for obj in rendered.kubernetes if obj["kind"] == "CustomResourceDefinition")
        print(
            f"{stack:9s} total {seconds['total']:5.2f} s = evaluation {seconds['evaluation']:5.2f} s"
            f" + chart render {seconds['charts']:5.2f} s + tree {seconds['rest']:5.2f} s"
            f" + expansion {seconds['expansion']:5.2f} s ({seconds['pods']:.0f} pods)"
            f" + checks {seconds['checks']:5.2f} s   target <= 5 s"
        )
        print(
            f"{'':9s} objects: ours {len(rendered.kubernetes) - applied}, chart objects "
            f"{len(rendered.chart_objects) - crds}, chart CRDs {crds + applied}, "
            f"releases {len(rendered.helm)} (missing: {', '.join(rendered.charts_missing) or 'none'})"
        )


if __name__ == "__main__":
    main()
