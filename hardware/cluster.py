"""A microk8s cluster provisioned over SSH: one component per host, steps in a fixed order.

Per node: preflight (checks, then hostname = inventory name) -> [Raspberry Pi: kernel cmdline
-> wait for the reboot (operator side) -> verify memory cgroup] -> install microk8s -> join
(operator side: every node but the first control plane; control planes one at a time in
inventory order, then workers) -> labels and taints. The first control plane bootstraps,
enables the addons and hands out the kubeconfig (a secret output, pointing at `apiEndpoint`
when given, else at itself). Removing a node from the inventory runs its `leave` step's delete:
the node leaves (skipped when unreachable) and the first control plane forgets it.

Lifecycle of each step (pulumi-command 1.2.1, see `hardware.steps`): no step has `triggers`,
so nothing is ever replaced; script, parameter, channel, TTL or SSH-key changes update a step
in place; the only destructive delete is `leave`, which runs when the node leaves the
inventory (its resource name is the node's identity). `STEP_LIFECYCLE` states it per step.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from hardware.inventory import Node
from hardware.steps import connection, local_command, script_command, script_step, ssh_environment

JOIN_PORT = 25000
API_PORT = 16443

# What updates a step, what would replace it, and what its delete does.
STEP_LIFECYCLE: dict[str, tuple[str, str, str]] = {
    "preflight": ("its script, arch, board or node name", "never", "nothing"),
    "cmdline": ("its script", "never", "nothing"),
    "reboot-wait": ("its script, the cmdline step's output, SSH settings", "never", "nothing"),
    "verify-cgroup": ("its script", "never", "nothing"),
    "install": ("its script, channel, API endpoint, registry", "never", "nothing"),
    "addons": ("its script or the addon list", "never", "nothing"),
    "join": ("its scripts, TTL, addresses, SSH settings", "never", "nothing (leave does)"),
    "leave": (
        "its scripts, addresses, SSH settings (the delete then uses the new ones)",
        "never",
        "DESTRUCTIVE: the node leaves, the first control plane runs remove-node --force",
    ),
    "labels": ("its script, labels or taints", "never", "nothing"),
    "kubeconfig": ("its script or the API endpoint", "never", "nothing"),
}


def url_host(address: str) -> str:
    """An address as it goes into a URL or host:port (IPv6 in brackets)."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


@dataclass(frozen=True, kw_only=True)
class RebootWait:
    """How long the operator side waits for a Pi to come back: attempts x interval seconds."""

    attempts: int = 120
    interval_seconds: int = 5


@dataclass(frozen=True, kw_only=True)
class MicroK8sClusterArgs:
    nodes: tuple[Node, ...]
    ssh_private_key: pulumi.Input[str]
    channel: str
    addons: tuple[str, ...]
    join_token_ttl_seconds: int = 300
    api_endpoint: str | None = None
    registry: str | None = None
    reboot_wait: RebootWait = RebootWait()

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("MicroK8sClusterArgs.nodes must not be empty")
        if not any(node.role == "control-plane" for node in self.nodes):
            raise ValueError("MicroK8sClusterArgs.nodes needs a control-plane node")

    @property
    def bootstrap(self) -> Node:
        """The first control-plane node in inventory order."""
        return next(node for node in self.nodes if node.role == "control-plane")

    @property
    def api_server(self) -> str:
        """The URL the kubeconfig uses: the HA endpoint when given, else the first control plane."""
        return f"https://{url_host(self.api_endpoint or self.bootstrap.address)}:{API_PORT}"


@dataclass(frozen=True)
class NodeStepsArgs:
    """Internal: what a node needs from its cluster."""

    node: Node
    private_key: pulumi.Input[str]
    channel: str
    api_san: str | None
    registry: str | None
    reboot_wait: RebootWait


class MicroK8sNode(pulumi.ComponentResource):
    """One host: preflight, Raspberry Pi kernel settings and reboot, the microk8s install."""

    installed: command.remote.Command

    def __init__(self, name: str, args: NodeStepsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("naomi:hardware:MicroK8sNode", name, None, opts)
        node = args.node
        ssh = connection(node, args.private_key)
        previous: list[pulumi.Resource] = []

        def step(step_name: str, script: str, parameters: dict[str, str]) -> command.remote.Command:
            resource = script_step(
                f"{name}-{step_name}",
                ssh,
                script,
                parameters,
                pulumi.ResourceOptions(parent=self, depends_on=list(previous)),
            )
            previous[:] = [resource]
            return resource

        step(
            "preflight",
            "preflight.sh",
            {"EXPECTED_ARCH": node.arch, "BOARD": node.board, "NODE_NAME": node.name},
        )
        if node.is_pi:
            cmdline = step("cmdline", "pi-cmdline.sh", {"NODE_NAME": node.name})
            # The reboot is scheduled to happen after the cmdline step returned; pulumi-command
            # would start the next remote step at once, against the old kernel (its dial
            # retries help only when dialling fails). The wait runs on the operator's machine,
            # one short SSH session per check, until the host is back on a new boot id.
            waited = command.local.Command(
                f"{name}-reboot-wait",
                create=local_command("wait-for-reboot.sh"),
                update=local_command("wait-for-reboot.sh"),
                environment={
                    "NODE_NAME": node.name,
                    **ssh_environment("NODE", node),
                    "NAOMI_SSH_PRIVATE_KEY": args.private_key,
                    "CMDLINE_OUTPUT": cmdline.stdout,
                    "WAIT_ATTEMPTS": str(args.reboot_wait.attempts),
                    "WAIT_INTERVAL": str(args.reboot_wait.interval_seconds),
                },
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cmdline]),
            )
            previous[:] = [waited]
            step("verify-cgroup", "pi-verify-cgroup.sh", {"NODE_NAME": node.name})
        self.installed = step(
            "install",
            "install-microk8s.sh",
            {"CHANNEL": args.channel, "API_SAN": args.api_san or "", "REGISTRY": args.registry or ""},
        )
        self.register_outputs({})


