#!/usr/bin/env bash
# System packages the project needs (idempotent; installs only what is missing):
#   iproute2 + util-linux: loopback-only network namespace for tests and the demo;
#   libegl1 / libosmesa6 / libgl1: headless MuJoCo rendering for cameras.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
ldconfig -p | grep -q 'libEGL.so.1' || need+=(libegl1)
ldconfig -p | grep -q 'libOSMesa.so' || need+=(libosmesa6)
ldconfig -p | grep -q 'libGL.so.1' || need+=(libgl1)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
  exit 0
fi
echo "setup-system: apt-get install ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
