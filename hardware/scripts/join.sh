#!/usr/bin/env bash
# On a joining node: join the cluster at BOOTSTRAP_ADDRESS (workers with --worker), once.
# Parameters: BOOTSTRAP_ADDRESS, JOIN_PORT, JOIN_TOKEN, ROLE (control-plane|worker).
# NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
if [ -f "$root/var/snap/microk8s/current/var/lock/clustered.lock" ]; then
  echo "naomi: already part of a cluster"
  exit 0
fi
worker=()
[ "$ROLE" = "worker" ] && worker=(--worker)
microk8s join "${BOOTSTRAP_ADDRESS}:${JOIN_PORT}/${JOIN_TOKEN}" "${worker[@]}"
microk8s status --wait-ready --timeout 600 >/dev/null
echo "naomi: joined ${BOOTSTRAP_ADDRESS} as ${ROLE}"
