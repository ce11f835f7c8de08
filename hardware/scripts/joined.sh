#!/usr/bin/env bash
# On a node: print "joined" if it is a member of a cluster it joined, else "not joined".
# microk8s' join writes var/lock/no-cert-reissue for both roles (mark_no_cert_reissue() in
# join_dqlite_worker_node and join_dqlite_master_node, scripts/wrappers/join.py at v1.32) and
# leave removes it (unmark_no_cert_reissue(), leave.py); clustered.lock is written for
# workers only. NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
if [ -e "$root/var/snap/microk8s/current/var/lock/no-cert-reissue" ]; then
  echo "joined"
else
  echo "not joined"
fi
