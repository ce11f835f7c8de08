#!/usr/bin/env bash
# Operator side, runs when a node is removed from the inventory (or the stack is destroyed):
# the node leaves the cluster (an unreachable host is reported and skipped), then the first
# control plane forgets it (remove-node.sh, which works either way).
# Parameters (environment): NODE_NAME, NODE_* and BOOTSTRAP_* (operator-ssh.sh),
# REMOTE_LEAVE, REMOTE_REMOVE (the remote commands of leave.sh and remove-node.sh).
set -euo pipefail
if node_ssh NODE "$REMOTE_LEAVE" </dev/null; then
  echo "naomi ${NODE_NAME}: left the cluster"
else
  echo "naomi ${NODE_NAME}: unreachable or failed to leave; continuing (remove-node follows)" >&2
fi
node_ssh BOOTSTRAP "$REMOTE_REMOVE" </dev/null
