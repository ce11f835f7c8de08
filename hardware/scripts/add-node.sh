#!/usr/bin/env bash
# On the first control plane: register a one-time join token for NODE_ADDRESS with a short TTL.
# Parameters: NODE_ADDRESS, JOIN_TOKEN (32 characters, generated per node), TOKEN_TTL (seconds).
set -euo pipefail
root="${NAOMI_ROOT:-}"
if microk8s kubectl get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}' \
    | tr ' ' '\n' | grep -qxF "$NODE_ADDRESS"; then
  echo "naomi: ${NODE_ADDRESS} is already a member; no token needed"
  exit 0
fi
# Joins are issued in parallel by Pulumi: serialise writes to microk8s' token file.
flock "$root/var/snap/microk8s/common/naomi-add-node.lock" \
  microk8s add-node --token "$JOIN_TOKEN" --token-ttl "$TOKEN_TTL" >/dev/null
echo "naomi: join token for ${NODE_ADDRESS} valid for ${TOKEN_TTL}s"
