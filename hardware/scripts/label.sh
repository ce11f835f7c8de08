#!/usr/bin/env bash
# On the first control plane: make the node at NODE_ADDRESS carry LABELS and TAINTS, changing
# only what differs (a second run makes no API call that writes).
# Parameters: NODE_ADDRESS, LABELS ("k=v k=v"), TAINTS ("k=v:Effect ...", may be empty).
set -euo pipefail
name=""
for _ in $(seq 1 60); do
  name="$(microk8s kubectl get nodes -o jsonpath="{range .items[?(@.status.addresses[0].address==\"${NODE_ADDRESS}\")]}{.metadata.name}{end}")"
  [ -n "$name" ] && break
  sleep 5
done
[ -n "$name" ] || { echo "naomi: no node with address ${NODE_ADDRESS} registered after 5 minutes" >&2; exit 1; }

# shellcheck disable=SC2016 # $k and $v belong to the go-template, not to the shell
current_labels="$(microk8s kubectl get node "$name" -o go-template='{{range $k, $v := .metadata.labels}}{{$k}}={{$v}}{{"\n"}}{{end}}')"
missing_labels=()
read -r -a wanted_labels <<<"$LABELS"
for label in "${wanted_labels[@]}"; do
  grep -qxF "$label" <<<"$current_labels" || missing_labels+=("$label")
done
if [ "${#missing_labels[@]}" -gt 0 ]; then
  microk8s kubectl label node "$name" --overwrite "${missing_labels[@]}"
fi

current_taints="$(microk8s kubectl get node "$name" -o go-template='{{range .spec.taints}}{{.key}}={{.value}}:{{.effect}}{{"\n"}}{{end}}')"
missing_taints=()
read -r -a wanted_taints <<<"${TAINTS:-}"
for taint in "${wanted_taints[@]}"; do
  grep -qxF "$taint" <<<"$current_taints" || missing_taints+=("$taint")
done
if [ "${#missing_taints[@]}" -gt 0 ]; then
  microk8s kubectl taint node "$name" --overwrite "${missing_taints[@]}"
fi
echo "naomi: ${name} labelled (${#missing_labels[@]} labels and ${#missing_taints[@]} taints changed)"
