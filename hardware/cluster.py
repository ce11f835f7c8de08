"""A microk8s cluster provisioned over SSH: one component per host, steps in a fixed order.

Per node: preflight -> [Raspberry Pi: kernel cmdline -> reboot if changed -> verify memory
cgroup] -> install microk8s -> join (every node but the first control plane, one at a time,
in inventory order) -> labels and taints. The first control plane bootstraps, enables the
addons and hands out the kubeconfig (a secret output, rewritten to its reachable address).
Removing a node from the inventory runs `remove-node` on the first control plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_command as command
import pulumi_random as random

from hardware.inventory import Node
from hardware.steps import connection, fingerprint, script_command, script_step, script_text

JOIN_PORT = 25000


def _with_token(script: str, parameters: dict[str, str], token: str) -> str:
    return script_command(script, {**parameters, "JOIN_TOKEN": token})


@dataclass(frozen=True, kw_only=True)
class MicroK8sClusterArgs:
    nodes: tuple[Node, ...]
    ssh_private_key: pulumi.Input[str]
    channel: str
    addons: tuple[str, ...]
    join_token_ttl_seconds: int = 300

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("MicroK8sClusterArgs.nodes must not be empty")
        if not any(node.role == "control-plane" for node in self.nodes):
            raise ValueError("MicroK8sClusterArgs.nodes needs a control-plane node")

    @property
    def bootstrap(self) -> Node:
        """The first control-plane node in inventory order."""
        return next(node for node in self.nodes if node.role == "control-plane")


@dataclass(frozen=True)
class NodeStepsArgs:
    """Internal: what a node needs from its cluster."""

    node: Node
    private_key: pulumi.Input[str]
    channel: str


class MicroK8sNode(pulumi.ComponentResource):
    """One host: preflight, Raspberry Pi kernel settings, and the microk8s install."""

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
                add_previous_output_in_env=False,
            )
            previous[:] = [resource]
            return resource

        step(
            "preflight",
            "preflight.sh",
            {"EXPECTED_ARCH": node.arch, "BOARD": node.board, "NODE_NAME": node.name},
        )
        if node.is_pi:
            step("cmdline", "pi-cmdline.sh", {"NODE_NAME": node.name})
            step("verify-cgroup", "pi-verify-cgroup.sh", {"NODE_NAME": node.name})
        self.installed = step("install", "install-microk8s.sh", {"CHANNEL": args.channel})
        self.register_outputs({})


class MicroK8sCluster(pulumi.ComponentResource):
    """Bare machines to a labelled microk8s cluster; exposes the kubeconfig as a secret."""

    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: MicroK8sClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:hardware:MicroK8sCluster", name, None, opts)
        private_key = pulumi.Output.secret(args.ssh_private_key)
        bootstrap = args.bootstrap
        bootstrap_ssh = connection(bootstrap, private_key)

        hosts = {
            node.name: MicroK8sNode(
                f"{name}-{node.name}",
                NodeStepsArgs(node, private_key, args.channel),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node in args.nodes
        }

        addon_parameters = {"ADDONS": " ".join(args.addons)}
        addons = script_step(
            f"{name}-{bootstrap.name}-addons",
            bootstrap_ssh,
            "addons.sh",
            addon_parameters,
            pulumi.ResourceOptions(
                parent=hosts[bootstrap.name], depends_on=[hosts[bootstrap.name].installed]
            ),
        )

        # Control-plane joins run one at a time in inventory order (dqlite membership changes
        # are serialised); workers join in parallel after them. No step depends on all nodes,
        # so the dependency graph stays linear in the inventory size.
        last_control_plane: pulumi.Resource = addons
        joined_by_node: dict[str, pulumi.Resource] = {bootstrap.name: addons}
        ordered = [n for n in args.nodes if n.role == "control-plane"] + [
            n for n in args.nodes if n.role == "worker"
        ]
        for node in ordered:
            if node is bootstrap:
                continue
            host = hosts[node.name]
            token = random.RandomPassword(
                f"{name}-{node.name}-join-token",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=host),
            )
            issue_parameters = {
                "NODE_ADDRESS": node.address,
                "TOKEN_TTL": str(args.join_token_ttl_seconds),
            }
            issued = command.remote.Command(
                f"{name}-{node.name}-issue-token",
                connection=bootstrap_ssh,
                create=token.result.apply(partial(_with_token, "add-node.sh", issue_parameters)),
                delete=script_command("remove-node.sh", {"NODE_ADDRESS": node.address}),
                triggers=[fingerprint("add-node.sh", issue_parameters)],
                opts=pulumi.ResourceOptions(parent=host, depends_on=[last_control_plane, host.installed]),
            )
            join_parameters = {
                "BOOTSTRAP_ADDRESS": bootstrap.address,
                "JOIN_PORT": str(JOIN_PORT),
                "ROLE": node.role,
            }
            joined = command.remote.Command(
                f"{name}-{node.name}-join",
                connection=connection(node, private_key),
                create=token.result.apply(partial(_with_token, "join.sh", join_parameters)),
                triggers=[fingerprint("join.sh", join_parameters)],
                opts=pulumi.ResourceOptions(parent=host, depends_on=[issued]),
            )
            # Leaving runs from the operator's machine so that a host that is already gone
            # cannot block its own removal (a remote command would fail to connect).
            command.local.Command(
                f"{name}-{node.name}-leave",
                create=f"echo 'naomi: {node.name} joined; on removal it leaves first'",
                delete=script_command("leave-over-ssh.sh", {}, as_root=False),
                environment={
                    "NODE_ADDRESS": node.address,
                    "SSH_PORT": str(node.ssh_port),
                    "SSH_USER": node.ssh_user,
                    "HOST_KEY": node.host_key,
                    "NAOMI_SSH_PRIVATE_KEY": private_key,
                    "LEAVE_SCRIPT": script_text("leave.sh"),
                },
                triggers=[fingerprint("leave-over-ssh.sh", {}), fingerprint("leave.sh", {})],
                opts=pulumi.ResourceOptions(parent=host, depends_on=[joined]),
            )
            joined_by_node[node.name] = joined
            if node.role == "control-plane":
                last_control_plane = joined

        for node in args.nodes:
            label_parameters = {
                "NODE_ADDRESS": node.address,
                "LABELS": " ".join(f"{k}={v}" for k, v in sorted(node.node_labels().items())),
                "TAINTS": " ".join(f"{t.key}={t.value}:{t.effect}" for t in node.taints),
            }
            script_step(
                f"{name}-{node.name}-labels",
                bootstrap_ssh,
                "label.sh",
                label_parameters,
                pulumi.ResourceOptions(parent=hosts[node.name], depends_on=[joined_by_node[node.name]]),
            )

        kubeconfig_parameters = {"API_ADDRESS": bootstrap.address}
        fetched = script_step(
            f"{name}-kubeconfig",
            bootstrap_ssh,
            "kubeconfig.sh",
            kubeconfig_parameters,
            pulumi.ResourceOptions(
                parent=self, depends_on=[last_control_plane], additional_secret_outputs=["stdout"]
            ),
            logging="stderr",
        )
        self.kubeconfig = pulumi.Output.secret(fetched.stdout)
        self.register_outputs({"kubeconfig": self.kubeconfig})
