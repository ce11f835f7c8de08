"""Preflight refusals and the SD-card warning against the fast fake host (tests/fakehost).

Everything a real userland can show runs there instead (tests/test_userland.py); these are the
numbers and devices a test cannot make a real kernel report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakehost import FakeHost


def test_pi_declared_amd64_fails_preflight(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi4", machine="aarch64")
    result = host.run("preflight.sh", {"EXPECTED_ARCH": "amd64", "BOARD": "generic", "NODE_NAME": "pi-2"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "naomi preflight pi-2: inventory says arch amd64 but the host is arm64; fix naomi:cluster.nodes"
    )


@pytest.mark.parametrize(
    ("fake", "kwargs", "message"),
    [
        ({"FAKE_SWAP": "/swapfile"}, {}, "swap is on"),
        ({"FAKE_NTP": "no"}, {}, "clock is not synchronised"),
        ({"FAKE_FREE_KIB": "1000000"}, {}, "needs at least 10 GB free"),
        ({}, {"memory_kib": 2_000_000}, "needs at least 4 GB of memory"),
        ({}, {"os_id": "fedora"}, "unsupported OS 'fedora'"),
        ({}, {"board": "rpi4"}, "set board rpi4 or rpi5 in the inventory"),
    ],
)
def test_preflight_failures_name_the_fix(
    tmp_path: Path, fake: dict[str, str], kwargs: dict, message: str
) -> None:  # type: ignore[type-arg]
    host = FakeHost(tmp_path, **kwargs)
    result = host.run(
        "preflight.sh", {"EXPECTED_ARCH": "amd64", "BOARD": "generic", "NODE_NAME": "n"}, **fake
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert result.changes == []


def test_sd_card_root_warns(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi4", machine="aarch64")
    result = host.run("pi-verify-cgroup.sh", {"NODE_NAME": "pi-2"}, FAKE_ROOT_SOURCE="/dev/mmcblk0p2")
    assert result.returncode == 0, result.stderr
    assert "root filesystem is on an SD card (/dev/mmcblk0p2)" in result.stderr
