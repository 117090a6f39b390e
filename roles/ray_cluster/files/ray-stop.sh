#!/bin/sh
# ExecStop and ExecStopPost of the Ray unit: ray-stop.sh GRACE_SECONDS
#
# While the node runs (systemd sets MAINPID), every process of the unit gets SIGTERM, on which
# Ray's own processes end cleanly (the raylet leaves the cluster, the GCS closes its store),
# and up to GRACE_SECONDS to go. Then, and after a crash, whatever is left of the unit is
# killed here and waited for: Ray's workers ignore SIGTERM, and on some hosts (containers on
# cgroup v1) systemd never hears that a unit's cgroup emptied, so leaving the rest to systemd's
# own kill held every restart for TimeoutStopSec (the unit has KillMode=process). This is what
# `ray stop --grace-period` does, without its seconds of importing Ray and scanning every
# process of the host, which on a loaded node outlasted the grace period itself.
set -u
procs_file() {
  # cgroup v2: "0::/path"; v1 with systemd's named hierarchy: "N:name=systemd:/path".
  path=$(sed -n 's/^[0-9]*:name=systemd:\(.*\)$/systemd\1/p' /proc/self/cgroup)
  [ -n "$path" ] || path=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
  echo "/sys/fs/cgroup/${path#/}/cgroup.procs"
}

procs=$(procs_file)
[ -r "$procs" ] || exit 0
# The unit's processes but this script, in $others. Builtins only: a helper process (grep)
# would list itself, and every wait below would last its whole course.
list_others() {
  others=""
  while read -r pid; do
    [ "$pid" = "$$" ] || others="$others $pid"
  done <"$procs"
}

if [ -n "${MAINPID:-}" ]; then
  list_others
  [ -n "$others" ] && kill -TERM $others 2>/dev/null
  for _ in $(seq $(( $1 * 10 ))); do
    list_others
    [ -n "$others" ] || exit 0
    sleep 0.1
  done
fi

for _ in $(seq 50); do
  list_others
  [ -n "$others" ] || exit 0
  kill -KILL $others 2>/dev/null || true
  sleep 0.1
done
