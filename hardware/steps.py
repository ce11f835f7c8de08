"""Turning a shipped script into a command: one place for quoting, PATH, SSH and lifecycle.

Each provisioning step runs a file from `hardware/scripts/` through a quoted heredoc, so the
render shows exactly the script that runs. The script arrives as the argument of `bash -c`
(it is public: it is in this repository) and standard input stays free for secrets, which
never appear on a command line: pulumi-command quotes the whole command in its error
messages (`fmt.Errorf("%w: running %q:\\n%s", err, cmd, ...)` in
provider/pkg/provider/remote/commandOutputs.go at v1.2.1) and `ps` shows it to every user.

Lifecycle (pulumi-command 1.2.1): `triggers` is tagged `replaceOnChanges`
(provider/pkg/provider/common/inputs.go) and a replace runs the *old* resource's `delete`
(Delete reads `req.State`, provider/pkg/provider/remote/commandController.go); every other
input change is an update, which runs `update` (or `create` when there is none). So no step
here has triggers: a script or parameter edit changes `create`/`update`, which updates the
step in place, and a step with a destructive delete is tied to the node's identity (its
resource name) only.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from importlib import resources

import pulumi
import pulumi_command as command

from hardware.inventory import Node

HEREDOC = "NAOMI_SCRIPT_EOF"

# Debian's sudo resets PATH to its secure_path, which has no /snap/bin (snapd PR #8884,
# "Debian does not allow $SNAP_MOUNT_DIR/bin in sudo secure_path"; a sudoers drop-in cannot
# extend it, PR #8885), so `microk8s` is "command not found" under `sudo` on Raspberry Pi
# OS and Debian. `env PATH=...` runs after sudo, as root, and sets it explicitly.
ROOT_PATH = "/snap/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def script_text(name: str) -> str:
    """A script shipped in `hardware/scripts/`, read from the installed package."""
    return resources.files("hardware").joinpath("scripts", name).read_text()


def _embedded(name: str, text: str) -> str:
    if HEREDOC in text:
        raise ValueError(f"script {name} must not contain the heredoc marker {HEREDOC}")
    return f"\"$(cat <<'{HEREDOC}'\n{text}{HEREDOC}\n)\" naomi-{name}"


def script_command(name: str, parameters: Mapping[str, str]) -> str:
    """`sudo -n env PATH=... VAR=value ... bash -c "<script>" naomi-<name>` (runs as root).

    Remote steps need root (snap, microk8s, /boot): the SSH user needs passwordless sudo, and
    `sudo -n` fails at once with "a password is required" instead of hanging. Standard input
    passes through `sudo` to the script (tokens travel there).
    """
    assignments = " ".join(
        f"{key}={shlex.quote(value)}" for key, value in sorted({"PATH": ROOT_PATH, **parameters}.items())
    )
    return f"sudo -n env {assignments} bash -c {_embedded(name, script_text(name))}\n"


def local_command(name: str) -> str:
    """An operator-side script (parameters come from the step's `environment`), with the
    shared SSH helper `operator-ssh.sh` in front of it."""
    text = script_text("operator-ssh.sh") + script_text(name)
    return f"bash -c {_embedded(name, text)}\n"


def connection(node: Node, private_key: pulumi.Input[str]) -> command.remote.ConnectionArgs:
    """SSH to a node with its pinned host key, bounded retries and per-dial timeout."""
    return command.remote.ConnectionArgs(
        host=node.address,
        port=node.ssh_port,
        user=node.ssh_user,
        private_key=private_key,
        host_key=node.host_key,
        dial_error_limit=20,
        per_dial_timeout=15,
    )


def ssh_environment(prefix: str, node: Node) -> dict[str, str]:
    """What operator-side scripts need to reach `node` (see operator-ssh.sh)."""
    return {
        f"{prefix}_ADDRESS": node.address,
        f"{prefix}_SSH_PORT": str(node.ssh_port),
        f"{prefix}_SSH_USER": node.ssh_user,
        f"{prefix}_HOST_KEY": node.host_key,
    }


def script_step(
    resource_name: str,
    ssh: command.remote.ConnectionArgs,
    script: str,
    parameters: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    **extra: object,
) -> command.remote.Command:
    """A remote step whose script or parameter edits reach the host through `update`."""
    run = script_command(script, parameters)
    return command.remote.Command(
        resource_name,
        connection=ssh,
        create=run,
        update=run,
        add_previous_output_in_env=False,
        opts=opts,
        **extra,
    )
