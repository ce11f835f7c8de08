"""A fast fake host for the provisioning scripts: a temporary root plus stub commands on PATH.

Kept only where the real Debian userland (tests/userland) adds nothing: preflight's refusals
(architecture, OS, board, memory, disk, clock, swap: numbers a real kernel cannot be made to
report) and the SD-card warning (findmnt's source). The scripts run as the component renders
them (`script_command`), with `NAOMI_ROOT` pointing at the fake root and stubs for snap,
microk8s, uname, systemd-run, timedatectl, swapon, findmnt, df, flock and sudo (which keeps
the stubs first on the PATH the command line sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hardware.steps import script_command

STUB = Path(__file__).with_name("stub.py")
COMMANDS = (
    "snap",
    "microk8s",
    "uname",
    "systemd-run",
    "systemctl",
    "timedatectl",
    "swapon",
    "findmnt",
    "df",
    "flock",
    "sudo",
    "ssh",
)
MODELS = {"rpi4": "Raspberry Pi 4 Model B Rev 1.5", "rpi5": "Raspberry Pi 5 Model B Rev 1.0", "generic": ""}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    changes: list[str]


class FakeHost:
    def __init__(
        self,
        base: Path,
        *,
        board: str = "generic",
        machine: str = "x86_64",
        os_id: str = "ubuntu",
        cmdline: str | None = "/boot/firmware/cmdline.txt",
        memory_cgroup: bool = True,
        memory_kib: int = 8_000_000,
    ) -> None:
        self.root = base / "root"
        self.bin = base / "bin"
        self.env: dict[str, str] = {"FAKE_MACHINE": machine}
        (self.root / ".fake").mkdir(parents=True)
        (self.root / "etc").mkdir()
        (self.root / "etc" / "os-release").write_text(f'ID={os_id}\nPRETTY_NAME="{os_id}"\n')
        (self.root / "proc" / "device-tree").mkdir(parents=True)
        if MODELS[board]:
            (self.root / "proc" / "device-tree" / "model").write_bytes(MODELS[board].encode() + b"\0")
        (self.root / "proc" / "meminfo").write_text(f"MemTotal:       {memory_kib} kB\nMemFree: 1 kB\n")
        if cmdline is not None:
            path = self.root / cmdline.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
            )
        (self.root / "sys" / "fs" / "cgroup").mkdir(parents=True)
        controllers = "cpuset cpu io memory pids" if memory_cgroup else "cpuset cpu io pids"
        (self.root / "sys" / "fs" / "cgroup" / "cgroup.controllers").write_text(controllers + "\n")
        (self.root / "var/snap/microk8s/common").mkdir(parents=True)
        self.bin.mkdir()
        for command in COMMANDS:
            wrapper = self.bin / command
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB}" {command} "$@"\n')
            wrapper.chmod(0o755)

    def state(self) -> dict:  # type: ignore[type-arg]
        path = self.root / ".fake" / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def add_cluster_node(self, address: str, name: str) -> None:
        state = self.state() or {"addons": [], "tokens": [], "nodes": {}}
        state["nodes"][address] = {"name": name, "labels": {}, "taints": []}
        (self.root / ".fake" / "state.json").write_text(json.dumps(state, sort_keys=True, indent=1))

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the fake root except the call log."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.name != "calls.log"
        }

    def run(self, script: str, parameters: dict[str, str], **fake: str) -> Result:
        log = self.root / ".fake" / "calls.log"
        before = log.read_text().splitlines() if log.exists() else []
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "NAOMI_ROOT": str(self.root),
            "HOME": str(self.root),
            "FAKE_BIN": str(self.bin),
            "LANG": "C.UTF-8",
            **self.env,
            **fake,
        }
        completed = subprocess.run(
            ["bash", "-c", script_command(script, parameters)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        after = log.read_text().splitlines() if log.exists() else []
        changes = [line for line in after[len(before) :] if line.startswith("CHANGE")]
        return Result(completed.returncode, completed.stdout, completed.stderr, changes)


__all__ = ["FakeHost", "Result", "os"]
