#!/usr/bin/env bash
# Raspberry Pi: enable the memory cgroup on the kernel command line exactly once, and reboot
# only when the line changed. The next step (pi-verify-cgroup.sh) waits for the host and checks.
# Parameters: NODE_NAME. NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
flags=(cgroup_enable=memory cgroup_memory=1)

cmdline=""
for candidate in "$root/boot/firmware/cmdline.txt" "$root/boot/cmdline.txt"; do
  if [ -f "$candidate" ]; then cmdline="$candidate"; break; fi
done
[ -n "$cmdline" ] || { echo "naomi ${NODE_NAME}: no /boot/firmware/cmdline.txt or /boot/cmdline.txt" >&2; exit 1; }

line="$(head -n 1 "$cmdline")"
changed=0
for flag in "${flags[@]}"; do
  if ! grep -qE "(^| )${flag}( |$)" <<<"$line"; then
    line="${line} ${flag}"
    changed=1
  fi
done
if [ "$changed" -eq 0 ]; then
  echo "naomi ${NODE_NAME}: memory cgroup flags already on ${cmdline#"$root"}"
  exit 0
fi
cp -p "$cmdline" "${cmdline}.naomi.bak"
tmp="$(mktemp "${cmdline}.XXXXXX")"
printf '%s\n' "$line" > "$tmp"
mv "$tmp" "$cmdline"
echo "naomi ${NODE_NAME}: added memory cgroup flags to ${cmdline#"$root"}; rebooting"
# Reboot after this SSH session has returned, so the step reports success first.
systemd-run --on-active=3 --unit naomi-reboot systemctl reboot
