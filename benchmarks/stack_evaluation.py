"""Benchmark: evaluation time of the stack program under mocks (prints figures; no asserts).

Measures each example stack, synthetic microk8s inventories of 10, 100 and 1,000 nodes, and
the program's import time (in a fresh interpreter). Targets (CHECKS.md P3): reference stack
<= 2 s, 100 nodes <= 6 s, growth linear in the node count.

    .venv/bin/python benchmarks/stack_evaluation.py
    .venv/bin/python benchmarks/stack_evaluation.py --smoke   # one stack, 10 nodes, once
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from naomi.paths import PROJECT_DIR
from naomi.render.engine import evaluate, evaluate_stack, load_stack_file, stack_program

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkHostKeyForSyntheticNodes00001"


def timed(action, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def synthetic(nodes: int) -> tuple[dict[str, str], list[str]]:
    config, secrets = load_stack_file(PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml")
    inventory = [
        {"name": "cp-1", "address": "10.0.0.1", "arch": "amd64", "role": "control-plane", "hostKey": HOST_KEY}
    ]
    for index in range(1, nodes):
        pi = index % 2 == 0
        inventory.append(
            {
                "name": f"{'pi' if pi else 'x86'}-{index}",
                "address": f"10.{index // 250}.{index % 250}.2",
                "arch": "arm64" if pi else "amd64",
                "board": "rpi5" if pi else "generic",
                "role": "worker",
                "hostKey": HOST_KEY,
            }
        )
    cluster = json.loads(config["naomi:cluster"])
    cluster["nodes"] = inventory
    return {**config, "naomi:cluster": json.dumps(cluster)}, secrets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="one stack and 10 nodes, once (a test runs it)")
    smoke = parser.parse_args().smoke
    program = stack_program(PROJECT_DIR)
    import_seconds = float(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t=time.perf_counter(); import stacks.program; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    print(f"import stacks.program (fresh interpreter): {import_seconds:.2f} s")
    evaluate_stack(PROJECT_DIR, "dev")  # warm imports
    for stack in ("dev",) if smoke else ("dev", "edge-lab", "lab-ha"):
        seconds = timed(lambda s=stack: evaluate_stack(PROJECT_DIR, s), repeats=1 if smoke else 3)
        records = len(evaluate_stack(PROJECT_DIR, stack).records)
        print(f"stack {stack:9s}: {seconds:6.2f} s  ({records} resources)  target <= 2 s")
    previous = None
    for nodes in (10,) if smoke else (10, 100, 1000):
        config, secrets = synthetic(nodes)
        seconds = timed(
            lambda c=config, s=secrets: evaluate(program, "bench", c, s),
            repeats=1 if nodes > 100 or smoke else 3,
        )
        records = len(evaluate(program, "bench", config, secrets).records) if nodes <= 100 else None
        per_node = seconds / nodes * 1000
        growth = f", x{seconds / previous:.1f} for x10 nodes" if previous else ""
        print(
            f"inventory {nodes:5d} nodes: {seconds:6.2f} s  ({per_node:.1f} ms/node{growth})"
            + (f"  ({records} resources)" if records else "")
            + ("  target <= 6 s" if nodes == 100 else "")
        )
        previous = seconds


if __name__ == "__main__":
    main()
