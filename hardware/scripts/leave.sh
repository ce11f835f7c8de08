#!/usr/bin/env bash
# On a node being removed: leave the cluster if it is in one.
set -euo pipefail
root="${NAOMI_ROOT:-}"
if ! command -v microk8s >/dev/null 2>&1; then
  echo "naomi: microk8s not installed; nothing to leave"
  exit 0
fi
if [ -f "$root/var/snap/microk8s/current/var/lock/clustered.lock" ]; then
  microk8s leave
  echo "naomi: node left the cluster"
else
  echo "naomi: not part of a cluster; nothing to leave"
fi
