"""The worker command KubeRay generates from the rendered edge-lab RayCluster, run for real.

For each worker group, the Ray container's exact command (`/bin/bash -c -- '<ulimit>; ray start
...'`, from naomi.cluster.operators) runs against a head started on loopback. One thing is
changed: `--address`, because the head Service's DNS name does not resolve here. `--block` stays:
like the container, the command keeps running while the node lives, and exits at once when
`ray start` refuses its flags (the pod's crash loop). The node must join with its custom resource,
CPUs, memory and object store as KubeRay derived them.

Everything runs in a fresh loopback-only network namespace (`unshare -n`): the command's fixed
ports (dashboard agent 52365, metrics 8080) cannot collide with another Ray on this machine, and
Ray listens on every interface. Run as a script (`python -m tests.test_ray_start`) it is that
scenario: it reads the commands as JSON on stdin and prints what each node did.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from naomi.cluster import operators
from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered
from tests.ray_env import stop_process_group

pytestmark = [pytest.mark.workloads, pytest.mark.slow]
NETNS = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash"]
ADDRESS = re.compile(r" --address=\S+ ")
SCENARIO_TIMEOUT = 50.0  # head, both nodes joined and stopped: 25-45 s on 2 busy cores


def _worker_commands(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """One pod per worker group (a group at 0 replicas as the autoscaler would scale it up)."""
    scaled = copy.deepcopy(cluster)
    for group in scaled["spec"]["workerGroupSpecs"]:
        group["replicas"] = 1
    commands = []
    for pod in operators.expand_ray_cluster(scaled):
        if pod["kind"] == "Pod" and pod["metadata"]["labels"]["ray.io/node-type"] == "worker":
            ray = pod["spec"]["containers"][0]
            env = ray.get("env", [])
            commands.append(
                {
                    "group": pod["metadata"]["labels"]["ray.io/group"],
                    "argv": ray["command"] + ray["args"],
                    # Literal values as the pod has them; values from Secrets are the scenario's.
                    "env": {e["name"]: e["value"] for e in env if "value" in e},
                    "secret_env": sorted(e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})),
                }
            )
    return commands


def test_each_worker_group_joins_with_its_custom_resource(renders: dict[str, Rendered]) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs Ray (the workloads extra)")
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], check=False).returncode:
        pytest.skip("needs `unshare -n` (root) for a loopback-only network namespace")
    (cluster,) = [o for o in renders["edge-lab"].kubernetes if o["kind"] == "RayCluster"]
    commands = _worker_commands(cluster)
    assert [c["group"] for c in commands] == ["x86", "pi"]
    # KubeRay's token auth (authOptions): every node reads the cluster's token from its Secret.
    assert all(c["env"]["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in c["secret_env"] for c in commands)
    scenario = subprocess.run(
        [*NETNS, sys.executable, "-m", "tests.test_ray_start"],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=SCENARIO_TIMEOUT + 10,
        check=False,
    )
    assert scenario.returncode == 0, scenario.stderr[-3000:]
    results = {r["group"]: r for r in json.loads(scenario.stdout.splitlines()[-1])}
    for group in cluster["spec"]["workerGroupSpecs"]:
        name = group["groupName"]
        result = results[name]
        fate = "still running, not joined" if result["exit_code"] is None else f"exited {result['exit_code']}"
        assert result["joined"], f"group {name}: ray start {fate}:\n{result['log']}"
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        cpus = float(operators.quantity_value(limits["cpu"]))
        assert result["resources"][name] == cpus
        assert result["resources"]["CPU"] == cpus
        assert result["resources"]["memory"] == float(operators.quantity_value(limits["memory"]))
        assert result["resources"]["object_store_memory"] == float(
            group["rayStartParams"]["object-store-memory"]
        )


# ---------------------------------------------------------------------------------------------
# The scenario, inside the network namespace


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the head exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no GCS on port {port}")


def _run_worker(
    command: dict[str, Any], gcs: str, env: dict[str, str], log: Path, deadline: float
) -> dict[str, Any]:
    """Start the group's command, then (connecting the driver meanwhile) wait for its node in
    `ray.nodes()` or for the command to exit, whichever comes first."""
    import ray

    argv = list(command["argv"])
    argv[-1], count = ADDRESS.subn(f" --address={gcs} ", argv[-1])
    assert count == 1, argv
    group = command["group"]
    pod_env = {**env, **command["env"]}
    with log.open("wb") as output:
        worker = subprocess.Popen(
            argv, env=pod_env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    result: dict[str, Any] = {"group": group, "joined": False, "exit_code": None, "resources": {}}
    try:
        if not ray.is_initialized():
            ray.init(address=gcs, log_to_driver=False)
        while time.monotonic() < deadline:
            nodes = [n for n in ray.nodes() if n["Alive"] and group in n["Resources"]]
            if nodes:
                result.update(joined=True, resources=nodes[0]["Resources"])
                break
            if worker.poll() is not None:
                result["exit_code"] = worker.returncode
                break
            time.sleep(0.5)
    finally:
        stop_process_group(worker)
    result["log"] = log.read_text(errors="replace")[-2000:]
    return result


def main() -> None:
    commands = json.load(sys.stdin)
    # Under /tmp itself: Ray's socket paths inside RAY_TMPDIR must stay under 108 characters.
    scratch = Path(tempfile.mkdtemp(prefix="ray-start-", dir="/tmp"))
    for folder in ("home", "tmp", "ray"):
        (scratch / folder).mkdir()
    env = {
        **os.environ,
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"),
        "RAY_TMPDIR": str(scratch / "ray"),
        "RAY_USAGE_STATS_ENABLED": "0",
        # The cluster's Secret (KubeRay's authOptions): the head and every worker get the same
        # token; so does this driver.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    os.environ.update(env)
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    port, agent = _free_port(), _free_port()
    # The brief's head, with --block (to stop it by process group) and its dashboard agent off
    # 52365, the port the worker's command pins.
    head_argv = [
        "ray",
        "start",
        "--head",
        "--port",
        str(port),
        "--num-cpus",
        "0",
        "--include-dashboard=false",
    ]
    head_argv += [f"--dashboard-agent-listen-port={agent}", "--block"]
    with (scratch / "head.log").open("wb") as output:
        head = subprocess.Popen(
            head_argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_port(port, head, scratch / "head.log", deadline)
        results = [
            _run_worker(command, f"127.0.0.1:{port}", env, scratch / f"{command['group']}.log", deadline)
            for command in commands
        ]
        import ray

        ray.shutdown()
    finally:
        stop_process_group(head)
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
