#!/usr/bin/env bash
# Runs a command where ROS 2 (DDS) traffic cannot leave this machine.
# As root: a private network namespace with only `lo` up (nothing else exists inside it).
# Otherwise: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (no multicast discovery socket).
# Set RLDT_REAL_NETWORK=1 to run on the real network instead (e.g. to reach a robot).
set -euo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [ "${RLDT_REAL_NETWORK:-0}" = "1" ]; then exec "$@"; fi
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' loopback "$@"
fi
echo "loopback.sh: no network namespace (not root); using ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" >&2
exec "$@"
