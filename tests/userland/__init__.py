"""A host that behaves like a real one, for the provisioning scripts.

A real Debian bookworm userland (the base of Raspberry Pi OS), built once with `mmdebstrap`
from Debian's packages and cached; each test host is an overlay on it with its own user,
`/etc/hosts`, boot partition and stand-ins (`standin.py`) for what cannot run in a chroot.
Steps run inside it as the SSH user through the userland's real bash, coreutils and `sudo`
(with Debian's `secure_path`), in fresh mount/UTS/PID namespaces whose `/proc/cmdline`,
`/proc/sys/kernel/random/boot_id`, `/proc/cgroups`, `/proc/swaps` and `/sys` are the host's
kernel stand-in (`host.Kernel`). `plan.run` executes a stack's evaluated commands in
dependency order the way `pulumi up` with pulumi-command would.

The cache is `$NAOMI_USERLAND_CACHE` or `~/.cache/naomi/userland` of the account running the
tests (looked up in the password database, so a test runner's scratch HOME does not make it
cold). Without mmdebstrap or root the tests skip with the reason, or fail when `CI` or
`NAOMI_REQUIRE_SHARED=1` is set.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("sudo", "procps", "python3-minimal", "libpython3.11-stdlib")
BUILD_SECONDS: list[float] = []  # how long this process spent building (benchmarks print it)


def cache_dir() -> Path:
    configured = os.environ.get("NAOMI_USERLAND_CACHE")
    if configured:
        return Path(configured)
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "naomi" / "userland"


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the real-userland tests need root (chroot, mount and unshare namespaces)"
    for tool in ("mmdebstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install mmdebstrap util-linux coreutils)"
    return None


def _outer_network(pid: int) -> str | None:
    """/proc/<pid>/ns/net of the nearest ancestor in another network namespace, if any."""
    own = os.readlink("/proc/self/ns/net")
    while pid > 1:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != own:
                return f"/proc/{pid}/ns/net"
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
    return None


def _in_host_network(command: list[str]) -> list[str]:
    """mmdebstrap needs Debian's mirror, but tests may run in a loopback-only network namespace
    (scripts/test.sh runs pytest under `unshare -n`). As root, the build alone runs in the
    namespace of the nearest ancestor outside it (the test runner's shell)."""
    outer = _outer_network(os.getppid())
    return ["nsenter", f"--net={outer}", *command] if outer and shutil.which("nsenter") else command


def build(target: Path) -> None:
    staging = target.with_name(target.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(
        _in_host_network(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(staging),
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"mmdebstrap failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    staging.rename(target)
    BUILD_SECONDS.append(time.perf_counter() - started)


def userland() -> Path:
    """The cached userland, built now when absent (one build at a time, atomically)."""
    root = cache_dir()
    target = root / f"{SUITE}-{'-'.join(PACKAGES)}"
    if (target / "usr/bin/sudo").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "usr/bin/sudo").is_file():
            build(target)
    return target


def require_userland() -> Path:
    import pytest  # here, so the operator-side ssh stand-in does not pay for importing it

    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI") or os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return userland()
