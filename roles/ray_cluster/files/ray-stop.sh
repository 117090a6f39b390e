#!/bin/sh
# ExecStop and ExecStopPost of the Ray unit: ray-stop.sh VENV GRACE_SECONDS
#
# While the node runs (systemd sets MAINPID), `ray stop` ends Ray's processes gracefully, so the
# cluster reschedules their tasks and restartable actors. Then, and after a crash, whatever is
# left of the unit is killed here and waited for: Ray's workers ignore SIGTERM, and on some hosts
# (containers on cgroup v1) systemd never hears that a unit's cgroup emptied, so leaving the rest
# to systemd's own kill held every restart for TimeoutStopSec (the unit has KillMode=process).
set -u
if [ -n "${MAINPID:-}" ]; then
  "$1/bin/ray" stop --grace-period "$2" >/dev/null 2>&1 || true
fi

procs_file() {
  # cgroup v2: "0::/path"; v1 with systemd's named hierarchy: "N:name=systemd:/path".
  path=$(sed -n 's/^[0-9]*:name=systemd:\(.*\)$/systemd\1/p' /proc/self/cgroup)
  [ -n "$path" ] || path=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
  echo "/sys/fs/cgroup/${path#/}/cgroup.procs"
}

procs=$(procs_file)
[ -r "$procs" ] || exit 0
for _ in $(seq 50); do
  # Read with builtins only: a helper started to read the list (grep) is in it itself, so the
  # list never emptied and every stop waited the whole loop.
  others=""
  while read -r pid; do
    [ "$pid" = "$$" ] || others="$others $pid"
  done <"$procs"
  [ -n "$others" ] || exit 0
  kill -KILL $others 2>/dev/null || true
  sleep 0.1
done
