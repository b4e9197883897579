#!/usr/bin/env bash
# Cache benchmark (not a test): cache-hit requests/s and p99 for 1 KB and 1 MB objects through the gateway and
# through nginx proxy_cache (Debian nginx) on the same machine, same origin, same objects, same wrk settings;
# then start-up time of the gateway with 100,000 entries on disk.
#
#   tests/bench/cache/run.sh            # everything
#   SKIP_STARTUP=1 tests/bench/cache/run.sh
#   DURATION=20s CONNS=100 THREADS=2 ENTRIES=100000 tests/bench/cache/run.sh
#
# Needs: dotnet, nginx, wrk, curl. Everything listens on 127.0.0.1; all processes it starts are stopped by pid.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ENTRIES=${ENTRIES:-100000}
REPEAT=${REPEAT:-3}   # runs per target, alternating nginx and gateway; the median is reported
ORIGIN_PORT=${ORIGIN_PORT:-18181}
NGINX_PORT=${NGINX_PORT:-18182}
GW_PORT=${GW_PORT:-18183}
GW_ADMIN=${GW_ADMIN:-18184}
WORK=$(mktemp -d /tmp/gw-cache-bench.XXXXXX)
PIDS=()

for tool in nginx wrk curl dotnet; do
  command -v "$tool" >/dev/null || { echo "missing $tool (Debian package: ${tool/dotnet/dotnet-sdk})" >&2; exit 1; }
done

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/origin.pid" ] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
  [ -f "$WORK/proxy.pid" ] && kill "$(cat "$WORK/proxy.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the gateway (Release)"
dotnet build "$REPO/src/Gateway" -c Release -o "$WORK/gw-bin" -v q -nologo | tail -1

mkdir -p "$WORK/www" "$WORK/nginx-cache" "$WORK/logs"
head -c 1024 /dev/urandom > "$WORK/www/1k.bin"
head -c 1048576 /dev/urandom > "$WORK/www/1m.bin"
FILLER=$(head -c 1000 /dev/zero | tr '\0' 'x')

cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
user root;
pid $WORK/origin.pid;
error_log $WORK/logs/origin.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    root $WORK/www;
    location / { add_header Cache-Control "max-age=86400"; }
    location /gen/ { add_header Cache-Control "max-age=86400"; return 200 "$FILLER"; }
  }
}
CONF

cat > "$WORK/proxy.conf" <<CONF
worker_processes auto;
user root;
pid $WORK/proxy.pid;
error_log $WORK/logs/proxy.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=bench:50m max_size=1g inactive=1d use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://127.0.0.1:$ORIGIN_PORT;
      proxy_cache bench;
      add_header Cache-Status "nginx; \$upstream_cache_status";
    }
  }
}
CONF

nginx -p "$WORK" -c "$WORK/origin.conf" -e "$WORK/logs/origin.err"
nginx -p "$WORK" -c "$WORK/proxy.conf" -e "$WORK/logs/proxy.err"

start_gateway() {
  ( cd "$WORK" && exec env \
      Kestrel__Endpoints__Proxy__Url="http://127.0.0.1:$GW_PORT" \
      Kestrel__Endpoints__Admin__Url="http://127.0.0.1:$GW_ADMIN" \
      Logging__LogLevel__Default=Warning \
      Gateway__Icap__Server__Listen=127.0.0.1:0 \
      Gateway__Cache__Path="$WORK/gw-cache" \
      ReverseProxy__Routes__r1__ClusterId=c1 \
      ReverseProxy__Routes__r1__Match__Path='{**catch-all}' \
      ReverseProxy__Clusters__c1__Destinations__d1__Address="http://127.0.0.1:$ORIGIN_PORT/" \
      dotnet "$WORK/gw-bin/Gateway.dll" >>"$WORK/logs/gateway.out" 2>&1 ) &
  GW_PID=$!
  PIDS+=("$GW_PID")
  local start
  start=$(date +%s%N)
  until curl -fs "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null 2>&1; do sleep 0.02; done
  READY_MS=$(( ($(date +%s%N) - start) / 1000000 ))
}

stop_gateway() {
  kill -TERM "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
}

start_gateway
echo "gateway ready in ${READY_MS} ms (empty cache)"

