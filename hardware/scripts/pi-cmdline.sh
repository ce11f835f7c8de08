#!/usr/bin/env bash
# Raspberry Pi: enable the memory cgroup on the kernel command line exactly once, and reboot
# when the running kernel lacks the flags. The last line of the output,
# "naomi-boot: <boot id> reboot|none", tells the wait step (wait-for-reboot.sh, on the
# operator's machine) which boot to wait past. A reboot already tried for the same flags that
# did not bring them fails with what to check instead of rebooting in a loop.
# Parameters: NODE_NAME. NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
flags=(cgroup_enable=memory cgroup_memory=1)
has_flags() {
  local flag
  for flag in "${flags[@]}"; do grep -qE "(^| )${flag}( |$)" <<<"$1" || return 1; done
}

cmdline=""
for candidate in "$root/boot/firmware/cmdline.txt" "$root/boot/cmdline.txt"; do
  if [ -f "$candidate" ]; then cmdline="$candidate"; break; fi
done
[ -n "$cmdline" ] || { echo "naomi ${NODE_NAME}: no /boot/firmware/cmdline.txt or /boot/cmdline.txt" >&2; exit 1; }

line="$(head -n 1 "$cmdline")"
if has_flags "$line"; then
  echo "naomi ${NODE_NAME}: memory cgroup flags already on ${cmdline#"$root"}"
else
  for flag in "${flags[@]}"; do
    grep -qE "(^| )${flag}( |$)" <<<"$line" || line="${line} ${flag}"
  done
  [ -e "${cmdline}.naomi.bak" ] || cp -p "$cmdline" "${cmdline}.naomi.bak"
  tmp="$(mktemp "${cmdline}.XXXXXX")"
  printf '%s\n' "$line" > "$tmp"
  mv "$tmp" "$cmdline"
  echo "naomi ${NODE_NAME}: added memory cgroup flags to ${cmdline#"$root"}"
fi

boot_id="$(cat "$root/proc/sys/kernel/random/boot_id")"
if has_flags "$(cat "$root/proc/cmdline")"; then
  echo "naomi-boot: ${boot_id} none"
  exit 0
fi
marker="$root/var/lib/naomi/cmdline-reboot"
if [ -f "$marker" ] && [ "$(cat "$marker")" != "$boot_id" ]; then
  cat >&2 <<MSG
naomi ${NODE_NAME}: rebooted once for the memory cgroup flags, but the running kernel's
  /proc/cmdline still lacks them. The bootloader reads another file than
  ${cmdline#"$root"}: check 'cmdline=' in config.txt, then remove ${marker#"$root"} and run pulumi up again.
MSG
  exit 1
fi
mkdir -p "$(dirname "$marker")"
printf '%s\n' "$boot_id" > "$marker"
# Reboot after this SSH session has returned, so the step reports success first; a timer
# already scheduled in this boot (a run that failed after scheduling it) is kept.
if ! systemctl is-active --quiet naomi-reboot.timer; then
  systemd-run --on-active=3 --unit naomi-reboot systemctl reboot
fi
echo "naomi ${NODE_NAME}: rebooting to load the new kernel command line"
echo "naomi-boot: ${boot_id} reboot"
