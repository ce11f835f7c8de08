"""Stand-ins for what cannot run in a chroot: snap, microk8s, systemd (systemd-run, systemctl,
timedatectl, hostnamectl) and, on arm64 hosts, the kernel's `uname -m`.

Runs *inside* the Debian userland with its own python3 (standard library only), dispatched on
the name it was called by, as snapd's /usr/bin/snap dispatches /snap/bin/<app> links. Each is
modelled on the upstream behaviour it imitates, at the versions we pin:
- snap: `snap install` creates the /snap/bin/microk8s link to /usr/bin/snap; nothing puts
  /snap/bin on sudo's PATH (canonical/snapd PR #8884: Debian's secure_path has no /snap/bin).
- microk8s 1.32 (canonical/microk8s tag v1.32, scripts/wrappers/ and
  microk8s-resources/wrappers/; the cluster agent from canonical/microk8s-cluster-agent, which
  v1.32's build-scripts/components/cluster-agent/version.sh builds from main):
  * add-node (add_token.py): token_hex(16) unless --token, appended as `token|expiry`;
    `--format token-check` prints `<token>/<certificate fingerprint>`;
  * join (join.py): a worker join writes var/lock/clustered.lock and no-k8s-dqlite
    (mark_worker_node) and both roles write var/lock/no-cert-reissue (mark_no_cert_reissue);
    there is no "already joined" guard; the agent (pkg/api/v2/join.go) answers "invalid
    token" for an unknown or expired token (TTL tokens stay valid until expiry,
    pkg/snap/snap.go ConsumeClusterToken) and join.py prints "<error> (<status>)" and exits 6;
    the node registers under the joining host's hostname (kube-apiserver prefers InternalIP,
    so the agent does not check it: the same hostname twice is one Node for two machines,
    canonical/microk8s#2273);
  * leave (microk8s-leave.wrapper): refuses without no-cert-reissue and (clustered.lock or
    args/k8s-dqlite), then removes the locks (leave.py);
  * status/kubectl on a worker print a notice and exit 0 (microk8s-status/kubectl.wrapper);
  * every command but status needs root ("Insufficient permissions to access MicroK8s.").
- systemd: `systemd-run --on-active=N --unit U systemctl reboot` schedules a reboot that the
  harness carries out before the next SSH connection; `systemctl is-active U.timer`;
  `hostnamectl set-hostname` writes /etc/hostname and the running kernel's hostname
  (systemd src/hostname/hostnamed.c); `timedatectl show -p NTPSynchronized --value`.

State: the host's kernel in /.fake-host (hostname, units, calls.log) and the site's clusters in
/.fake-cluster/state.json (shared by every host of a test, like the network they share).
Every call is logged to /.fake-host/calls.log as `CHANGE <argv>` (alters a host or the
cluster) or `READ <argv>`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOST = Path("/.fake-host")
SITE = Path("/.fake-cluster")
DATA = Path("/var/snap/microk8s/current")
LOCKS = DATA / "var/lock"
SNAPS = Path("/var/lib/snapd/naomi-standin.json")


def log(kind: str, argv: list[str]) -> None:
    with (HOST / "calls.log").open("a") as handle:
        handle.write(f"{kind} {' '.join(argv)}\n")


def host_info() -> dict[str, Any]:
    return json.loads((HOST / "host.json").read_text())


@contextmanager
def site() -> Iterator[dict[str, Any]]:
    with (SITE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = SITE / "state.json"
        state = json.loads(path.read_text())
        yield state
        path.write_text(json.dumps(state, indent=1, sort_keys=True))


def fail_once(argv: list[str]) -> None:
    """`failures` in the site state: [{"address": a, "argv": prefix, "message": m}] fail once."""
    me = host_info()["address"]
    matched = None
    with site() as state:
        for rule in list(state.get("failures", [])):
            if rule["address"] == me and " ".join(argv).startswith(rule["argv"]):
                state["failures"].remove(rule)
                matched = rule
                break
    if matched is not None:  # after the state is written back
        print(matched["message"])
        log("READ", argv)
        sys.exit(matched.get("code", 1))


def need_root(message: str) -> None:
    if os.geteuid() != 0:
        print(message, file=sys.stderr)
        sys.exit(1)


# --- snap ----------------------------------------------------------------------------------


def snaps() -> dict[str, Any]:
    return json.loads(SNAPS.read_text()) if SNAPS.is_file() else {}


def snap(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else ""
    installed = snaps()
    if action == "list":
        log("READ", argv)
        if "microk8s" not in installed:
            print("error: no matching snaps installed", file=sys.stderr)
            return 1
        print(
            f"Name      Version  Rev   Tracking  Publisher   Notes\nmicrok8s  v1.32.3  7964  {installed['microk8s']}  canonical✓  classic"
        )
        return 0
    if action == "info":
        log("READ", argv)
        print(f"name:      microk8s\ntracking:     {installed['microk8s']}")
        return 0
    if action in ("install", "refresh"):
        need_root("error: access denied (try with sudo)")
        channel = next(a.split("=", 1)[1] for a in argv if a.startswith("--channel="))
        installed["microk8s"] = channel
        SNAPS.parent.mkdir(parents=True, exist_ok=True)
        SNAPS.write_text(json.dumps(installed))
        if action == "install":
            Path("/snap/bin").mkdir(parents=True, exist_ok=True)
            link = Path("/snap/bin/microk8s")
            if not link.is_symlink():
                link.symlink_to("/usr/bin/snap")
            LOCKS.mkdir(parents=True, exist_ok=True)
            (DATA / "args/certs.d").mkdir(parents=True, exist_ok=True)
            (DATA / "args/k8s-dqlite").write_text("--storage-dir=${SNAP_DATA}/var/kubernetes/backend/\n")
            (DATA / "certs").mkdir(parents=True, exist_ok=True)
            (DATA / "certs/csr.conf.template").write_text(
                "[ alt_names ]\nDNS.1 = kubernetes\nIP.1 = 127.0.0.1\nIP.2 = 10.152.183.1\n#MOREIPS\n"
            )
            Path("/var/snap/microk8s/common").mkdir(parents=True, exist_ok=True)
            me = host_info()
            with site() as state:
                # A fresh install is a one-node cluster of its own, named after the host.
                state["clusters"][me["address"]] = {
                    "addons": [],
                    "tokens": [],
                    "nodes": {hostname(): node_object(me, "control-plane")},
                }
                state["member_of"][me["address"]] = me["address"]
        log("CHANGE", argv)
        return 0
    return 2


def hostname() -> str:
    return (HOST / "hostname").read_text().strip()


def node_object(me: dict[str, Any], role: str) -> dict[str, Any]:
    kind = "microk8s-controlplane" if role == "control-plane" else "microk8s-worker"
    return {
        "address": me["address"],
        "role": role,
        "labels": {
            "kubernetes.io/arch": me["arch"],
            "kubernetes.io/hostname": hostname(),
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/" + kind: kind,
        },
        "annotations": {},
        "taints": [],
    }


# --- microk8s ----------------------------------------------------------------------------------


def microk8s(argv: list[str]) -> int:
    if "microk8s" not in snaps():
        print("microk8s: command not found", file=sys.stderr)
        return 127
    args = argv[1:]
    command = args[0] if args else ""
    worker = (LOCKS / "clustered.lock").exists()
    me = host_info()
    if command == "status":
        log("READ", argv)
        if worker:
            print(
                "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the control plane node."
            )
            return 0
        with site() as state:
            cluster = state["clusters"][state["member_of"][me["address"]]]
        if "--format" in args:
            for addon in ("dns", "hostpath-storage", "metrics-server", "rbac", "registry", "ingress"):
                print(f"core/{addon}: {'enabled' if addon in cluster['addons'] else 'disabled'}")
        else:
            print("microk8s is running")
        return 0
    need_root("Insufficient permissions to access MicroK8s.")
    if command == "kubectl":
        if worker:
            log("READ", argv)
            print(
                "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s kubectl on the master."
            )
            return 0
        return kubectl(argv, args[1:], me)
    if command == "enable":
        fail_once(argv)
        with site() as state:
            cluster = state["clusters"][state["member_of"][me["address"]]]
            cluster["addons"] = sorted({*cluster["addons"], args[1]})
        log("CHANGE", argv)
        return 0
    if command == "add-node":
        if worker:
            print(
                "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s add-node on the master."
            )
            return 1
        ttl = int(args[args.index("--token-ttl") + 1]) if "--token-ttl" in args else -1
        token = args[args.index("--token") + 1] if "--token" in args else secrets.token_hex(16)
        with site() as state:
            expiry = state["clock"] + ttl if ttl != -1 else None
            state["clusters"][state["member_of"][me["address"]]]["tokens"].append(
                {"token": token, "expiry": expiry, "issuer": me["address"]}
            )
        log("CHANGE", argv)
        check = fingerprint(me["address"])
        fmt = args[args.index("--format") + 1] if "--format" in args else "pretty"
        if fmt == "token-check":
            print(f"{token}/{check}")
        elif fmt == "token":
            print(token)
        else:
            print(
                f"From the node you wish to join to this cluster, run the following:\nmicrok8s join {me['address']}:25000/{token}/{check}"
            )
        return 0
    if command == "join":
        return join(argv, args, me)
    if command == "leave":
        if not (LOCKS / "no-cert-reissue").exists() or not (
            (LOCKS / "clustered.lock").exists() or (DATA / "args/k8s-dqlite").exists()
        ):
            print("This MicroK8s deployment is not acting as a node in a cluster.")
            return 1
        for lock in ("clustered.lock", "no-k8s-dqlite", "no-cert-reissue"):
            (LOCKS / lock).unlink(missing_ok=True)
        with site() as state:
            origin = state["member_of"][me["address"]]
            node = state["clusters"][origin]["nodes"].get(hostname())
            if node is not None and node["address"] == me["address"]:
                node["left"] = True
            state["member_of"][me["address"]] = me["address"]
            state["clusters"][me["address"]] = {
                "addons": [],
                "tokens": [],
                "nodes": {hostname(): node_object(me, "control-plane")},
            }
        log("CHANGE", argv)
        return 0
    if command == "remove-node":
        with site() as state:
            nodes = state["clusters"][state["member_of"][me["address"]]]["nodes"]
            if args[1] not in nodes:
                print(f"Node {args[1]} does not exist in Kubernetes.")
                return 1
            del nodes[args[1]]
        log("CHANGE", argv)
        return 0
    if command == "config":
        log("READ", argv)
        host = f"[{me['address']}]" if ":" in me["address"] else me["address"]
        print(
            f"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://{host}:16443\n  name: microk8s-cluster"
        )
        return 0
    if command == "refresh-certs":
        log("CHANGE", argv)
        return 0
    print(f"stand-in: unsupported microk8s {' '.join(args)}", file=sys.stderr)
    return 2


def fingerprint(address: str) -> str:
    return hashlib.sha256(f"server.crt of {address}".encode()).hexdigest()[:32]


def join(argv: list[str], args: list[str], me: dict[str, Any]) -> int:
    fail_once(argv)
    connection = args[1]
    role = "worker" if "--worker" in args else "control-plane"
    endpoint, token, *rest = connection.split("/")
    address = endpoint.rsplit(":", 1)[0].strip("[]")
    print(f"Contacting cluster at {endpoint.rsplit(':', 1)[0]}")
    with site() as state:
        if address not in state["member_of"]:
            print(f"Please ensure the master node is reachable. Connection refused: {address}")
            log("READ", argv)
            return 1
        if rest and not fingerprint(address).startswith(rest[0]):
            print(
                f"Joining cluster failed. Could not verify the identity of {address}. Use '--skip-verify' to skip server certificate check."
            )
            return 4
        cluster_id = state["member_of"][address]
        cluster = state["clusters"][cluster_id]
        valid = [
            t
            for t in cluster["tokens"]
            if t["token"] == token and (t["expiry"] is None or state["clock"] < t["expiry"])
        ]
        if not valid:
            print("invalid token (500).")
            log("READ", argv)
            return 6
        if valid[0]["expiry"] is None:
            cluster["tokens"].remove(valid[0])
        state["clusters"].pop(state["member_of"][me["address"]], None)
        state["member_of"][me["address"]] = cluster_id
        name = hostname()
        previous = cluster["nodes"].get(name)
        if previous is not None and previous["address"] != me["address"]:
            state.setdefault("hostname_collisions", []).append([name, previous["address"], me["address"]])
        cluster["nodes"][name] = node_object(me, role)
    if role == "worker":
        for lock in ("clustered.lock", "no-k8s-dqlite"):
            (LOCKS / lock).touch(mode=0o700)
    (LOCKS / "no-cert-reissue").touch(mode=0o700)
    log("CHANGE", argv)
    print("Successfully joined the cluster.")
    return 0


def kubectl(argv: list[str], args: list[str], me: dict[str, Any]) -> int:
    with site() as state:
        cluster = state["clusters"][state["member_of"][me["address"]]]
        nodes: dict[str, Any] = cluster["nodes"]
        if args[:2] == ["get", "nodes"]:
            log("READ", argv)
            query = args[-1]
            match = re.search(r'address==\\?"([^"\\]+)', query)
            if match:  # naomi before issue 14 looked nodes up by address
                print(next((n for n, o in nodes.items() if o["address"] == match.group(1)), ""), end="")
            else:
                print(" ".join(sorted(o["address"] for o in nodes.values())), end="")
            return 0
        if args[:2] == ["get", "node"]:
            log("READ", argv)
            node = nodes.get(args[2])
            if node is None:
                print(f'Error from server (NotFound): nodes "{args[2]}" not found', file=sys.stderr)
                return 1
            template = args[-1] if "-o" in args else ""
            if ".metadata.labels" in template:
                for key, value in sorted(node["labels"].items()):
                    print(f"{key}={value}")
            elif ".spec.taints" in template:
                for taint in node["taints"]:
                    print(taint)
            elif "annotations" in template:
                key = re.search(r'"(naomi\.io/[^"]+)"', template)
                print(node["annotations"].get(key.group(1) if key else "", "<no value>"), end="")
            else:
                print(f"NAME {args[2]}")
            return 0
        if args[0] in ("label", "taint", "annotate") and args[1] == "node":
            node = nodes[args[2]]
            for item in args[3:]:
                if item.startswith("--"):
                    continue
                if args[0] == "label":
                    if item.endswith("-"):
                        node["labels"].pop(item[:-1], None)
                    else:
                        key, value = item.split("=", 1)
                        node["labels"][key] = value
                elif args[0] == "annotate":
                    key, value = item.split("=", 1)
                    node["annotations"][key] = value
                elif item.endswith("-"):
                    key, effect = item[:-1].split(":")
                    node["taints"] = [
                        t for t in node["taints"] if not (t.split("=")[0] == key and t.endswith(":" + effect))
                    ]
                else:
                    key = item.split("=")[0]
                    effect = item.rsplit(":", 1)[1]
                    node["taints"] = [
                        t for t in node["taints"] if not (t.split("=")[0] == key and t.endswith(":" + effect))
                    ]
                    node["taints"].append(item)
            log("CHANGE", argv)
            return 0
    print(f"stand-in: unsupported kubectl {' '.join(args)}", file=sys.stderr)
    return 2


# --- systemd and the kernel ------------------------------------------------------------------


def units() -> dict[str, Any]:
    path = HOST / "units.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def systemd_run(argv: list[str]) -> int:
    need_root("Failed to start transient timer unit: Access denied")
    unit = argv[argv.index("--unit") + 1]
    delay = next(a.split("=", 1)[1] for a in argv if a.startswith("--on-active="))
    command = [a for a in argv[1:] if not a.startswith("--on-active=") and a not in ("--unit", unit)]
    scheduled = units()
    if f"{unit}.timer" in scheduled:
        print(
            f"Failed to start transient timer unit: Unit {unit}.timer was already loaded or has a fragment file.",
            file=sys.stderr,
        )
        return 1
    scheduled[f"{unit}.timer"] = {"on_active": delay, "command": command}
    (HOST / "units.json").write_text(json.dumps(scheduled))
    if command == ["systemctl", "reboot"]:
        (HOST / "pending-reboot").write_text(delay + "\n")
    log("CHANGE", argv)
    print(f"Running timer as unit: {unit}.timer\nWill run service as unit: {unit}.service")
    return 0


def systemctl(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--quiet"]
    if args[:1] == ["is-active"]:
        log("READ", argv)
        active = args[1] in units()
        if "--quiet" not in argv:
            print("active" if active else "inactive")
        return 0 if active else 3
    if args[:1] == ["reboot"]:
        need_root("Call to Reboot failed: Access denied")
        (HOST / "pending-reboot").write_text("0\n")
        log("CHANGE", argv)
        return 0
    log("READ", argv)
    return 0


def hostnamectl(argv: list[str]) -> int:
    if argv[1:2] == ["set-hostname"]:
        need_root("Could not set static hostname: Access denied")
        name = argv[2]
        Path("/etc/hostname").write_text(name + "\n")
        (HOST / "hostname").write_text(name + "\n")
        subprocess.run(["/usr/bin/hostname", name], check=True)
        log("CHANGE", argv)
        return 0
    log("READ", argv)
    print(f" Static hostname: {hostname()}")
    return 0


def timedatectl(argv: list[str]) -> int:
    log("READ", argv)
    print("yes" if host_info().get("ntp", True) else "no")
    return 0


def uname(argv: list[str]) -> int:
    if argv[1:] == ["-m"]:
        print(host_info()["machine"])
        return 0
    os.execv("/usr/lib/naomi-standin/uname.real", ["uname", *argv[1:]])
    return 0


def main() -> int:
    name = os.path.basename(sys.argv[1])
    argv = [name, *sys.argv[2:]]
    handlers = {
        "snap": snap,
        "microk8s": microk8s,
        "systemd-run": systemd_run,
        "systemctl": systemctl,
        "hostnamectl": hostnamectl,
        "timedatectl": timedatectl,
        "uname": uname,
    }
    return handlers[name](argv)


if __name__ == "__main__":
    sys.exit(main())
