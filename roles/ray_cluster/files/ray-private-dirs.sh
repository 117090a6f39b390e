#!/bin/bash
# ExecStartPost of the Ray unit: ray-private-dirs.sh TEMP_DIR NODE_ADDRESS AGENT_PORT SECONDS
#
# Ray chmods every directory it makes at start to 0777 (ray._common.utils.
# try_make_directory_shared, so that other users of a shared machine can use them), ignoring
# only a failed chmod; no setting turns that off. The last of them are the runtime-env agent's,
# made before it listens on AGENT_PORT. So: wait (at most SECONDS) until it listens, then make
# every directory under TEMP_DIR what UMask=0027 would have made it (0750). A node not up by
# then is left to the join check; directories Ray makes after this stay as Ray made them
# (inside the 0750 home) until the unit's next start, and the journal says so.
set -u
temp_dir=$1 address=$2 port=$3 seconds=$4

ready=false
for _ in $(seq "$seconds"); do
  if (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then
    ready=true
    break
  fi
  sleep 1
done
find "$temp_dir" -xdev -type d -perm /0027 -exec chmod g-w,o-rwx {} +
if [ "$ready" = false ]; then
  echo "ray-private-dirs: Ray's runtime-env agent did not listen on $address:$port within ${seconds}s;" \
    "directories Ray makes after this may stay world-writable until the unit's next start" >&2
fi
exit 0
