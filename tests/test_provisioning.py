"""Provisioning scripts against a fake host: idempotent, fail fast with actionable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakehost import FakeHost

X86_STEPS = [
    ("preflight.sh", {"EXPECTED_ARCH": "amd64", "BOARD": "generic", "NODE_NAME": "cp-1"}),
    ("install-microk8s.sh", {"CHANNEL": "1.32/stable"}),
    ("addons.sh", {"ADDONS": "dns hostpath-storage metrics-server rbac"}),
    ("kubeconfig.sh", {"API_ADDRESS": "192.168.50.10"}),
]
PI_STEPS = [
    ("preflight.sh", {"EXPECTED_ARCH": "arm64", "BOARD": "rpi5", "NODE_NAME": "pi-1"}),
    ("pi-cmdline.sh", {"NODE_NAME": "pi-1"}),
    ("pi-verify-cgroup.sh", {"NODE_NAME": "pi-1"}),
    ("install-microk8s.sh", {"CHANNEL": "1.32/stable"}),
    (
        "join.sh",
        {
            "BOOTSTRAP_ADDRESS": "192.168.50.10",
            "JOIN_PORT": "25000",
            "JOIN_TOKEN": "a" * 32,
            "ROLE": "worker",
        },
    ),
]


def _run_all(host: FakeHost, steps: list[tuple[str, dict[str, str]]]) -> list[str]:
    changes = []
    for script, parameters in steps:
        result = host.run(script, parameters)
        assert result.returncode == 0, (script, result.stderr)
        changes.extend(result.changes)
    return changes


def test_x86_control_plane_second_run_changes_nothing(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    first = _run_all(host, X86_STEPS)
    assert "CHANGE snap install microk8s --classic --channel=1.32/stable" in first
    assert [c for c in first if c.startswith("CHANGE microk8s enable")] == [
        "CHANGE microk8s enable dns",
        "CHANGE microk8s enable hostpath-storage",
        "CHANGE microk8s enable metrics-server",
        "CHANGE microk8s enable rbac",
    ]
    before = host.snapshot()
    assert _run_all(host, X86_STEPS) == []
    assert host.snapshot() == before


def test_kubeconfig_points_at_the_reachable_address(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    _run_all(host, X86_STEPS[:2])
    result = host.run("kubeconfig.sh", {"API_ADDRESS": "192.168.50.10"})
    assert "server: https://192.168.50.10:16443" in result.stdout
    assert "10.1.0.5" not in result.stdout


@pytest.mark.parametrize("layout", ["/boot/firmware/cmdline.txt", "/boot/cmdline.txt"])
def test_pi_cmdline_edited_exactly_once_and_reboot_only_when_changed(tmp_path: Path, layout: str) -> None:
    host = FakeHost(tmp_path, board="rpi5", machine="aarch64", cmdline=layout)
    first = _run_all(host, PI_STEPS)
    assert "CHANGE systemd-run --on-active=3 --unit naomi-reboot systemctl reboot" in first
    cmdline = (host.root / layout.lstrip("/")).read_text()
    assert cmdline.count("cgroup_enable=memory") == 1 and cmdline.count("cgroup_memory=1") == 1
    assert len(cmdline.splitlines()) == 1
    assert cmdline.startswith("console=serial0,115200")
    before = host.snapshot()
    assert _run_all(host, PI_STEPS) == []  # no reboot, no install, no join the second time
    assert host.snapshot() == before


def test_pi_with_flags_already_present_is_not_rebooted(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi4", machine="aarch64")
    path = host.root / "boot/firmware/cmdline.txt"
    path.write_text("root=PARTUUID=1 cgroup_memory=1 rootwait cgroup_enable=memory\n")
    result = host.run("pi-cmdline.sh", {"NODE_NAME": "pi-2"})
    assert result.returncode == 0 and result.changes == []
    assert "already on /boot/firmware/cmdline.txt" in result.stdout


def test_pi_without_memory_controller_fails_with_actionable_message(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi5", machine="aarch64", memory_cgroup=False)
    result = host.run("pi-verify-cgroup.sh", {"NODE_NAME": "pi-1"})
    assert result.returncode == 1
    assert "naomi pi-1: the memory cgroup controller is missing after reboot." in result.stderr
    assert "cgroup_enable=memory cgroup_memory=1" in result.stderr
    assert "sudo apt full-upgrade" in result.stderr


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
    assert result.returncode == 0
    assert "root filesystem is on an SD card (/dev/mmcblk0p2)" in result.stderr


def test_failure_half_way_then_rerun_converges(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    _run_all(host, X86_STEPS[:2])
    addons = {"ADDONS": "dns hostpath-storage metrics-server rbac"}
    failed = host.run("addons.sh", addons, FAKE_FAIL="microk8s enable metrics-server")
    assert failed.returncode != 0
    assert host.state()["addons"] == ["dns", "hostpath-storage"]
    rerun = host.run("addons.sh", addons, FAKE_FAIL="microk8s enable metrics-server")
    assert rerun.returncode == 0
    assert rerun.changes == ["CHANGE microk8s enable metrics-server", "CHANGE microk8s enable rbac"]
    assert host.run("addons.sh", addons).changes == []


def test_channel_change_refreshes_the_snap(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    _run_all(host, X86_STEPS[:2])
    result = host.run("install-microk8s.sh", {"CHANNEL": "1.33/stable"})
    assert result.changes == ["CHANGE snap refresh microk8s --channel=1.33/stable"]


def test_labels_and_taints_applied_once(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    _run_all(host, X86_STEPS[:2])
    host.add_cluster_node("192.168.50.21", "pi-1")
    parameters = {
        "NODE_ADDRESS": "192.168.50.21",
        "LABELS": "naomi.io/board=rpi5 naomi.io/role=worker",
        "TAINTS": "naomi.io/low-memory=true:PreferNoSchedule",
    }
    first = host.run("label.sh", parameters)
    assert first.returncode == 0, first.stderr
    assert len(first.changes) == 2
    node = host.state()["nodes"]["192.168.50.21"]
    assert node["labels"] == {"naomi.io/board": "rpi5", "naomi.io/role": "worker"}
    assert node["taints"] == ["naomi.io/low-memory=true:PreferNoSchedule"]
    assert host.run("label.sh", parameters).changes == []


def test_token_issue_skips_members_and_remove_tolerates_a_vanished_node(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    _run_all(host, X86_STEPS[:2])
    issue = {"NODE_ADDRESS": "192.168.50.22", "JOIN_TOKEN": "b" * 32, "TOKEN_TTL": "300"}
    assert host.run("add-node.sh", issue).changes == [
        "CHANGE microk8s add-node --token " + "b" * 32 + " --token-ttl 300"
    ]
    host.add_cluster_node("192.168.50.22", "pi-2")
    assert host.run("add-node.sh", issue).changes == []
    removed = host.run("remove-node.sh", {"NODE_ADDRESS": "192.168.50.22"})
    assert removed.changes == ["CHANGE microk8s remove-node pi-2 --force"]
    gone = host.run("remove-node.sh", {"NODE_ADDRESS": "192.168.50.22"})
    assert gone.returncode == 0 and gone.changes == []
    assert "is not a member; nothing to remove" in gone.stdout


def test_leave_is_idempotent(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi5", machine="aarch64")
    _run_all(host, PI_STEPS)
    assert host.run("leave.sh", {}).changes == ["CHANGE microk8s leave"]
    assert host.run("leave.sh", {}).changes == []


def _leave_environment(host: FakeHost) -> dict[str, str]:
    from hardware.steps import script_text

    return {
        "NODE_ADDRESS": "192.168.50.21",
        "SSH_PORT": "22",
        "SSH_USER": "pi",
        "HOST_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPi51naomiEdgeLabRaspberryPi5HostKey01",
        "NAOMI_SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----",
        "LEAVE_SCRIPT": script_text("leave.sh"),
    }


def test_leave_over_ssh_makes_a_reachable_node_leave(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi5", machine="aarch64")
    _run_all(host, PI_STEPS)
    result = host.run("leave-over-ssh.sh", {}, as_root=False, **_leave_environment(host))
    assert result.returncode == 0, result.stderr
    assert result.changes == ["CHANGE microk8s leave"]
    assert "192.168.50.21 left the cluster" in result.stdout


def test_leave_over_ssh_tolerates_a_vanished_host(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, board="rpi5", machine="aarch64")
    result = host.run("leave-over-ssh.sh", {}, as_root=False, FAKE_SSH="down", **_leave_environment(host))
    assert result.returncode == 0
    assert (
        "192.168.50.21 is unreachable or failed to leave; continuing (remove-node follows)" in result.stderr
    )
    assert result.changes == []
