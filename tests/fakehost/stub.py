"""Stand-ins for the host commands the provisioning scripts call (snap, microk8s, uname, ...).

Invoked as `stub.py <command> <args...>` by wrappers on PATH. State lives in
`$NAOMI_ROOT/.fake/state.json`; every call is appended to `$NAOMI_ROOT/.fake/calls.log` as
`CHANGE ...` (alters the host) or `READ ...`, so tests can prove a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(os.environ["NAOMI_ROOT"])
STATE = ROOT / ".fake" / "state.json"
LOG = ROOT / ".fake" / "calls.log"
LOCK = ROOT / "var/snap/microk8s/current/var/lock/clustered.lock"
ADDONS = ("dns", "hostpath-storage", "metrics-server", "rbac", "registry", "ingress")


def load() -> dict:
    return json.loads(STATE.read_text()) if STATE.is_file() else {"addons": [], "tokens": [], "nodes": {}}


def save(state: dict) -> None:
    STATE.write_text(json.dumps(state, sort_keys=True, indent=1))


def log(kind: str, argv: list[str]) -> None:
    with LOG.open("a") as handle:
        handle.write(f"{kind} {' '.join(argv)}\n")


def fail_once(argv: list[str]) -> None:
    """FAKE_FAIL='microk8s enable metrics-server' makes that call fail the first time."""
    wanted = os.environ.get("FAKE_FAIL", "")
    marker = ROOT / ".fake" / "failed-once"
    if wanted and " ".join(argv).startswith(wanted) and not marker.exists():
        marker.write_text(wanted)
        print(f"fake failure: {wanted}", file=sys.stderr)
        sys.exit(1)


def snap(argv: list[str]) -> int:
    state = load()
    action = argv[1]
    if action == "list":
        log("READ", argv)
        return 0 if "microk8s" in state.get("snaps", {}) else 1
    if action == "info":
        log("READ", argv)
        print(f"name: microk8s\ntracking: {state['snaps']['microk8s']}")
        return 0
    if action in ("install", "refresh"):
        channel = next(a.split("=", 1)[1] for a in argv if a.startswith("--channel="))
        state.setdefault("snaps", {})["microk8s"] = channel
        save(state)
        log("CHANGE", argv)
        return 0
    return 2


def microk8s(argv: list[str]) -> int:
    state = load()
    if "microk8s" not in state.get("snaps", {}):
        print("microk8s: command not found", file=sys.stderr)
        return 127
    args = argv[1:]
    if args[0] == "status":
        log("READ", argv)
        if "--format" in args:
            for addon in ADDONS:
                print(f"core/{addon}: {'enabled' if addon in state['addons'] else 'disabled'}")
        return 0
    if args[0] == "enable":
        fail_once(argv)
        state["addons"] = sorted({*state["addons"], args[1]})
        save(state)
        log("CHANGE", argv)
        return 0
    if args[0] == "add-node":
        state["tokens"].append(args[args.index("--token") + 1])
        save(state)
        log("CHANGE", argv)
        return 0
    if args[0] == "join":
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        LOCK.write_text(args[1].split("/")[0] + "\n")
        log("CHANGE", argv)
        return 0
    if args[0] == "leave":
        LOCK.unlink()
        log("CHANGE", argv)
        return 0
    if args[0] == "remove-node":
        state["nodes"] = {a: n for a, n in state["nodes"].items() if n["name"] != args[1]}
        save(state)
        log("CHANGE", argv)
        return 0
    if args[0] == "config":
        log("READ", argv)
        print(
            "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.1.0.5:16443\n  name: microk8s-cluster"
        )
        return 0
    if args[0] == "kubectl":
        return kubectl(argv, state, args[1:])
    return 2


def kubectl(argv: list[str], state: dict, args: list[str]) -> int:
    nodes = state["nodes"]
    by_name = {node["name"]: node for node in nodes.values()}
    if args[:2] == ["get", "nodes"]:
        log("READ", argv)
        query = args[-1]
        match = re.search(r'address==\\?"([^"\\]+)', query)
        if match:
            node = nodes.get(match.group(1))
            print(node["name"] if node else "", end="")
        else:
            print(" ".join(sorted(nodes)), end="")
        return 0
    if args[:2] == ["get", "node"]:
        log("READ", argv)
        node = by_name[args[2]]
        if ".metadata.labels" in args[-1]:
            for key, value in sorted(node["labels"].items()):
                print(f"{key}={value}")
        else:
            for taint in node["taints"]:
                print(taint)
        return 0
    if args[0] in ("label", "taint"):
        node = by_name[args[2]]
        for item in args[3:]:
            if item.startswith("--"):
                continue
            if args[0] == "label":
                key, value = item.split("=", 1)
                node["labels"][key] = value
            elif item not in node["taints"]:
                node["taints"].append(item)
        save(state)
        log("CHANGE", argv)
        return 0
    return 2


def main() -> int:
    command, argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    env = os.environ
    if command == "snap":
        return snap(argv)
    if command == "microk8s":
        return microk8s(argv)
    if command == "systemd-run":
        log("CHANGE", argv)
        return 0
    if command == "sudo":
        args = [a for a in argv[1:] if a != "-n"]
        # the command line sets PATH (hardware.steps.ROOT_PATH): keep the stubs in front of it
        args = [f"PATH={env['FAKE_BIN']}:{a[5:]}" if a.startswith("PATH=") else a for a in args]
        os.execvp(args[0], args)
    if command == "ssh":
        log("READ", argv)
        if env.get("FAKE_SSH") == "down":
            print("ssh: connect to host: Connection timed out", file=sys.stderr)
            return 255
        key = Path(argv[argv.index("-i") + 1])
        known = next(a.split("=", 1)[1] for a in argv if a.startswith("UserKnownHostsFile="))
        if key.stat().st_mode & 0o077 or "ssh-ed25519" not in Path(known).read_text():
            print("fake ssh: key not private or host key not pinned", file=sys.stderr)
            return 255
        os.execvp("bash", ["bash", "-s"])
    if command == "flock":
        log("READ", argv)
        os.execvp(argv[2], argv[2:])
    log("READ", argv)
    if command == "uname":
        print(env.get("FAKE_MACHINE", "x86_64") if "-m" in argv else "Linux")
    elif command == "timedatectl":
        print(env.get("FAKE_NTP", "yes"))
    elif command == "swapon":
        print(env.get("FAKE_SWAP", ""), end="")
    elif command == "findmnt":
        print(env.get("FAKE_ROOT_SOURCE", "/dev/nvme0n1p2"))
    elif command == "df":
        print("Filesystem 1024-blocks Used Available Capacity Mounted on")
        print(f"/dev/root 100000000 1000 {env.get('FAKE_FREE_KIB', '50000000')} 1% /")
    return 0


if __name__ == "__main__":
    sys.exit(main())
