"""Guard for tests that start Ray: it listens on every interface, so only in a loopback-only netns."""

from __future__ import annotations

import os
import socket

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
