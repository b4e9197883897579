#!/usr/bin/env bash
# Adaptation benchmark (not a test): requests/s and p99 through the gateway
#   1. without adaptation, 2. RESPMOD to its own in-process echo (204 and prefer=200), 3. RESPMOD to c-icap's echo,
# on 1 KB responses (wrk), and a 1 GiB download through RESPMOD (own echo, prefer=200) with the gateway's peak RSS.
# Usage: tests/bench/adaptation/run.sh [duration=10s] [connections=32]
# Needs: wrk, nginx, c-icap, curl. Builds the gateway in Release. Everything binds 127.0.0.1 on free ports.
set -euo pipefail
DUR=${1:-10s}; CONN=${2:-32}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$(mktemp -d /tmp/gw-bench-XXXX); chmod 777 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -p "$WORK/ci/run/c-icap.ctl" ] && echo -n stop > "$WORK/ci/run/c-icap.ctl" || true; sleep 0.5; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }

dotnet build -c Release "$ROOT/src/Gateway" -v q -nologo >/dev/null
DLL="$ROOT/src/Gateway/bin/Release/net10.0/Gateway.dll"

# origin: nginx with a 1 KB and a 1 GiB file
NGX=$(free_port); mkdir -p "$WORK/www" "$WORK/ngx"
head -c 1024 /dev/urandom > "$WORK/www/1k.bin"
head -c $((1024*1024*1024)) /dev/urandom > "$WORK/www/1g.bin"
cat > "$WORK/ngx/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $WORK/ngx/nginx.pid; error_log $WORK/ngx/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000; sendfile on;
  client_body_temp_path $WORK/ngx; proxy_temp_path $WORK/ngx; fastcgi_temp_path $WORK/ngx; uwsgi_temp_path $WORK/ngx; scgi_temp_path $WORK/ngx;
  server { listen 127.0.0.1:$NGX; root $WORK/www; default_type application/octet-stream; } }
NGX
nginx -c "$WORK/ngx/nginx.conf" & PIDS+=($!)

# c-icap echo
CI=$(free_port); mkdir -p "$WORK/ci/run" "$WORK/ci/tmp" "$WORK/ci/log"; chmod -R 777 "$WORK/ci"
cat > "$WORK/ci/c-icap.conf" <<CIC
PidFile $WORK/ci/run/c-icap.pid
CommandsSocket $WORK/ci/run/c-icap.ctl
Port 127.0.0.1:$CI
User c-icap
Group nogroup
StartServers 1
MaxServers 2
ThreadsPerChild 50
MaxKeepAliveRequests 0
TmpDir $WORK/ci/tmp
ModulesDir /usr/lib/x86_64-linux-gnu/c_icap
ServicesDir /usr/lib/x86_64-linux-gnu/c_icap
ServerLog $WORK/ci/log/server.log
AccessLog $WORK/ci/log/access.log
Service echo srv_echo.so
CIC
c-icap -N -f "$WORK/ci/c-icap.conf" & PIDS+=($!)
sleep 1

GW_PID=""
start_gateway() { # $1 = RESPMOD service URI or empty
  PROXY=$(free_port); ADMIN=$(free_port); ICAP=$(free_port)
  mkdir -p "$WORK/gw"
  local extra=()
  if [ -n "$1" ]; then extra=("Gateway__Icap__Services__s__Uri=${1//ICAPPORT/$ICAP}" "Gateway__Adaptation__Respmod__0=s"); fi
  env "Kestrel__Endpoints__Proxy__Url=http://127.0.0.1:$PROXY" "Kestrel__Endpoints__Admin__Url=http://127.0.0.1:$ADMIN" \
      "Gateway__Icap__Server__Listen=127.0.0.1:$ICAP" "Gateway__Cache__Enabled=false" \
      "Logging__LogLevel__Default=Warning" "Logging__LogLevel__Gateway.AccessLog=Warning" \
      "ReverseProxy__Routes__all__ClusterId=b" "ReverseProxy__Routes__all__Match__Path={**catch-all}" \
      "ReverseProxy__Clusters__b__Destinations__d1__Address=http://127.0.0.1:$NGX/" "${extra[@]}" \
      dotnet "$DLL" --contentRoot "$WORK/gw" > "$WORK/gw.log" 2>&1 &
  GW_PID=$!; PIDS+=("$GW_PID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
}
stop_gateway() { kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; }

bench() { # $1 label, $2 service URI
  start_gateway "$2"
  curl -sf -o /dev/null "http://127.0.0.1:$PROXY/1k.bin"
  wrk -t2 -c"$CONN" -d2s "http://127.0.0.1:$PROXY/1k.bin" >/dev/null   # warm-up
  local out; out=$(wrk -t2 -c"$CONN" -d"$DUR" --latency "http://127.0.0.1:$PROXY/1k.bin")
  local rps p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ' || true)
  printf '%-34s %10s req/s   p99 %8s   %s\n' "$1" "$rps" "$p99" "$errs"
  stop_gateway
}

echo "1 KB responses, wrk -c$CONN -d$DUR (2 cores shared by wrk, nginx, c-icap and the gateway)"
bench "no adaptation"                   ""
bench "RESPMOD own echo (204)"          "icap://127.0.0.1:ICAPPORT/echo"
bench "RESPMOD own echo (prefer=200)"   "icap://127.0.0.1:ICAPPORT/echo?prefer=200"
bench "RESPMOD c-icap echo"             "icap://127.0.0.1:$CI/echo"

start_gateway "icap://127.0.0.1:ICAPPORT/echo?prefer=200"
START=$(date +%s.%N)
SUM=$(curl -sf "http://127.0.0.1:$PROXY/1g.bin" | sha256sum | cut -d' ' -f1)
END=$(date +%s.%N)
HWM=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status)
ORIG=$(sha256sum "$WORK/www/1g.bin" | cut -d' ' -f1)
printf '1 GiB through RESPMOD own echo (prefer=200): %.1f s, %s, gateway peak RSS %d MiB\n' \
  "$(echo "$END - $START" | bc)" "$([ "$SUM" = "$ORIG" ] && echo byte-identical || echo MISMATCH)" $((HWM/1024))
stop_gateway
