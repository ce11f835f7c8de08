"""Benchmark: provisioning on the real Debian userland (prints figures; no asserts).

Times building the userland with mmdebstrap (cold: into an empty cache folder) and provisioning
the edge-lab-shaped inventory (one x86 control plane, two Raspberry Pi workers: preflight,
cmdline, reboot and its wait, cgroup check, install, addons, joins, labels, kubeconfig) on it,
first run and second run (every step's update re-run), with the cache warm.

    .venv/bin/python benchmarks/provisioning.py            # cold build + provisioning
    .venv/bin/python benchmarks/provisioning.py --smoke    # cached userland, one node
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import userland
from tests.test_userland import EDGE, evaluate_nodes, make_site, node, ok
from tests.userland.plan import State, run


def provision(nodes: list[dict[str, object]], scratch: Path) -> tuple[float, float, int]:
    evaluation = evaluate_nodes(nodes)
    site = make_site(scratch, nodes)
    state = State()
    started = time.perf_counter()
    first = run(evaluation, site, state)
    ok(first)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ok(run(evaluation, site, state, force_update=True))
    return first_seconds, time.perf_counter() - started, len(first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="cached userland, one node, no cold build")
    smoke = parser.parse_args().smoke
    reason = userland.unavailable()
    if reason is not None:
        print(f"skipped: {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="naomi-provisioning-") as scratch:
        if not smoke:
            os.environ["NAOMI_USERLAND_CACHE"] = str(Path(scratch) / "cache")
            started = time.perf_counter()
            userland.userland()
            print(
                f"userland build (cold, mmdebstrap minbase + {len(userland.PACKAGES)} packages): {time.perf_counter() - started:6.1f} s"
            )
        started = time.perf_counter()
        userland.userland()
        print(f"userland lookup (cached): {time.perf_counter() - started:6.3f} s")
        nodes = [node("cp-1", "control-plane")] if smoke else EDGE
        first, second, steps = provision(nodes, Path(scratch) / "site")
        print(f"provision {len(nodes)} node(s), first run: {first:6.1f} s ({steps} steps)")
        print(f"provision {len(nodes)} node(s), second run (every update): {second:6.1f} s")


if __name__ == "__main__":
    main()
