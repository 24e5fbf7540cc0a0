#!/usr/bin/env bash
# Idempotently installs what the "engine" test project needs, from Debian's packages:
#   docker.io       -> /usr/sbin/dockerd (a private daemon is started by the tests, never the machine-wide one)
#   docker-registry -> /usr/bin/docker-registry (distribution 2.8, bound to 127.0.0.1 by the tests)
#   busybox-static  -> /bin/busybox (static, used to build tiny images offline)
# Runs `apt-get update` only when something is missing. Prints one line saying what it did.
set -euo pipefail

# package:binary that proves the package is usable
checks=(
  "docker.io:/usr/sbin/dockerd"
  "docker-registry:/usr/bin/docker-registry"
  "busybox-static:/bin/busybox"
)

missing=()
for entry in "${checks[@]}"; do
  pkg="${entry%%:*}"
  bin="${entry#*:}"
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || [ ! -x "$bin" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-engine-deps: nothing to do (docker.io, docker-registry, busybox-static already installed)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-engine-deps: missing ${missing[*]} and not root; run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t install-engine-deps.XXXXXX.log)"
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-engine-deps: apt-get failed installing ${missing[*]}; see $log" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
rm -f "$log"
echo "install-engine-deps: installed ${missing[*]}"
