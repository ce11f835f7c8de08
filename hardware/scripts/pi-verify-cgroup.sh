#!/usr/bin/env bash
# Raspberry Pi, after the reboot: the memory cgroup controller must really be enabled, on
# cgroup v2 (the unified hierarchy: listed in /sys/fs/cgroup/cgroup.controllers) or v1 (a
# /sys/fs/cgroup/memory hierarchy and "enabled" 1 in /proc/cgroups). Some kernels ignore the
# flags; fail with what to do instead of a broken kubelet later.
# Parameters: NODE_NAME. NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
cgroup="$root/sys/fs/cgroup"
if [ -f "$cgroup/cgroup.controllers" ]; then
  layout="cgroup v2"
  grep -qw memory "$cgroup/cgroup.controllers" && present=1 || present=0
elif [ -d "$cgroup/memory" ]; then
  layout="cgroup v1"
  # /proc/cgroups columns: subsys_name hierarchy num_cgroups enabled
  awk '$1 == "memory" && $4 == 1 {found = 1} END {exit !found}' "$root/proc/cgroups" && present=1 || present=0
else
  layout="no cgroup hierarchy mounted on /sys/fs/cgroup"
  present=0
fi
if [ "$present" -eq 1 ]; then
  echo "naomi ${NODE_NAME}: memory cgroup controller present (${layout})"
else
  cat >&2 <<MSG
naomi ${NODE_NAME}: the memory cgroup controller is missing after reboot (${layout}).
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
