"""Test hosts on the real userland: an overlay per host, a kernel stand-in, SSH-like sessions.

A session models what pulumi-command's SSH session does (`session.Run(cmd)`: sshd runs the
user's login shell as `shell -c cmd`, OpenSSH session.c do_child, with sshd's default PATH
`/usr/local/bin:/usr/bin:/bin:/usr/games` on Debian and no profile read for a command) inside
fresh namespaces: the overlay is mounted, `/proc` is the session's own, and the kernel's files
are bind-mounted over it. The kernel stand-in (`Kernel`) boots: a new random boot id (the
kernel draws /proc/sys/kernel/random/boot_id at every boot), /proc/cmdline from the boot
partition's cmdline.txt behind the firmware's own arguments, the hostname from /etc/hostname,
and a cgroup layout: a Raspberry Pi kernel disables the memory controller unless
`cgroup_enable=memory` is on its command line (raspberrypi/linux keeps "cgroup_disable=memory"
as its default), which it may also ignore (`honours_cgroup_flags=False`, seen on some Pi 5
kernels); cgroup v2 lists controllers in /sys/fs/cgroup/cgroup.controllers, v1 mounts one
hierarchy per controller and /proc/cgroups' last column says whether it is enabled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

STANDIN = Path(__file__).with_name("standin.py")
SSHD_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
PI_MODELS = {"rpi4": "Raspberry Pi 4 Model B Rev 1.5", "rpi5": "Raspberry Pi 5 Model B Rev 1.0"}
PI_FIRMWARE_ARGS = "coherent_pool=1M 8250.nr_uarts=1 snd_bcm2835.enable_headphones=0 bcm2708_fb.fbwidth=0"
PI_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait"
)
X86_CMDLINE = "BOOT_IMAGE=/vmlinuz-6.1.0-31-amd64 root=UUID=0a1b2c3d ro quiet"
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
STANDIN_COMMANDS = ("snap", "systemd-run", "systemctl", "hostnamectl", "timedatectl")


@dataclass
class Kernel:
    machine: str = "x86_64"
    board: str = "generic"
    cgroup_version: int = 2
    honours_cgroup_flags: bool = True

    @property
    def is_pi(self) -> bool:
        return self.board in PI_MODELS


@dataclass
class Session:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Host:
    """One machine: `address` is only a label (sessions never touch the network)."""

    base: Path
    directory: Path
    site: Path
    address: str
    user: str
    hostname: str
    kernel: Kernel = field(default_factory=Kernel)
    boot_partition: str = "/boot/firmware"
    authorized_key: str = "<secret:naomi:sshPrivateKey>"
    host_key: str = ""
    up: bool = True
    boots: int = 0

    def __post_init__(self) -> None:
        if (self.directory / "config.json").exists():
            return  # loaded by another process (the operator-side ssh stand-in)
        for sub in ("upper", "work", "root", "kernel/proc", "kernel/sys"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._image()
        self.boot()

    def save(self) -> None:
        fields = {
            "base": str(self.base),
            "directory": str(self.directory),
            "site": str(self.site),
            "address": self.address,
            "user": self.user,
            "hostname": self.hostname,
            "kernel": self.kernel.__dict__,
            "boot_partition": self.boot_partition,
            "authorized_key": self.authorized_key,
            "host_key": self.host_key,
            "up": self.up,
            "boots": self.boots,
        }
        (self.directory / "config.json").write_text(json.dumps(fields))

    @classmethod
    def load(cls, directory: Path) -> Host:
        fields = json.loads((directory / "config.json").read_text())
        fields.update(
            base=Path(fields["base"]),
            directory=Path(fields["directory"]),
            site=Path(fields["site"]),
            kernel=Kernel(**fields["kernel"]),
        )
        return cls(**fields)

    def vanish(self) -> None:
        """The machine is gone (unplugged, dead): every connection fails."""
        self.up = False
        self.save()

    # --- the image (what the OS installer or Raspberry Pi Imager leaves) -------------------

    def _write(self, path: str, text: str, mode: int = 0o644, owner: int = 0) -> None:
        target = self.directory / "upper" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
        os.chown(target, owner, owner)

    def read(self, path: str) -> str:
        """A file as the host sees it (the overlay's upper layer over the userland)."""
        upper = self.directory / "upper" / path.lstrip("/")
        return (upper if upper.exists() else self.base / path.lstrip("/")).read_text()

    def exists(self, path: str) -> bool:
        return (self.directory / "upper" / path.lstrip("/")).exists() or (
            self.base / path.lstrip("/")
        ).exists()

    def _image(self) -> None:
        uid = 1000
        passwd = self.read("/etc/passwd") + f"{self.user}:x:{uid}:{uid}:,,,:/home/{self.user}:/bin/bash\n"
        group = (
            self.read("/etc/group").replace("sudo:x:27:", f"sudo:x:27:{self.user}")
            + f"{self.user}:x:{uid}:\n"
        )
        self._write("/etc/passwd", passwd)
        self._write("/etc/group", group)
        self._write("/etc/shadow", self.read("/etc/shadow") + f"{self.user}:*:20000:0:99999:7:::\n", 0o640)
        # As Raspberry Pi OS's first-boot user setup and cloud-init's default user do:
        self._write(
            f"/etc/sudoers.d/010_{self.user}-nopasswd", f"{self.user} ALL=(ALL) NOPASSWD: ALL\n", 0o440
        )
        self._write(f"/home/{self.user}/.ssh/authorized_keys", self.authorized_key + "\n", 0o600, uid)
        for directory in (f"/home/{self.user}", f"/home/{self.user}/.ssh"):
            os.chown(self.directory / "upper" / directory.lstrip("/"), uid, uid)
        self._write("/etc/hostname", self.hostname + "\n")
        self._write(
            "/etc/hosts",
            "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\n"
            f"ff02::2\t\tip6-allrouters\n\n127.0.1.1\t\t{self.hostname}\n",
        )
        self._write("/etc/resolv.conf", "# no name server in a test host\n")
        if self.kernel.is_pi:
            self._write(f"{self.boot_partition}/cmdline.txt", PI_CMDLINE + "\n")
        self._write("/usr/lib/naomi-standin/standin.py", STANDIN.read_text())
        wrapper = '#!/bin/sh\nexec /usr/bin/python3 /usr/lib/naomi-standin/standin.py "$0" "$@"\n'
        for command in STANDIN_COMMANDS:
            self._write(f"/usr/bin/{command}", wrapper, 0o755)
        if self.kernel.machine != "x86_64":
            real = self.directory / "upper/usr/lib/naomi-standin/uname.real"
            shutil.copy2(self.base / "usr/bin/uname", real)
            self._write("/usr/bin/uname", wrapper, 0o755)
        for mount_point in ("/.fake-host", "/.fake-cluster", "/snap"):
            (self.directory / "upper" / mount_point.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self._host_json()

    def _host_json(self) -> None:
        info = {
            "address": self.address,
            "machine": self.kernel.machine,
            "arch": "arm64" if self.kernel.machine == "aarch64" else "amd64",
        }
        (self.directory / "kernel/host.json").write_text(json.dumps(info))

    # --- the kernel ------------------------------------------------------------------------

    def boot(self) -> None:
        kernel_dir = self.directory / "kernel"
        (kernel_dir / "boot_id").write_text(f"{uuid.uuid4()}\n")
        if self.kernel.is_pi:
            line = self.read(f"{self.boot_partition}/cmdline.txt").splitlines()[0]
            cmdline = f"{PI_FIRMWARE_ARGS} {line}"
        else:
            cmdline = X86_CMDLINE
        (kernel_dir / "proc/cmdline").write_text(cmdline + "\n")
        words = cmdline.split()
        memory = not self.kernel.is_pi or (
            "cgroup_enable=memory" in words and self.kernel.honours_cgroup_flags
        )
        lines = ["#subsys_name\thierarchy\tnum_cgroups\tenabled"]
        for index, controller in enumerate(CONTROLLERS, start=1):
            enabled = memory or controller != "memory"
            hierarchy = index if self.kernel.cgroup_version == 1 else 0
            lines.append(f"{controller}\t{hierarchy}\t1\t{int(enabled)}")
        (kernel_dir / "proc/cgroups").write_text("\n".join(lines) + "\n")
        (kernel_dir / "proc/swaps").write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        sys_dir = kernel_dir / "sys"
        shutil.rmtree(sys_dir)
        cgroup = sys_dir / "fs/cgroup"
        cgroup.mkdir(parents=True)
        available = [c for c in CONTROLLERS if memory or c != "memory"]
        if self.kernel.cgroup_version == 2:
            (cgroup / "cgroup.controllers").write_text(" ".join(available) + "\n")
        else:
            for controller in available:
                (cgroup / controller).mkdir()
        if self.kernel.is_pi:
            model = sys_dir / "firmware/devicetree/base/model"
            model.parent.mkdir(parents=True)
            model.write_bytes(PI_MODELS[self.kernel.board].encode() + b"\0")
        (kernel_dir / "hostname").write_text(self.read("/etc/hostname"))
        (kernel_dir / "units.json").unlink(missing_ok=True)
        (kernel_dir / "pending-reboot").unlink(missing_ok=True)
        self.boots += 1
        self.save()

    @property
    def boot_id(self) -> str:
        return (self.directory / "kernel/boot_id").read_text().strip()

    @property
    def reboot_pending(self) -> bool:
        return (self.directory / "kernel/pending-reboot").exists()

    def calls(self) -> list[str]:
        log = self.directory / "kernel/calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def changes(self) -> list[str]:
        return [line for line in self.calls() if line.startswith("CHANGE")]

    def snapshot(self) -> dict[str, bytes]:
        """Every file the host changed relative to the userland (its overlay's upper layer)."""
        upper = self.directory / "upper"
        return {
            str(p.relative_to(upper)): p.read_bytes()
            for p in sorted(upper.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }

    # --- sessions ----------------------------------------------------------------------------

    def session(self, command: str, stdin: str | None = None, *, timeout: float = 120) -> Session:
        """Run `command` as the SSH user's login shell would for `ssh host command`."""
        k = self.directory / "kernel"
        root = self.directory / "root"
        setup = f"""
set -e
mount -t overlay overlay -o lowerdir={self.base},upperdir={self.directory}/upper,workdir={self.directory}/work {root}
mount --rbind /dev {root}/dev
mount -t proc proc {root}/proc
for f in cmdline cgroups swaps; do mount --bind {k}/proc/$f {root}/proc/$f; done
mount --bind {k}/boot_id {root}/proc/sys/kernel/random/boot_id
mount --bind {k}/sys {root}/sys
mount --bind {k} {root}/.fake-host
mount --bind {self.site} {root}/.fake-cluster
mount -t tmpfs tmpfs {root}/tmp
mount -t tmpfs tmpfs {root}/run
hostname "$(cat {k}/hostname)"
exec chroot --userspec=1000:1000 --groups=1000,27 {root} /usr/bin/env -i \
  HOME=/home/{self.user} USER={self.user} LOGNAME={self.user} SHELL=/bin/bash LANG=C.UTF-8 \
  PATH={SSHD_PATH} /bin/bash -c "$NAOMI_SESSION_COMMAND"
"""
        completed = subprocess.run(
            ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "bash", "-c", setup],
            input=stdin or "",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NAOMI_SESSION_COMMAND": command},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Session(completed.returncode, completed.stdout, completed.stderr)


class Site:
    """The hosts of one test and the state they share (the clusters, the site's clock)."""

    def __init__(self, base: Path, directory: Path) -> None:
        self.base = base
        self.directory = directory
        self.shared = directory / "site"
        self.shared.mkdir(parents=True)
        (self.shared / "state.json").write_text(
            json.dumps({"clock": 1_800_000_000, "clusters": {}, "member_of": {}})
        )
        self.hosts: dict[str, Host] = {}

    def add(
        self,
        address: str,
        *,
        user: str,
        hostname: str,
        host_key: str,
        kernel: Kernel | None = None,
        **options: object,
    ) -> Host:
        host = Host(
            self.base,
            self.directory / f"host-{len(self.hosts)}",
            self.shared,
            address,
            user,
            hostname,
            kernel=kernel or Kernel(),
            host_key=host_key,
            **options,  # type: ignore[arg-type]
        )
        self.hosts[address] = host
        self._registry()
        return host

    def _registry(self) -> None:
        registry = {address: str(host.directory) for address, host in self.hosts.items()}
        (self.directory / "hosts.json").write_text(json.dumps(registry))

    def state(self) -> dict:  # type: ignore[type-arg]
        return json.loads((self.shared / "state.json").read_text())

    def update_state(self, **changes: object) -> None:
        state = self.state()
        state.update(changes)
        (self.shared / "state.json").write_text(json.dumps(state))

    def advance_clock(self, seconds: int) -> None:
        self.update_state(clock=self.state()["clock"] + seconds)

    def fail_once(self, address: str, argv: str, message: str, code: int = 1) -> None:
        state = self.state()
        state.setdefault("failures", []).append(
            {"address": address, "argv": argv, "message": message, "code": code}
        )
        (self.shared / "state.json").write_text(json.dumps(state))

    def cluster_nodes(self, address: str) -> dict:  # type: ignore[type-arg]
        state = self.state()
        return state["clusters"][state["member_of"][address]]["nodes"]
