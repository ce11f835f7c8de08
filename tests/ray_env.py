"""For tests that start Ray: it listens on every interface, so only in a loopback-only netns; and
stopping the Ray processes a test started itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

import pytest


def require_loopback_only_network() -> None:
    """Skip (fail in CI) unless the only network interface is `lo` (`unshare -n`, see scripts/test.sh)."""
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces == ["lo"]:
        return
    message = f"Ray needs a loopback-only network namespace (interfaces here: {', '.join(interfaces)}); run scripts/test.sh"
    if os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started (`ray start --block` and the raylet, agents and
    workers it spawned, as the kubelet does to a container past its grace period) and wait until
    the group is gone, so the next node can bind the same fixed ports."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"process group {process.pid} still has members after SIGKILL")
