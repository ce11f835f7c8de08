"""A small `pulumi up` for a stack's evaluated command steps, run against userland hosts.

State is what Pulumi keeps: each created step's inputs and outputs. A run visits the steps in
dependency order and, as pulumi-command 1.2.1 decides (see naomi.render.lifecycle): a new step
runs `create`; a step whose `triggers` changed is replaced (new `create`, then the *old*
`delete`); any other input change runs `update` (or `create`); an unchanged step runs nothing;
a step no longer in the program runs its stored `delete` (last first). A failed step is not
recorded and its dependents are skipped, so the next run retries it. `force_update` re-runs
every step's update, as if every script had been edited (the idempotency check).

Remote steps run as a host session with the connection's user; local steps run on this
machine with their environment and the operator-side `ssh` stand-in first on PATH. Output
placeholders (`<generated:NAME:stdout>`) are replaced by the real outputs of earlier steps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from naomi.render.engine import Evaluation, Record
from naomi.render.tree import COMMAND_TYPES
from tests.userland.host import Site

_OUTPUT = re.compile(r"<generated:([^:>]+):(stdout|stderr)>")
UPDATE_INPUTS = ("create", "update", "delete", "connection", "environment", "stdin")


@dataclass
class Run:
    name: str
    operation: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class State:
    """Pulumi's state of the command steps: inputs and outputs by resource name."""

    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def _ordered(records: list[Record]) -> list[Record]:
    commands = {r.urn: r for r in records if r.type in COMMAND_TYPES}
    graph = TopologicalSorter(
        {urn: [d for d in r.dependencies if d in commands] for urn, r in commands.items()}
    )
    return [commands[urn] for urn in graph.static_order()]


def _resolve(value: Any, state: State) -> Any:
    if isinstance(value, str):
        return _OUTPUT.sub(lambda m: state.outputs.get(m.group(1), {}).get(m.group(2), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _resolve(v, state) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, state) for v in value]
    return value


def execute(site: Site, kind: str, command: str, inputs: dict[str, Any]) -> tuple[int, str, str]:
    if kind == "command:remote:Command":
        host = site.hosts[inputs["connection"]["host"]]
        assert inputs["connection"]["user"] == host.user, (inputs["connection"]["user"], host.user)
        if not host.up:
            return 1, "", f"dial tcp {host.address}:22: connect: no route to host"
        session = host.session(command, inputs.get("stdin"))
        return session.returncode, session.stdout, session.stderr
    stand_ins = Path(__file__).with_name("bin")
    environment = {
        "PATH": f"{stand_ins}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "NAOMI_TEST_HOSTS": str(site.directory / "hosts.json"),
        "NAOMI_TEST_PYTHON": sys.executable,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        **(inputs.get("environment") or {}),
        "WAIT_INTERVAL": "0",  # time is not modelled: a check after a reboot sees the new boot
    }
    completed = subprocess.run(
        ["/bin/sh", "-c", command],
        input=inputs.get("stdin") or "",
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return completed.returncode, completed.stdout, completed.stderr


def run(evaluation: Evaluation, site: Site, state: State, *, force_update: bool = False) -> list[Run]:
    """One `pulumi up`; returns what ran, in order. Stops a branch at its first failure."""
    runs: list[Run] = []
    failed: set[str] = set()
    ordered = _ordered(evaluation.records)
    by_urn = {r.urn: r for r in ordered}
    present = {r.name for r in ordered}
    for record in ordered:
        if any(by_urn[d].name in failed for d in record.dependencies if d in by_urn):
            failed.add(record.name)
            continue
        inputs = _resolve(record.inputs, state)
        old = state.inputs.get(record.name)
        if old is None:
            operation, command = "create", inputs.get("create")
        elif list(old.get("triggers") or []) != list(inputs.get("triggers") or []):
            operation, command = "replace", inputs.get("create")
        elif force_update or any(old.get(k) != inputs.get(k) for k in UPDATE_INPUTS):
            operation, command = "update", inputs.get("update") or inputs.get("create")
        else:
            continue
        code, stdout, stderr = execute(site, record.type, command, inputs) if command else (0, "", "")
        runs.append(Run(record.name, operation, code, stdout, stderr))
        if code != 0:
            failed.add(record.name)
            continue
        if operation == "replace" and old is not None and old.get("delete"):
            code, out, err = execute(site, record.type, old["delete"], {**old, "type": record.type})
            runs.append(Run(record.name, "delete-replaced", code, out, err))
        state.inputs[record.name] = {**inputs, "type": record.type}
        state.outputs[record.name] = {
            "stdout": stdout.removesuffix("\n"),
            "stderr": stderr.removesuffix("\n"),
        }
        if record.name not in state.order:
            state.order.append(record.name)
    for name in reversed(list(state.order)):
        if name in present:
            continue
        old = state.inputs[name]
        code, out, err = execute(site, old["type"], old["delete"], old) if old.get("delete") else (0, "", "")
        runs.append(Run(name, "delete", code, out, err))
        if code == 0:
            state.order.remove(name)
            del state.inputs[name]
    return runs


def failures(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.returncode != 0]
