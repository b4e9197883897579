#!/usr/bin/env bash
# Starts the built gateway (Release) once with each shipped appsettings.json (the root one and those under
# deploy/) as its whole configuration, listeners moved to free loopback ports, and requires /healthz to
# answer: the gateway's own validation accepts every key of every file we ship.
# Usage: bash scripts/ci/check-configs.sh   (after: dotnet build src/Gateway -c Release)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"

dll="$repo/src/Gateway/bin/Release/net10.0/Gateway.dll"
[ -f "$dll" ] || { echo "check-configs: $dll is missing: build src/Gateway in Release first" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() { stop_pid "$pid"; rm -rf "$work"; }
trap cleanup EXIT

mapfile -t files < <(cd "$repo" && { echo appsettings.json; find deploy -name '*appsettings*.json' | sort; })
status=0
for file in "${files[@]}"; do
  root="$work/$(echo "$file" | tr '/' '_')"
  mkdir -p "$root"
  cp "$repo/$file" "$root/appsettings.json"
  proxy=$(free_port); admin=$(free_port); icap=$(free_port)
  (
    cd "$root"
    exec env Kestrel__Endpoints__Proxy__Url="http://127.0.0.1:$proxy" \
      Kestrel__Endpoints__Admin__Url="http://127.0.0.1:$admin" \
      Gateway__Icap__Server__Listen="127.0.0.1:$icap" \
      ASPNETCORE_HTTP_PORTS= \
      dotnet "$dll" >"$root/gateway.log" 2>&1
  ) &
  pid=$!
  if wait_http "http://127.0.0.1:$admin/healthz" "$pid" 30; then
    echo "check-configs: $file: the gateway starts with it"
  else
    echo "check-configs: $file: the gateway did not start with it; its output:" >&2
    sed 's/^/  | /' "$root/gateway.log" >&2
    status=1
  fi
  stop_pid "$pid"
  pid=""
done
exit "$status"
