#!/usr/bin/env bash
# On a joining node: join the cluster at BOOTSTRAP_ENDPOINT (host:port; workers with
# --worker) with the token read from standard input, unless it has joined already.
# Parameters: BOOTSTRAP_ENDPOINT, ROLE (control-plane|worker), NODE_NAME; stdin: token/check.
# NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
marker="$root/var/snap/microk8s/current/var/lock/no-cert-reissue"
if [ -e "$marker" ]; then
  echo "naomi ${NODE_NAME}: already joined"
  exit 0
fi
IFS= read -r token || true
[ -n "$token" ] || { echo "naomi ${NODE_NAME}: no join token on standard input" >&2; exit 1; }
worker=()
[ "$ROLE" = "worker" ] && worker=(--worker)
# microk8s join takes the connection string only as an argument (join.py, click.argument
# CONNECTION): the token is on its command line on this node for the seconds the join runs.
microk8s join "${BOOTSTRAP_ENDPOINT}/${token}" "${worker[@]}"
[ -e "$marker" ] || { echo "naomi ${NODE_NAME}: microk8s join returned but the node is not marked as joined" >&2; exit 1; }
# Workers print a notice and return at once (microk8s-status.wrapper, clustered.lock).
microk8s status --wait-ready --timeout 600 >/dev/null
echo "naomi ${NODE_NAME}: joined as ${ROLE}"
