"""Provisioning on a real Debian bookworm userland (tests/userland): the stack's own steps,
run in dependency order as `pulumi up` would, against hosts that behave like real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation, evaluate, stack_program
from tests.userland import require_userland
from tests.userland.host import Kernel, Site
from tests.userland.plan import State, failures, run

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserlandTestHostKey"
ADDRESSES = {"cp-1": "198.51.100.10", "cp-2": "198.51.100.11", "cp-3": "198.51.100.12",
             "x86-1": "198.51.100.20", "pi-1": "198.51.100.21", "pi-2": "198.51.100.22"}
BOARDS = {"pi-1": "rpi5", "pi-2": "rpi4"}


def node(name: str, role: str = "worker", **extra: object) -> dict[str, object]:
    pi = name in BOARDS
    entry: dict[str, object] = {
        "name": name, "address": ADDRESSES[name], "arch": "arm64" if pi else "amd64",
        "board": BOARDS.get(name, "generic"), "role": role, "hostKey": f"{KEY}{name.replace('-', '')}",
    }
    if pi:
        entry["sshUser"] = "pi"
    entry.update(extra)
    return entry


def evaluate_nodes(nodes: list[dict[str, object]], **cluster: object) -> Evaluation:
    config = {
        "naomi:cluster": json.dumps({"mode": "microk8s", "nodes": nodes, **cluster}),
        "naomi:sshPrivateKey": "<secret:naomi:sshPrivateKey>",
        "naomi:layers": json.dumps({"platform": False}),
    }
    return evaluate(stack_program(PROJECT_DIR), "userland", config, ["naomi:sshPrivateKey"])


def make_site(tmp_path: Path, nodes: list[dict[str, object]], **kernels: Kernel) -> Site:
    site = Site(require_userland(), tmp_path)
    for entry in nodes:
        name = str(entry["name"])
        pi = name in BOARDS
        kernel = kernels.get(name.replace("-", "_")) or (
            Kernel(machine="aarch64", board=BOARDS[name]) if pi else Kernel()
        )
        site.add(
            str(entry["address"]), user="pi" if pi else "ubuntu",
            hostname="raspberrypi" if pi else "ubuntu", host_key=str(entry["hostKey"]), kernel=kernel,
        )
    return site


def ok(runs: list) -> None:  # type: ignore[type-arg]
    assert not failures(runs), "\n".join(f"{r.name} {r.operation}: {r.stdout}\n{r.stderr}" for r in failures(runs))


EDGE = [node("cp-1", "control-plane"), node("pi-1", labels={"naomi.io/site": "bench"}), node("pi-2")]


def test_first_run_provisions_with_the_reboot_and_a_second_changes_nothing(tmp_path: Path) -> None:
    site = make_site(tmp_path, EDGE)
    evaluation = evaluate_nodes(EDGE)
    state = State()
    runs = run(evaluation, site, state)
    ok(runs)
    pi = site.hosts[ADDRESSES["pi-1"]]
    assert "cgroup_enable=memory cgroup_memory=1" in pi.read("/boot/firmware/cmdline.txt")
    wait = next(r for r in runs if r.name == "cluster-pi-1-reboot-wait")
    assert "up on boot" in wait.stdout and pi.boot_id in wait.stdout
    nodes = site.cluster_nodes(ADDRESSES["cp-1"])
    assert sorted(nodes) == ["cp-1", "pi-1", "pi-2"]
    assert nodes["pi-1"]["labels"]["naomi.io/site"] == "bench"
    assert pi.read("/etc/hostname") == "pi-1\n"
    before = {address: (host.snapshot(), len(host.changes())) for address, host in site.hosts.items()}
    assert run(evaluation, site, state) == []  # nothing changed: pulumi runs nothing
    again = run(evaluation, site, state, force_update=True)  # every step's update, as after edits
    ok(again)
    after = {address: (host.snapshot(), len(host.changes())) for address, host in site.hosts.items()}
    assert after == before
