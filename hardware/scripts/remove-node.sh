#!/usr/bin/env bash
# On the first control plane: forget the node NODE_NAME (works when the host is already gone).
# Node names are the inventory names: preflight.sh makes them the hostnames.
set -euo pipefail
if ! microk8s kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
  echo "naomi: ${NODE_NAME} is not a member; nothing to remove"
  exit 0
fi
microk8s remove-node "$NODE_NAME" --force
echo "naomi: removed ${NODE_NAME}"
