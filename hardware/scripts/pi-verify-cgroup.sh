#!/usr/bin/env bash
# Raspberry Pi: after the reboot, the memory cgroup controller must really be there.
# Some Pi 5 kernels ignore the flags; fail with what to do instead of a broken kubelet later.
# Parameters: NODE_NAME. NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
controllers="$root/sys/fs/cgroup/cgroup.controllers"
if [ -r "$controllers" ] && grep -qw memory "$controllers"; then
  echo "naomi ${NODE_NAME}: memory cgroup controller present"
else
  cat >&2 <<MSG
naomi ${NODE_NAME}: the memory cgroup controller is missing after reboot.
  Kubernetes cannot enforce memory limits without it. Check that the kernel command line
  (/boot/firmware/cmdline.txt or /boot/cmdline.txt) is a single line containing
  'cgroup_enable=memory cgroup_memory=1', that 'cat /proc/cmdline' shows them after a reboot,
  and on Raspberry Pi 5 images update the kernel (sudo apt full-upgrade) and reboot.
MSG
  exit 1
fi
root_source="$(findmnt -n -o SOURCE / || true)"
if [[ "$root_source" == /dev/mmcblk* ]]; then
  echo "naomi ${NODE_NAME}: warning: root filesystem is on an SD card (${root_source}); use USB/NVMe storage for reliability" >&2
fi
