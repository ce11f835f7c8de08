#!/usr/bin/env bash
# Preflight: the host is what the inventory says and can run microk8s.
# Parameters: EXPECTED_ARCH (amd64|arm64), BOARD (generic|rpi4|rpi5), NODE_NAME.
# NAOMI_ROOT prefixes every file path (the test harness runs this against a fake root).
set -euo pipefail
root="${NAOMI_ROOT:-}"
fail() { echo "naomi preflight ${NODE_NAME}: $*" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) fail "unsupported machine architecture '$(uname -m)'" ;;
esac
[ "$arch" = "$EXPECTED_ARCH" ] || fail "inventory says arch ${EXPECTED_ARCH} but the host is ${arch}; fix naomi:cluster.nodes"

[ -r "$root/etc/os-release" ] || fail "cannot read /etc/os-release"
# shellcheck disable=SC1091 # os-release is read from the host (or the fake root), not shipped
os_id="$(. "$root/etc/os-release" && echo "${ID:-unknown}")"
case "$os_id" in
  ubuntu|debian|raspbian) ;;
  *) fail "unsupported OS '${os_id}' (Ubuntu, Debian or Raspberry Pi OS)" ;;
esac

model=""
[ -r "$root/proc/device-tree/model" ] && model="$(tr -d '\0' < "$root/proc/device-tree/model")"
case "$BOARD" in
  rpi4) [[ "$model" == *"Raspberry Pi 4"* || "$model" == *"Raspberry Pi Compute Module 4"* ]] \
          || fail "inventory says board rpi4 but the device tree says '${model:-none}'" ;;
  rpi5) [[ "$model" == *"Raspberry Pi 5"* ]] || fail "inventory says board rpi5 but the device tree says '${model:-none}'" ;;
  generic) [[ "$model" != *"Raspberry Pi"* ]] || fail "host is a '${model}': set board rpi4 or rpi5 in the inventory" ;;
esac

mem_kib="$(awk '/^MemTotal:/ {print $2}' "$root/proc/meminfo")"
[ "$mem_kib" -ge 3500000 ] || fail "needs at least 4 GB of memory (has $((mem_kib / 1024)) MiB)"
free_kib="$(df -Pk "$root/" | awk 'NR==2 {print $4}')"
[ "$free_kib" -ge 10000000 ] || fail "needs at least 10 GB free on / (has $((free_kib / 1024)) MiB)"

command -v snap >/dev/null 2>&1 || fail "snapd is missing: sudo apt-get install -y snapd"
if [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null || echo no)" != "yes" ]; then
  fail "clock is not synchronised (join tokens and TLS need it): sudo timedatectl set-ntp true"
fi
if [ -n "$(swapon --noheadings --show=NAME 2>/dev/null)" ]; then
  fail "swap is on: sudo swapoff -a and remove swap from /etc/fstab (and dphys-swapfile on Raspberry Pi OS)"
fi
echo "naomi preflight ${NODE_NAME}: ok (${os_id} ${arch}${model:+, ${model}})"
