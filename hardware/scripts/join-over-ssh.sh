#!/usr/bin/env bash
# Operator side, the join step of one node: unless the node has joined already, have the first
# control plane issue a fresh token and hand it to the node's join on standard input. A failed
# join is retried by the next `pulumi up` with a new token (the old one may have expired).
# Parameters (environment): NODE_NAME, NODE_* and BOOTSTRAP_* (operator-ssh.sh),
# REMOTE_JOINED, REMOTE_ADD_NODE, REMOTE_JOIN (the remote commands of joined.sh, add-node.sh
# and join.sh), NAOMI_SSH_PRIVATE_KEY.
set -euo pipefail
state="$(node_ssh NODE "$REMOTE_JOINED" </dev/null)"
if [ "$state" = "joined" ]; then
  echo "naomi ${NODE_NAME}: already joined"
  exit 0
fi
token="$(node_ssh BOOTSTRAP "$REMOTE_ADD_NODE" </dev/null)"
[ -n "$token" ] || { echo "naomi ${NODE_NAME}: the first control plane issued no join token" >&2; exit 1; }
printf '%s\n' "$token" | node_ssh NODE "$REMOTE_JOIN"
