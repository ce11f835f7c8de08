#!/usr/bin/env bash
# On the first control plane: make the node NODE_NAME carry exactly the LABELS and TAINTS naomi
# manages, changing only what differs (a second run makes no API call that writes). What naomi
# set last time is recorded on the node (annotations naomi.io/managed-labels and
# naomi.io/managed-taints), so a label or taint dropped from the config is removed, and labels
# others set (kubelet, operators) are never touched.
# Parameters: NODE_NAME, LABELS ("k=v k=v"), TAINTS ("k=v:Effect ...", may be empty).
set -euo pipefail
kubectl() { microk8s kubectl "$@"; }
registered=0
for _ in $(seq 1 60); do
  if kubectl get node "$NODE_NAME" >/dev/null 2>&1; then registered=1; break; fi
  sleep 5
done
[ "$registered" -eq 1 ] || { echo "naomi: node ${NODE_NAME} not registered after 5 minutes" >&2; exit 1; }

read -r -a wanted_labels <<<"$LABELS"
read -r -a wanted_taints <<<"${TAINTS:-}"
# shellcheck disable=SC2016 # $k and $v belong to the go-template, not to the shell
current_labels="$(kubectl get node "$NODE_NAME" -o go-template='{{range $k, $v := .metadata.labels}}{{$k}}={{$v}}{{"\n"}}{{end}}')"
current_taints="$(kubectl get node "$NODE_NAME" -o go-template='{{range .spec.taints}}{{.key}}={{.value}}:{{.effect}}{{"\n"}}{{end}}')"
managed_labels="$(kubectl get node "$NODE_NAME" -o go-template='{{index .metadata.annotations "naomi.io/managed-labels"}}')"
managed_taints="$(kubectl get node "$NODE_NAME" -o go-template='{{index .metadata.annotations "naomi.io/managed-taints"}}')"
[ "$managed_labels" = "<no value>" ] && managed_labels=""
[ "$managed_taints" = "<no value>" ] && managed_taints=""

label_changes=()
for label in "${wanted_labels[@]}"; do
  grep -qxF "$label" <<<"$current_labels" || label_changes+=("$label")
done
wanted_label_keys=",$(printf '%s\n' "${wanted_labels[@]}" | cut -d= -f1 | paste -sd, -),"
IFS=, read -r -a previous_label_keys <<<"$managed_labels"
for key in "${previous_label_keys[@]}"; do
  if [[ "$wanted_label_keys" != *",${key},"* ]] && grep -q "^${key}=" <<<"$current_labels"; then
    label_changes+=("${key}-")
  fi
done

taint_changes=()
for taint in "${wanted_taints[@]}"; do
  grep -qxF "$taint" <<<"$current_taints" || taint_changes+=("$taint")
done
# A taint is identified by key and effect: "key:Effect".
wanted_taint_ids=",$(for taint in "${wanted_taints[@]}"; do echo "${taint%%=*}:${taint##*:}"; done | paste -sd, -),"
IFS=, read -r -a previous_taint_ids <<<"$managed_taints"
for id in "${previous_taint_ids[@]}"; do
  if [[ "$wanted_taint_ids" != *",${id},"* ]] && grep -q "^${id%%:*}=.*:${id##*:}$" <<<"$current_taints"; then
    taint_changes+=("${id}-")
  fi
done

if [ "${#label_changes[@]}" -gt 0 ]; then
  kubectl label node "$NODE_NAME" --overwrite "${label_changes[@]}"
fi
if [ "${#taint_changes[@]}" -gt 0 ]; then
  kubectl taint node "$NODE_NAME" --overwrite "${taint_changes[@]}"
fi
new_managed_labels="${wanted_label_keys#,}"; new_managed_labels="${new_managed_labels%,}"
new_managed_taints="${wanted_taint_ids#,}"; new_managed_taints="${new_managed_taints%,}"
if [ "$new_managed_labels" != "$managed_labels" ] || [ "$new_managed_taints" != "$managed_taints" ]; then
  kubectl annotate node "$NODE_NAME" --overwrite \
    "naomi.io/managed-labels=${new_managed_labels}" "naomi.io/managed-taints=${new_managed_taints}"
fi
echo "naomi: ${NODE_NAME} labelled (${#label_changes[@]} label and ${#taint_changes[@]} taint changes)"