run_wrk() { # name url -> appends "name rps p99ms" to raw.txt
  local out rps p99
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}')
  printf "   %-24s %12s req/s   p99 %8.2f ms\n" "$1" "$rps" "$p99"
  echo "$1 $rps $p99" >> "$WORK/raw.txt"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for obj in 1k.bin 1m.bin; do
  # warm both caches and show that the next request is a hit
  for port in $NGINX_PORT $GW_PORT; do curl -s -o /dev/null "http://127.0.0.1:$port/$obj"; done
  echo "-- $obj: $(curl -s -D - -o /dev/null "http://127.0.0.1:$NGINX_PORT/$obj" | grep -i '^cache-status' | tr -d '\r')"
  echo "-- $obj: $(curl -s -D - -o /dev/null "http://127.0.0.1:$GW_PORT/$obj" | grep -i '^cache-status' | tr -d '\r')"
done

echo "== warm-up (JIT tiering, connection pools): 3 s per target, not counted"
for obj in 1k.bin 1m.bin; do
  for port in $NGINX_PORT $GW_PORT; do wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$port/$obj" >/dev/null; done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== cache-hit throughput: wrk -t$THREADS -c$CONNS -d$DURATION, $REPEAT runs each, alternating"
for obj in 1k.bin 1m.bin; do
  for _ in $(seq "$REPEAT"); do
    run_wrk "nginx-$obj" "http://127.0.0.1:$NGINX_PORT/$obj"
    run_wrk "gateway-$obj" "http://127.0.0.1:$GW_PORT/$obj"
  done
done
echo "== medians"
for obj in 1k.bin 1m.bin; do
  for who in nginx gateway; do
    rps=$(awk -v k="$who-$obj" '$1==k {print $2}' "$WORK/raw.txt" | median)
    p99=$(awk -v k="$who-$obj" '$1==k {print $3}' "$WORK/raw.txt" | median)
    printf "%-10s %-7s %12s req/s   p99 %8s ms\n" "$who" "$obj" "$rps" "$p99"
    echo "$who $obj $rps $p99" >> "$WORK/results.txt"
  done
  n=$(awk -v o="$obj" '$1=="nginx" && $2==o {print $3}' "$WORK/results.txt")
  g=$(awk -v o="$obj" '$1=="gateway" && $2==o {print $3}' "$WORK/results.txt")
  echo "ratio gateway/nginx $obj: $(awk -v g="$g" -v n="$n" 'BEGIN {printf "%.2f", g/n}')"
done
curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | grep -E '"(entries|hits|misses|hitRatio)"' | tr -d ' ,' | paste -sd' '

if [ -z "${SKIP_STARTUP:-}" ]; then
  echo "== filling the gateway cache with $ENTRIES entries (1 KB each)"
  cat > "$WORK/gen.lua" <<'LUA'
local threads = {}
local n = 0
function setup(thread) n = n + 1; thread:set("id", n) end
function init(args) counter = 0; run = args[1] or "r" end
function request() counter = counter + 1; return wrk.format("GET", "/gen/" .. run .. "-" .. id .. "-" .. counter) end
LUA
  round=0
  while :; do
    have=$(curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | awk -F: '/"entries"/ {gsub(/[ ,]/,"",$2); print $2}')
    [ "$have" -ge "$ENTRIES" ] && break
    round=$((round+1))
    wrk -t2 -c32 -d10s -s "$WORK/gen.lua" "http://127.0.0.1:$GW_PORT/" -- "r$round" >/dev/null
    echo "   $(curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | awk -F: '/"entries"/ {gsub(/[ ,]/,"",$2); print $2}') entries"
  done
  stop_gateway
  files=$(find "$WORK/gw-cache" -name '*.gwc' | wc -l)
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  start_gateway
  load=$(curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | awk -F: '/"loadTimeMs"/ {gsub(/[ ,]/,"",$2); print $2}')
  entries=$(curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | awk -F: '/"entries"/ {gsub(/[ ,]/,"",$2); print $2}')
  echo "start-up (cold page cache) with $files entry files: index of $entries entries rebuilt in ${load} ms; process ready in ${READY_MS} ms"
  stop_gateway
  start_gateway
  load=$(curl -s "http://127.0.0.1:$GW_ADMIN/cache/stats" | awk -F: '/"loadTimeMs"/ {gsub(/[ ,]/,"",$2); print $2}')
  echo "start-up (warm page cache): index rebuilt in ${load} ms; process ready in ${READY_MS} ms"
  stop_gateway
fi