class MicroK8sCluster(pulumi.ComponentResource):
    """Bare machines to a labelled microk8s cluster; exposes the kubeconfig as a secret."""

    kubeconfig: pulumi.Output[str]
    addons: command.remote.Command

    def __init__(
        self, name: str, args: MicroK8sClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:hardware:MicroK8sCluster", name, None, opts)
        private_key = pulumi.Output.secret(args.ssh_private_key)
        bootstrap = args.bootstrap
        bootstrap_ssh = connection(bootstrap, private_key)
        control_planes = [n for n in args.nodes if n.role == "control-plane"]
        if len(control_planes) >= 3 and args.api_endpoint is None:
            pulumi.log.warn(
                f"{len(control_planes)} control planes but no naomi:cluster.apiEndpoint: the kubeconfig "
                f"points at {bootstrap.name} only and stops working when it is down (docs/nodes.md)"
            )

        hosts = {
            node.name: MicroK8sNode(
                f"{name}-{node.name}",
                NodeStepsArgs(
                    node,
                    private_key,
                    args.channel,
                    args.api_endpoint if node.role == "control-plane" else None,
                    args.registry,
                    args.reboot_wait,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node in args.nodes
        }

        self.addons = script_step(
            f"{name}-{bootstrap.name}-addons",
            bootstrap_ssh,
            "addons.sh",
            {"ADDONS": " ".join(args.addons)},
            pulumi.ResourceOptions(
                parent=hosts[bootstrap.name], depends_on=[hosts[bootstrap.name].installed]
            ),
        )

        # Control-plane joins run one at a time in inventory order (dqlite membership changes
        # are serialised); workers join in parallel after them. No step depends on all nodes,
        # so the dependency graph stays linear in the inventory size.
        last_control_plane: pulumi.Resource = self.addons
        joined_by_node: dict[str, pulumi.Resource] = {bootstrap.name: self.addons}
        bootstrap_endpoint = f"{url_host(bootstrap.address)}:{JOIN_PORT}"
        for node in control_planes + [n for n in args.nodes if n.role == "worker"]:
            if node is bootstrap:
                continue
            host = hosts[node.name]
            reach = {
                "NODE_NAME": node.name,
                **ssh_environment("NODE", node),
                **ssh_environment("BOOTSTRAP", bootstrap),
                "NAOMI_SSH_PRIVATE_KEY": private_key,
            }
            # The token is issued inside this step, each time it runs, and handed to the node on
            # standard input: a failed join is retried by the next `pulumi up` with a fresh
            # token, and no token is ever in Pulumi state, a command line or an environment.
            join = local_command("join-over-ssh.sh")
            joined = command.local.Command(
                f"{name}-{node.name}-join",
                create=join,
                update=join,
                environment={
                    **reach,
                    "REMOTE_JOINED": script_command("joined.sh", {}),
                    "REMOTE_ADD_NODE": script_command(
                        "add-node.sh", {"TOKEN_TTL": str(args.join_token_ttl_seconds)}
                    ),
                    "REMOTE_JOIN": script_command(
                        "join.sh",
                        {"BOOTSTRAP_ENDPOINT": bootstrap_endpoint, "ROLE": node.role, "NODE_NAME": node.name},
                    ),
                },
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=host, depends_on=[last_control_plane, host.installed]),
            )
            # Leaving runs from the operator's machine so that a host that is already gone
            # cannot block its own removal (a remote command would fail to connect). Its
            # delete is the only destructive one, and nothing but the node's removal from
            # the inventory (or a destroy) runs it: no triggers, so no edit replaces it.
            command.local.Command(
                f"{name}-{node.name}-leave",
                create=f"echo 'naomi: {node.name} joined; on removal it leaves first'",
                delete=local_command("leave-over-ssh.sh"),
                environment={
                    **reach,
                    "REMOTE_LEAVE": script_command("leave.sh", {}),
                    "REMOTE_REMOVE": script_command("remove-node.sh", {"NODE_NAME": node.name}),
                },
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=host, depends_on=[joined]),
            )
            joined_by_node[node.name] = joined
            if node.role == "control-plane":
                last_control_plane = joined

        for node in args.nodes:
            script_step(
                f"{name}-{node.name}-labels",
                bootstrap_ssh,
                "label.sh",
                {
                    "NODE_NAME": node.name,
                    "LABELS": " ".join(f"{k}={v}" for k, v in sorted(node.node_labels().items())),
                    "TAINTS": " ".join(f"{t.key}={t.value}:{t.effect}" for t in node.taints),
                },
                pulumi.ResourceOptions(parent=hosts[node.name], depends_on=[joined_by_node[node.name]]),
            )

        fetched = script_step(
            f"{name}-kubeconfig",
            bootstrap_ssh,
            "kubeconfig.sh",
            {"API_SERVER": args.api_server},
            pulumi.ResourceOptions(
                parent=self, depends_on=[last_control_plane], additional_secret_outputs=["stdout"]
            ),
            logging="stderr",
        )
        self.kubeconfig = pulumi.Output.secret(fetched.stdout)
        self.register_outputs({"kubeconfig": self.kubeconfig})
