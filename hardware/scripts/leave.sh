#!/usr/bin/env bash
# On a node being removed: leave the cluster if it is in one.
set -euo pipefail
if ! command -v microk8s >/dev/null 2>&1; then
  echo "naomi: microk8s not installed; nothing to leave"
  exit 0
fi
if [ -f /var/snap/microk8s/current/var/lock/clustered.lock ]; then
  microk8s leave
fi
echo "naomi: node left the cluster"
