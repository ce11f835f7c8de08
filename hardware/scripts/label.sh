#!/usr/bin/env bash
# On the first control plane: apply labels and taints to the node at NODE_ADDRESS.
# Parameters: NODE_ADDRESS, LABELS ("k=v k=v"), TAINTS ("k=v:Effect ...", may be empty).
set -euo pipefail
name=""
for _ in $(seq 1 60); do
  name="$(microk8s kubectl get nodes -o jsonpath="{range .items[?(@.status.addresses[0].address==\"${NODE_ADDRESS}\")]}{.metadata.name}{end}")"
  [ -n "$name" ] && break
  sleep 5
done
[ -n "$name" ] || { echo "naomi: no node with address ${NODE_ADDRESS} registered after 5 minutes" >&2; exit 1; }
read -r -a node_labels <<<"$LABELS"
microk8s kubectl label node "$name" --overwrite "${node_labels[@]}"
read -r -a taints <<<"${TAINTS:-}"
if [ "${#taints[@]}" -gt 0 ]; then
  microk8s kubectl taint node "$name" --overwrite "${taints[@]}"
fi
echo "naomi: labelled ${name}"
