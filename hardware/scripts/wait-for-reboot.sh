#!/usr/bin/env bash
# Operator side, after the Raspberry Pi cmdline step: wait until the host is back from the
# reboot that step scheduled (a new /proc/sys/kernel/random/boot_id: the kernel draws a new
# one at every boot) running a kernel whose /proc/cmdline has the memory cgroup flags. Each
# check is a fresh SSH session, so the reboot cutting one off is just a failed check.
# Bounded: WAIT_ATTEMPTS checks, WAIT_INTERVAL seconds apart.
# Parameters (environment): NODE_NAME, NODE_* (operator-ssh.sh), CMDLINE_OUTPUT (stdout of
# the cmdline step, whose "naomi-boot: <boot id> reboot|none" line says what it did),
# WAIT_ATTEMPTS, WAIT_INTERVAL.
set -euo pipefail
flags=(cgroup_enable=memory cgroup_memory=1)
boot_line="$(grep '^naomi-boot: ' <<<"$CMDLINE_OUTPUT" | tail -n 1 || true)"
read -r _ before action <<<"${boot_line:-naomi-boot: unknown none}"
last="no check yet"
for ((attempt = 1; attempt <= WAIT_ATTEMPTS; attempt++)); do
  if [ "$attempt" -gt 1 ]; then sleep "$WAIT_INTERVAL"; fi
  if ! state="$(node_ssh NODE 'cat /proc/sys/kernel/random/boot_id /proc/cmdline' </dev/null 2>&1)"; then
    last="unreachable ($(tail -n 1 <<<"$state"))"
    continue
  fi
  boot_id="$(sed -n 1p <<<"$state")"
  cmdline="$(sed -n 2p <<<"$state")"
  if [ "$action" = "reboot" ] && [ "$boot_id" = "$before" ]; then
    last="still running the boot ${before} (the reboot has not happened yet)"
    continue
  fi
  for flag in "${flags[@]}"; do
    if ! grep -qE "(^| )${flag}( |$)" <<<"$cmdline"; then
      cat >&2 <<MSG
naomi ${NODE_NAME}: the host is up (boot ${boot_id}) but its kernel command line lacks ${flag}:
  ${cmdline}
  The bootloader does not read the file the cmdline step edited. On Raspberry Pi OS bookworm
  it is /boot/firmware/cmdline.txt (older images: /boot/cmdline.txt); check 'cmdline=' in
  config.txt, fix the file by hand (one line), reboot, and run pulumi up again.
MSG
      exit 1
    fi
  done
  echo "naomi ${NODE_NAME}: up on boot ${boot_id} with the memory cgroup flags"
  exit 0
done
echo "naomi ${NODE_NAME}: not back from its reboot after ${WAIT_ATTEMPTS} checks ${WAIT_INTERVAL} s apart; last: ${last}. Check the Pi's power and console, then run pulumi up again (the steps resume here)." >&2
exit 1
