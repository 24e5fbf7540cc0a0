#!/usr/bin/env bash
# Idempotently installs what the "engine" test project needs, from Debian's packages:
#   docker.io       -> /usr/sbin/dockerd (a private daemon is started by the tests, never the machine-wide one)
#   docker-registry -> /usr/bin/docker-registry (distribution 2.8, bound to 127.0.0.1 by the tests)
#   busybox-static  -> /bin/busybox (static, used to build tiny images offline)
# Runs `apt-get update` only when something is missing. Prints one line saying what it did.
#
# No service is started by the install: on a systemd host the packages' postinst scripts would start
# docker.service (creating /var/run/docker.sock, a machine-wide engine), containerd.service and
# docker-registry.service (listening on :5000 on every interface). While apt runs, a temporary
# /usr/sbin/policy-rc.d answers 101 ("action forbidden"), which invoke-rc.d and deb-systemd-invoke
# honour; it is removed afterwards, and only if this script created it (an existing one is left as it is).
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
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
  printf '#!/bin/sh\n# Temporary (scripts/install-engine-deps.sh): no service starts during this install.\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
remove_policy() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap remove_policy EXIT

log="$(mktemp -t install-engine-deps.XXXXXX.log)"
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-engine-deps: apt-get failed installing ${missing[*]}; see $log" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
rm -f "$log"
note=""
[ "$created_policy" -eq 0 ] && note=" (an existing $policy was left in place; it decides whether services started)"
echo "install-engine-deps: installed ${missing[*]} without starting their services${note}"
