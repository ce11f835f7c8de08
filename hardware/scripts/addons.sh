#!/usr/bin/env bash
# Enable each addon in ADDONS (space-separated) that is not enabled yet, then wait until ready.
set -euo pipefail
read -r -a wanted <<<"$ADDONS"
enabled="$(microk8s status --format short)"
for addon in "${wanted[@]}"; do
  if grep -qE "^(core/)?${addon}: enabled" <<<"$enabled"; then
    echo "naomi: addon ${addon} already enabled"
  else
    microk8s enable "$addon"
  fi
done
microk8s status --wait-ready --timeout 600 >/dev/null
