"""Shared fixtures: the project, the shared reference folder and one render per example stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR, shared_dir
from naomi.render.engine import Evaluation, evaluate_stack
from naomi.render.tree import Rendered, render
from naomi.validate import Reference

EXAMPLE_STACKS = ("dev", "edge-lab", "lab-ha")
# Every render of the session, in-process or a subprocess, takes its charts from the shared archives.
os.environ.setdefault(
    "NAOMI_CHARTS", str((shared_dir() or PROJECT_DIR.parent / "shared") / "reference/chart-archives")
)


def require_shared(relative: str = "") -> Path:
    """The shared folder (or a path in it); skip without it, fail in CI (NAOMI_REQUIRE_SHARED=1)."""
    root = shared_dir()
    path = root / relative if root is not None else None
    if path is None or not path.exists():
        message = f"../shared/{relative} not found (set NAOMI_SHARED to its location)"
        if os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference(require_shared("reference"))


@pytest.fixture(scope="session")
def evaluations() -> dict[str, Evaluation]:
    # The program applies the operator charts' CRDs from the chart archives (naomi:charts.crds
    # program, the default): no stack evaluates without them.
    require_shared("reference/chart-archives")
    return {stack: evaluate_stack(PROJECT_DIR, stack) for stack in EXAMPLE_STACKS}


@pytest.fixture(scope="session")
def renders(evaluations: dict[str, Evaluation]) -> dict[str, Rendered]:
    return {stack: render(evaluation) for stack, evaluation in evaluations.items()}


@pytest.fixture(scope="session")
def ray_session():  # type: ignore[no-untyped-def]
    """One local Ray for the whole run (2 CPUs, no dashboard), in a loopback-only namespace, its
    processes in the RayService pods' Serve environment (HAProxy ingress, direct ingress)."""
    from tests.ray_env import require_loopback_only_network

    require_loopback_only_network()
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    from workloads.common.ray_serve import init_ray_like_serving_pods

    if not ray.is_initialized():
        init_ray_like_serving_pods(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint():  # type: ignore[no-untyped-def]
    """One S3 server (moto) on 127.0.0.1 for the run: host:port."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()
