#!/usr/bin/env bash
# On the first control plane: forget NODE_ADDRESS (works when the host is already gone).
set -euo pipefail
name="$(microk8s kubectl get nodes -o jsonpath="{range .items[?(@.status.addresses[0].address==\"${NODE_ADDRESS}\")]}{.metadata.name}{end}" 2>/dev/null || true)"
if [ -z "$name" ]; then
  echo "naomi: ${NODE_ADDRESS} is not a member; nothing to remove"
  exit 0
fi
microk8s remove-node "$name" --force
echo "naomi: removed ${name} (${NODE_ADDRESS})"
