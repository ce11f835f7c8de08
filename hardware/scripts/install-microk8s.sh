#!/usr/bin/env bash
# Install microk8s from the pinned snap channel (or move it to that channel) and wait until
# ready. Optionally:
# - API_SAN (control planes, with apiEndpoint): the VIP or load-balancer name/address in the
#   API server certificate. microk8s' apiservice-kicker regenerates server.crt from
#   certs/csr.conf.template only while the node has no var/lock/no-cert-reissue (unclustered),
#   so a node that joined already gets `microk8s refresh-certs --cert server.crt`.
# - REGISTRY (host:port of the cluster registry images are pushed to): containerd pulls it
#   over plain HTTP through args/certs.d/<host:port>/hosts.toml, as the registry addon does
#   for localhost:32000.
# Parameters: CHANNEL (e.g. 1.32/stable), API_SAN, REGISTRY (both may be empty).
# NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
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
data="$root/var/snap/microk8s/current"

if [ -n "${API_SAN:-}" ]; then
  if [[ "$API_SAN" =~ ^[0-9.]+$ || "$API_SAN" == *:* ]]; then entry="IP.99 = ${API_SAN}"; else entry="DNS.99 = ${API_SAN}"; fi
  template="$data/certs/csr.conf.template"
  if ! grep -qxF "$entry" "$template"; then
    sed -i -E '/^(IP|DNS)\.99 = /d' "$template"
    sed -i "s/^#MOREIPS$/${entry}\n#MOREIPS/" "$template"
    echo "naomi: API server certificate names ${API_SAN}"
    if [ -e "$data/var/lock/no-cert-reissue" ]; then
      microk8s refresh-certs --cert server.crt
    fi
  fi
fi

if [ -n "${REGISTRY:-}" ]; then
  hosts_toml="$data/args/certs.d/${REGISTRY}/hosts.toml"
  wanted="$(printf 'server = "http://%s"\n\n[host."http://%s"]\ncapabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY")"
  if [ "$(cat "$hosts_toml" 2>/dev/null || true)" != "$wanted" ]; then
    mkdir -p "$(dirname "$hosts_toml")"
    printf '%s\n' "$wanted" > "$hosts_toml"
    echo "naomi: containerd pulls ${REGISTRY} over HTTP"
  fi
fi
echo "naomi: microk8s ${CHANNEL} ready"
