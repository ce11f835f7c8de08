"""Provisioning on a real Debian bookworm userland (tests/userland): the stack's own steps,
run in dependency order as `pulumi up` would, against hosts that behave like real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation, evaluate, stack_program
from tests.userland import require_userland
from tests.userland.host import Kernel, Site
from tests.userland.plan import State, failures, run

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserlandTestHostKey"
ADDRESSES = {
    "cp-1": "198.51.100.10",
    "cp-2": "198.51.100.11",
    "cp-3": "198.51.100.12",
    "x86-1": "198.51.100.20",
    "pi-1": "198.51.100.21",
    "pi-2": "198.51.100.22",
}
BOARDS = {"pi-1": "rpi5", "pi-2": "rpi4"}


def node(name: str, role: str = "worker", **extra: object) -> dict[str, object]:
    pi = name in BOARDS
    entry: dict[str, object] = {
        "name": name,
        "address": ADDRESSES[name],
        "arch": "arm64" if pi else "amd64",
        "board": BOARDS.get(name, "generic"),
        "role": role,
        "hostKey": f"{KEY}{name.replace('-', '')}",
    }
    if pi:
        entry["sshUser"] = "pi"
    entry.update(extra)
    return entry


def evaluate_nodes(nodes: list[dict[str, object]], **cluster: object) -> Evaluation:
    config = {
        "naomi:cluster": json.dumps({"mode": "microk8s", "nodes": nodes, **cluster}),
        "naomi:sshPrivateKey": "<secret:naomi:sshPrivateKey>",
        "naomi:layers": json.dumps({"platform": False}),
    }
    return evaluate(stack_program(PROJECT_DIR), "userland", config, ["naomi:sshPrivateKey"])


def make_site(tmp_path: Path, nodes: list[dict[str, object]], **kernels: Kernel) -> Site:
    site = Site(require_userland(), tmp_path)
    for entry in nodes:
        name = str(entry["name"])
        pi = name in BOARDS
        kernel = kernels.get(name.replace("-", "_")) or (
            Kernel(machine="aarch64", board=BOARDS[name]) if pi else Kernel()
        )
        site.add(
            str(entry["address"]),
            user="pi" if pi else "ubuntu",
            hostname="raspberrypi" if pi else "ubuntu",
            host_key=str(entry["hostKey"]),
            kernel=kernel,
        )
    return site


def ok(runs: list) -> None:  # type: ignore[type-arg]
    assert not failures(runs), "\n".join(
        f"{r.name} {r.operation}: {r.stdout}\n{r.stderr}" for r in failures(runs)
    )


EDGE = [node("cp-1", "control-plane"), node("pi-1", labels={"naomi.io/site": "bench"}), node("pi-2")]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, Evaluation, State, list]:  # type: ignore[type-arg]
    """EDGE provisioned once (the first run); tests below read it, the last one removes nodes."""
    site = make_site(tmp_path_factory.mktemp("edge"), EDGE)
    evaluation, state = evaluate_nodes(EDGE), State()
    return site, evaluation, state, run(evaluation, site, state)


def test_first_run_provisions_with_the_reboot_and_a_second_changes_nothing(edge) -> None:  # type: ignore[no-untyped-def]
    site, evaluation, state, runs = edge
    ok(runs)
    pi = site.hosts[ADDRESSES["pi-1"]]
    assert "cgroup_enable=memory cgroup_memory=1" in pi.read("/boot/firmware/cmdline.txt")
    wait = next(r for r in runs if r.name == "cluster-pi-1-reboot-wait")
    assert "up on boot" in wait.stdout and pi.boot_id in wait.stdout
    nodes = site.cluster_nodes(ADDRESSES["cp-1"])
    assert sorted(nodes) == ["cp-1", "pi-1", "pi-2"]
    assert nodes["pi-1"]["labels"]["naomi.io/site"] == "bench"
    before = {address: (host.snapshot(), len(host.changes())) for address, host in site.hosts.items()}
    assert run(evaluation, site, state) == []  # nothing changed: pulumi runs nothing
    again = run(evaluation, site, state, force_update=True)  # every step's update, as after edits
    ok(again)
    after = {address: (host.snapshot(), len(host.changes())) for address, host in site.hosts.items()}
    assert after == before


def test_pi_without_memory_cgroup_fails_with_the_actionable_message(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane"), node("pi-1")]
    site = make_site(
        tmp_path, nodes, pi_1=Kernel(machine="aarch64", board="rpi5", honours_cgroup_flags=False)
    )
    runs = run(evaluate_nodes(nodes), site, State())
    (failed,) = failures(runs)
    assert failed.name == "cluster-pi-1-verify-cgroup"
    assert failed.stderr.startswith(
        "naomi pi-1: the memory cgroup controller is missing after reboot (cgroup v2).\n"
        "  Kubernetes cannot enforce memory limits without it."
    )
    assert "sudo apt full-upgrade" in failed.stderr
    assert site.hosts[ADDRESSES["pi-1"]].changes()[-1].startswith("CHANGE systemd-run")  # rebooted once


def test_cgroup_v1_pi_with_the_flags_already_is_not_rebooted(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane"), node("pi-2")]
    site = make_site(tmp_path, nodes, pi_2=Kernel(machine="aarch64", board="rpi4", cgroup_version=1))
    pi = site.hosts[ADDRESSES["pi-2"]]
    pi._write("/boot/firmware/cmdline.txt", "root=PARTUUID=1 cgroup_memory=1 rootwait cgroup_enable=memory\n")
    pi.boot()
    boot_id = pi.boot_id
    runs = run(evaluate_nodes(nodes), site, State())
    ok(runs)
    verify = next(r for r in runs if r.name == "cluster-pi-2-verify-cgroup")
    assert verify.stdout == "naomi pi-2: memory cgroup controller present (cgroup v1)\n"
    assert pi.boot_id == boot_id and not any("systemd-run" in c for c in pi.changes())


def test_failure_half_way_converges_on_the_next_run(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane"), node("x86-1")]
    site = make_site(tmp_path, nodes)
    site.fail_once(ADDRESSES["cp-1"], "microk8s enable metrics-server", "Addon metrics-server: timed out")
    evaluation, state = evaluate_nodes(nodes), State()
    first = run(evaluation, site, state)
    assert [r.name for r in failures(first)] == ["cluster-cp-1-addons"]
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1"]  # nobody joined yet
    second = run(evaluation, site, state)
    ok(second)
    assert second[0].name == "cluster-cp-1-addons"  # the failed step is retried, the rest resumes
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1", "x86-1"]
    assert run(evaluation, site, state) == []


def test_a_join_whose_first_attempt_failed_succeeds_on_retry(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane"), node("x86-1")]
    site = make_site(tmp_path, nodes)
    site.fail_once(
        ADDRESSES["x86-1"], "microk8s join", "Please ensure the master node is reachable. timed out"
    )
    evaluation, state = evaluate_nodes(nodes), State()
    assert [r.name for r in failures(run(evaluation, site, state))] == ["cluster-x86-1-join"]
    site.advance_clock(3600)  # the operator comes back later: any token issued then has expired
    retry = run(evaluation, site, state)
    ok(retry)
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1", "x86-1"]


def test_stock_hostnames_are_set_to_the_inventory_names(edge) -> None:  # type: ignore[no-untyped-def]
    site, _, _, runs = edge  # both Pis booted as raspberrypi, the x86 as ubuntu
    ok(runs)
    preflight = next(r for r in runs if r.name == "cluster-pi-2-preflight")
    assert "naomi preflight pi-2: hostname was 'raspberrypi', now 'pi-2'" in preflight.stdout
    for name in ("cp-1", "pi-1", "pi-2"):
        host = site.hosts[ADDRESSES[name]]
        assert host.read("/etc/hostname") == f"{name}\n"
        assert f"127.0.1.1\t{name}\n" in host.read("/etc/hosts")
        assert host.session("hostname").stdout == f"{name}\n"
        assert "unable to resolve host" not in host.session("sudo -n true").stderr
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1", "pi-1", "pi-2"]
    assert "hostname_collisions" not in site.state()


def test_a_renamed_cluster_node_is_refused_with_the_fix(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane")]
    site = make_site(tmp_path, nodes)
    ok(run(evaluate_nodes(nodes), site, State()))
    renamed = [node("cp-1", "control-plane") | {"name": "cp-one"}]
    ADDRESSES["cp-one"] = ADDRESSES["cp-1"]
    failed = failures(run(evaluate_nodes(renamed), site, State()))
    assert failed[0].stderr.strip() == (
        "naomi preflight cp-one: the hostname is 'cp-1' and microk8s already runs under it; renaming a "
        "cluster node breaks it: name the inventory entry 'cp-1', or remove microk8s "
        "(sudo snap remove microk8s --purge) and run again"
    )


def test_microk8s_is_found_under_debian_sudo(tmp_path: Path) -> None:
    from hardware.steps import script_command

    site = make_site(tmp_path, [node("x86-1")])
    host = site.hosts[ADDRESSES["x86-1"]]
    assert 'secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"' in host.read(
        "/etc/sudoers"
    )
    installed = host.session(
        script_command("install-microk8s.sh", {"CHANNEL": "1.32/stable", "API_SAN": "", "REGISTRY": ""})
    )
    assert installed.returncode == 0, installed.stderr
    assert host.session("sudo -n sh -c 'command -v microk8s' || echo 'not on PATH'").stdout == "not on PATH\n"
    left = host.session(script_command("leave.sh", {}))
    assert left.stdout == "naomi: not part of a cluster; nothing to leave\n"


HA = [
    node("cp-1", "control-plane"),
    node("cp-2", "control-plane"),
    node("cp-3", "control-plane"),
    node("x86-1"),
]


def test_ha_control_planes_are_recognised_as_joined_and_leave(tmp_path: Path) -> None:
    site = make_site(tmp_path, HA)
    evaluation, state = evaluate_nodes(HA, apiEndpoint="fd00::100"), State()
    runs = run(evaluation, site, state)
    ok(runs)
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1", "cp-2", "cp-3", "x86-1"]
    kubeconfig = next(r for r in runs if r.name == "cluster-kubeconfig")
    assert "    server: https://[fd00::100]:16443\n" in kubeconfig.stdout
    for name in ("cp-1", "cp-2", "cp-3"):
        template = site.hosts[ADDRESSES[name]].read("/var/snap/microk8s/current/certs/csr.conf.template")
        assert "IP.99 = fd00::100\n#MOREIPS" in template
    site.advance_clock(3600)  # every token has expired
    again = run(evaluation, site, state, force_update=True)
    ok(again)
    for name in ("cp-2", "cp-3", "x86-1"):
        joins = [c for c in site.hosts[ADDRESSES[name]].changes() if c.startswith("CHANGE microk8s join")]
        assert len(joins) == 1, (name, joins)
    from hardware.steps import script_command

    left = site.hosts[ADDRESSES["cp-3"]].session(script_command("leave.sh", {}))
    assert left.stdout == "naomi: node left the cluster\n", left
    assert "CHANGE microk8s leave" in site.hosts[ADDRESSES["cp-3"]].changes()


def test_join_tokens_are_on_no_command_line_but_microk8s_join_on_the_joining_node(edge) -> None:  # type: ignore[no-untyped-def]
    site, evaluation, _, runs = edge
    for record in evaluation.records:
        text = json.dumps({k: record.inputs.get(k) for k in ("create", "update", "delete")})
        assert "<secret" not in text, record.name  # pulumi-command quotes commands in errors
        if record.type == "command:remote:Command":
            assert "<secret" not in json.dumps(record.inputs.get("environment") or {}), record.name
    ok(runs)
    tokens = {token["token"] for cluster in site.state()["clusters"].values() for token in cluster["tokens"]}
    assert len(tokens) == 2
    for host in site.hosts.values():
        for call in host.calls():
            for token in tokens & set(re.split(r"[ /]", call)):
                assert call.startswith("CHANGE microk8s join "), (host.address, call, token)


def test_labels_and_taints_converge(tmp_path: Path) -> None:
    nodes = [node("cp-1", "control-plane"), node("x86-1", labels={"naomi.io/site": "bench"})]
    site = make_site(tmp_path, nodes)
    state = State()
    ok(run(evaluate_nodes(nodes), site, state))
    tainted = [
        nodes[0],
        node("x86-1", taints=[{"key": "naomi.io/low-memory", "value": "true", "effect": "PreferNoSchedule"}]),
    ]
    ok(run(evaluate_nodes(tainted), site, state))
    worker = site.cluster_nodes(ADDRESSES["cp-1"])["x86-1"]
    assert "naomi.io/site" not in worker["labels"]
    assert worker["labels"]["kubernetes.io/arch"] == "amd64"  # the kubelet's own labels stay
    assert worker["taints"] == ["naomi.io/low-memory=true:PreferNoSchedule"]
    ok(run(evaluate_nodes(nodes), site, state))
    worker = site.cluster_nodes(ADDRESSES["cp-1"])["x86-1"]
    assert worker["labels"]["naomi.io/site"] == "bench" and worker["taints"] == []


def test_a_vanished_host_is_skipped_on_removal(edge) -> None:  # type: ignore[no-untyped-def]
    site, _, state, _ = edge  # last user of the fixture: removes nodes
    site.hosts[ADDRESSES["pi-2"]].vanish()
    removal = run(evaluate_nodes(EDGE[:2]), site, state)  # pi-2 removed from the inventory
    ok(removal)
    assert {r.operation for r in removal} == {"delete"}
    (leave,) = [r for r in removal if r.stdout or r.stderr]  # only the leave step has a delete
    assert leave.name == "cluster-pi-2-leave"
    assert "naomi pi-2: unreachable or failed to leave; continuing (remove-node follows)" in leave.stderr
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1", "pi-1"]
    ok(run(evaluate_nodes(EDGE[:1]), site, state))  # pi-1 is reachable: it leaves, then is removed
    pi = site.hosts[ADDRESSES["pi-1"]]
    assert "CHANGE microk8s leave" in pi.changes()
    assert not pi.exists("/var/snap/microk8s/current/var/lock/no-cert-reissue")
    assert sorted(site.cluster_nodes(ADDRESSES["cp-1"])) == ["cp-1"]


def test_a_channel_change_refreshes_the_snap(tmp_path: Path) -> None:
    from hardware.steps import script_command

    site = make_site(tmp_path, [node("x86-1")])
    host = site.hosts[ADDRESSES["x86-1"]]
    for channel in ("1.32/stable", "1.33/stable", "1.33/stable"):
        result = host.session(
            script_command("install-microk8s.sh", {"CHANNEL": channel, "API_SAN": "", "REGISTRY": ""})
        )
        assert result.returncode == 0, result.stderr
    assert [c for c in host.changes() if c.startswith("CHANGE snap")] == [
        "CHANGE snap install microk8s --classic --channel=1.32/stable",
        "CHANGE snap refresh microk8s --channel=1.33/stable",
    ]
