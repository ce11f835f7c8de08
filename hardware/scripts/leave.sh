#!/usr/bin/env bash
# On a node being removed: leave the cluster if it joined one (either role).
# NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
if ! snap list microk8s >/dev/null 2>&1; then
  echo "naomi: microk8s not installed; nothing to leave"
  exit 0
fi
# The marker join writes for both roles (see joined.sh); microk8s-leave.wrapper checks it too.
if [ -e "$root/var/snap/microk8s/current/var/lock/no-cert-reissue" ]; then
  microk8s leave
  echo "naomi: node left the cluster"
else
  echo "naomi: not part of a cluster; nothing to leave"
fi
