#!/usr/bin/env bash
# Preflight: the host is what the inventory says and can run microk8s; then its hostname is
# the inventory name (microk8s registers the node under the hostname, and stock images all
# call themselves raspberrypi or ubuntu: canonical/microk8s#2273). Changes nothing but the
# hostname and its /etc/hosts line, and only after every check passed.
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
# /proc/device-tree is a link to /sys/firmware/devicetree/base where a device tree exists.
for source in "$root/sys/firmware/devicetree/base/model" "$root/proc/device-tree/model"; do
  if [ -r "$source" ]; then model="$(tr -d '\0' < "$source")"; break; fi
done
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

current="$(hostname)"
if [ "$current" != "$NODE_NAME" ]; then
  if snap list microk8s >/dev/null 2>&1; then
    fail "the hostname is '${current}' and microk8s already runs under it; renaming a cluster node breaks it: name the inventory entry '${current}', or remove microk8s (sudo snap remove microk8s --purge) and run again"
  fi
  # hostnamectl writes /etc/hostname and sets the running kernel's hostname (systemd-hostnamed).
  hostnamectl set-hostname "$NODE_NAME" \
    || fail "could not set the hostname to '${NODE_NAME}': sudo hostnamectl set-hostname ${NODE_NAME}"
  echo "naomi preflight ${NODE_NAME}: hostname was '${current}', now '${NODE_NAME}'"
fi
# Debian resolves its own hostname through a 127.0.1.1 line (sudo warns "unable to resolve
# host" without it); Raspberry Pi OS's raspi-config rewrites that line on a rename too.
hosts="$root/etc/hosts"
if ! grep -qE "^127\.0\.1\.1[[:space:]]+${NODE_NAME}([[:space:]]|$)" "$hosts" 2>/dev/null; then
  if grep -qE '^127\.0\.1\.1[[:space:]]' "$hosts" 2>/dev/null; then
    sed -i -E "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t${NODE_NAME}/" "$hosts"
  else
    printf '127.0.1.1\t%s\n' "$NODE_NAME" >> "$hosts"
  fi
  echo "naomi preflight ${NODE_NAME}: /etc/hosts maps ${NODE_NAME} to 127.0.1.1"
fi
echo "naomi preflight ${NODE_NAME}: ok (${os_id} ${arch}${model:+, ${model}})"
