#!/usr/bin/env bash
# Operator side (runs on the machine that runs `pulumi up`, before the step's own script):
# node_ssh PREFIX COMMAND runs COMMAND on the node described by $PREFIX_ADDRESS,
# $PREFIX_SSH_PORT, $PREFIX_SSH_USER and $PREFIX_HOST_KEY, with the stack's private key
# ($NAOMI_SSH_PRIVATE_KEY) and only that pinned host key. Standard input passes through, so
# secrets go to the remote script there, never on a command line.
set -euo pipefail
naomi_ssh_dir="$(mktemp -d)"
trap 'rm -rf "$naomi_ssh_dir"' EXIT
(umask 077 && printf '%s\n' "$NAOMI_SSH_PRIVATE_KEY" > "$naomi_ssh_dir/key")

node_ssh() {
  local prefix="$1" remote_command="$2"
  local address_var="${prefix}_ADDRESS" port_var="${prefix}_SSH_PORT"
  local user_var="${prefix}_SSH_USER" key_var="${prefix}_HOST_KEY"
  local address="${!address_var}" port="${!port_var}" user="${!user_var}" host_key="${!key_var}"
  local host_entry="$address"
  if [ "$port" != "22" ]; then host_entry="[$address]:$port"; fi
  printf '%s %s\n' "$host_entry" "$host_key" > "$naomi_ssh_dir/known_hosts-$prefix"
  ssh -i "$naomi_ssh_dir/key" -p "$port" \
    -o BatchMode=yes -o ConnectTimeout=10 -o ConnectionAttempts=3 -o LogLevel=ERROR \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$naomi_ssh_dir/known_hosts-$prefix" \
    "$user@$address" "$remote_command"
}
