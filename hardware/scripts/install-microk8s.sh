#!/usr/bin/env bash
# Install microk8s from the pinned snap channel (or move it to that channel) and wait until ready.
# Parameters: CHANNEL (e.g. 1.32/stable).
set -euo pipefail
if snap list microk8s >/dev/null 2>&1; then
  current="$(snap info microk8s | awk '/^tracking:/ {print $2}')"
  if [ "$current" != "$CHANNEL" ]; then
    echo "naomi: moving microk8s from ${current} to ${CHANNEL}"
    snap refresh microk8s --channel="$CHANNEL"
  fi
else
  snap install microk8s --classic --channel="$CHANNEL"
fi
microk8s status --wait-ready --timeout 600 >/dev/null
echo "naomi: microk8s ${CHANNEL} ready"
