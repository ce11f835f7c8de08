#!/usr/bin/env bash
# Runs on the operator's machine when a node is removed from the inventory (or destroyed):
# ask the node to leave the cluster, and carry on if it is already gone. The first control
# plane then forgets it (remove-node.sh), which works either way.
# Parameters (environment): NODE_ADDRESS, SSH_PORT, SSH_USER, HOST_KEY, NAOMI_SSH_PRIVATE_KEY,
# LEAVE_SCRIPT (the text of leave.sh).
set -euo pipefail
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
umask 077
printf '%s\n' "$NAOMI_SSH_PRIVATE_KEY" > "$workdir/key"
if [ "$SSH_PORT" = "22" ]; then host_entry="$NODE_ADDRESS"; else host_entry="[$NODE_ADDRESS]:$SSH_PORT"; fi
printf '%s %s\n' "$host_entry" "$HOST_KEY" > "$workdir/known_hosts"
if printf '%s' "$LEAVE_SCRIPT" | ssh -i "$workdir/key" -p "$SSH_PORT" \
    -o BatchMode=yes -o ConnectTimeout=10 -o ConnectionAttempts=3 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$workdir/known_hosts" \
    "$SSH_USER@$NODE_ADDRESS" 'sudo -n bash -s'; then
  echo "naomi: ${NODE_ADDRESS} left the cluster"
else
  echo "naomi: ${NODE_ADDRESS} is unreachable or failed to leave; continuing (remove-node follows)" >&2
fi
