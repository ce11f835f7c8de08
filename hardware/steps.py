"""Turning a shipped script into a remote command: one place for quoting, hashing and SSH.

Each provisioning step runs a file from `hardware/scripts/` on a host through a heredoc, so
the render shows exactly the script that runs, and its `triggers` carry a hash of the script
and its parameters: editing a script re-runs that step on the next `pulumi up`, and nothing
else does.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from importlib import resources

import pulumi
import pulumi_command as command

from hardware.inventory import Node

HEREDOC = "NAOMI_SCRIPT_EOF"


def script_text(name: str) -> str:
    """A script shipped in `hardware/scripts/`, read from the installed package."""
    return resources.files("hardware").joinpath("scripts", name).read_text()


def script_command(name: str, parameters: Mapping[str, str], *, as_root: bool = True) -> str:
    """`sudo -n env VAR=value ... bash -s` with the script as a quoted heredoc (no expansion).

    Remote steps need root (snap, microk8s, /boot): the SSH user needs passwordless sudo, and
    `sudo -n` fails at once with "a password is required" instead of hanging.
    """
    text = script_text(name)
    if HEREDOC in text:
        raise ValueError(f"script {name} must not contain the heredoc marker {HEREDOC}")
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(parameters.items()))
    words = ["sudo -n"] if as_root else []
    words += ["env", assignments] if assignments else []
    launcher = " ".join([*words, "bash -s"])
    return f"{launcher} <<'{HEREDOC}'\n{text}{HEREDOC}\n"


def fingerprint(name: str, parameters: Mapping[str, str]) -> str:
    digest = hashlib.sha256(script_text(name).encode())
    for key, value in sorted(parameters.items()):
        digest.update(f"\0{key}={value}".encode())
    return digest.hexdigest()[:16]


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


def script_step(
    resource_name: str,
    ssh: command.remote.ConnectionArgs,
    script: str,
    parameters: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    **extra: object,
) -> command.remote.Command:
    """A remote step that re-runs (create or update) exactly when its script or parameters change."""
    run = script_command(script, parameters)
    return command.remote.Command(
        resource_name,
        connection=ssh,
        create=run,
        update=run,
        triggers=[fingerprint(script, parameters)],
        opts=opts,
        **extra,
    )
