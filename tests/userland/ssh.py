"""The operator machine's `ssh` for operator-side steps: OpenSSH's client checks, then a session.

Called as `ssh -i KEY -p PORT -o ... USER@ADDRESS COMMAND` (operator-ssh.sh). What the real
client and server would refuse is refused: a key file others can read ("UNPROTECTED PRIVATE
KEY FILE", ssh's sshkey_perm_ok), a known_hosts without the host's pinned key, a key that is
not the account's authorized key, a host that is down. A reboot scheduled on the host happens
before this connection, which therefore fails like one cut off by the reboot; the next sees
the new boot. Standard input is the remote command's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.userland.host import Host


def main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    key_file = port = ""
    index = 0
    while argv[index].startswith("-"):
        flag = argv[index]
        if flag == "-i":
            key_file = argv[index + 1]
        elif flag == "-p":
            port = argv[index + 1]
        elif flag == "-o":
            name, _, value = argv[index + 1].partition("=")
            options[name] = value
        index += 2
    target, command = argv[index], argv[index + 1]
    user, _, address = target.rpartition("@")
    registry = json.loads(Path(os.environ["NAOMI_TEST_HOSTS"]).read_text())
    if address not in registry:
        print(f"ssh: Could not resolve hostname {address}: Name or service not known", file=sys.stderr)
        return 255
    host = Host.load(Path(registry[address]))
    if not host.up:
        print(f"ssh: connect to host {address} port {port}: No route to host", file=sys.stderr)
        return 255
    if host.reboot_pending:
        host.boot()
        print(f"Connection closed by {address} port {port}", file=sys.stderr)
        return 255
    if os.stat(key_file).st_mode & 0o077:
        print(
            f"WARNING: UNPROTECTED PRIVATE KEY FILE!\nPermissions for '{key_file}' are too open.",
            file=sys.stderr,
        )
        return 255
    entry = address if port == "22" else f"[{address}]:{port}"
    known = Path(options["UserKnownHostsFile"]).read_text().splitlines()
    if options.get("StrictHostKeyChecking") != "yes" or f"{entry} {host.host_key}" not in known:
        print(f"Host key verification failed ({entry}).", file=sys.stderr)
        return 255
    if (
        options.get("BatchMode") != "yes"
        or user != host.user
        or Path(key_file).read_text().strip() != host.authorized_key
    ):
        print(f"{user}@{address}: Permission denied (publickey).", file=sys.stderr)
        return 255
    session = host.session(command, sys.stdin.read())
    sys.stdout.write(session.stdout)
    sys.stderr.write(session.stderr)
    return session.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
