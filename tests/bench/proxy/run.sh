#!/usr/bin/env bash
# Proxy overhead benchmark (issue 2): the same wrk load against
#   backend   nginx serving a 1 KB static file (the origin alone)
#   yarp      a plain YARP app (tests/bench/proxy/PlainYarp) in front of it
#   gateway   the gateway (src/Gateway, Release) with one reverse route to it: cache and access log off
# and prints requests/s and p99 latency of each and the ratio gateway / plain YARP.
#
#   bash tests/bench/proxy/run.sh
# Environment: BENCH_DURATION (15s per run), BENCH_ROUNDS (3: the targets are run in turn, the medians
#   reported), BENCH_WARMUP (5s), BENCH_CONNECTIONS (64), BENCH_THREADS (2),
#   BENCH_TARGETS ("backend yarp gateway"; also: gateway-log = access log on, to a file;
#   gateway-cache = cache on, the origin answering Cache-Control: no-store; gateway-notel = OpenTelemetry SDK
#   disabled with OTEL_SDK_DISABLED=true), BENCH_NO_BUILD=1.
# Everything listens on 127.0.0.1, on free ports; the script stops only the processes it started.
# Results are also written to tests/bench/results/proxy-<time>.txt.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"

duration=${BENCH_DURATION:-15s}
warmup=${BENCH_WARMUP:-5s}
connections=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-2}
read -r -a targets <<<"${BENCH_TARGETS:-backend yarp gateway}"

for cmd in wrk nginx curl dotnet; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || {
    echo "bench: $cmd is missing (Debian packages: wrk nginx-light curl; or run: bash scripts/deps.sh)" >&2
    exit 1
  }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

gateway_dll="$repo/src/Gateway/bin/Release/net10.0/Gateway.dll"
yarp_dll="$repo/tests/bench/proxy/PlainYarp/bin/Release/net10.0/PlainYarp.dll"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "bench: building Release"
  dotnet build "$repo/src/Gateway" -c Release -nologo -v quiet >/dev/null
  dotnet build "$repo/tests/bench/proxy/PlainYarp" -c Release -nologo -v quiet >/dev/null
fi

work=$(mktemp -d)
chmod 755 "$work" # nginx's workers (user nobody when started as root) read the file under it
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- the origin: nginx, one worker, 1 KB static file -------------------------------------------------
backend_port=$(free_port)
mkdir -p "$work/nginx/html" "$work/nginx/tmp" "$work/nginx/logs"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/nginx/html/1k.txt"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  default_type text/plain;
  server {
    listen 127.0.0.1:$backend_port;
    root $work/nginx/html;
    location = /nostore/1k.txt { alias $work/nginx/html/1k.txt; add_header Cache-Control no-store; }
  }
}
CONF
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" -e "$work/nginx/logs/error.log" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$backend_port/1k.txt" "${pids[-1]}" 10
backend="http://127.0.0.1:$backend_port"

# --- the proxies --------------------------------------------------------------------------------------
# start_gateway NAME [VAR=VALUE...]: the gateway in its own content root (no appsettings.json: code defaults
# plus these variables), one reverse route to the origin; sets url to its proxy URL. (Not called in $(...):
# the pid it records must stay in this shell.)
start_gateway() {
  local _
  for _ in 1 2 3; do
    start_gateway_once "$@" && return 0
    stop_pid "${pids[-1]}"   # a port taken meanwhile: try others
  done
  sed 's/^/  | /' "$work/$1/gateway.log" >&2
  return 1
}

start_gateway_once() {
  local name=$1 port admin icap root
  shift
  port=$(free_port); admin=$(free_port); icap=$(free_port)
  root="$work/$name"
  mkdir -p "$root"
  (
    cd "$root"
    exec env ASPNETCORE_HTTP_PORTS= \
      Kestrel__Endpoints__Proxy__Url="http://127.0.0.1:$port" \
      Kestrel__Endpoints__Admin__Url="http://127.0.0.1:$admin" \
      Gateway__Icap__Server__Listen="127.0.0.1:$icap" \
      Gateway__ForwardProxy__Enabled=false \
      Logging__LogLevel__Default=Warning \
      ReverseProxy__Routes__bench__ClusterId=bench \
      ReverseProxy__Routes__bench__Match__Path='{**catch-all}' \
      ReverseProxy__Clusters__bench__Destinations__d1__Address="$backend/" \
      "$@" \
      dotnet "$gateway_dll" >"$root/gateway.log" 2>&1
  ) &
  pids+=($!)
  wait_http "http://127.0.0.1:$admin/healthz" "${pids[-1]}" 30 || return 1
  url="http://127.0.0.1:$port"
}

# start_yarp: the plain YARP app; sets url.
start_yarp() {
  local _
  for _ in 1 2 3; do
    start_yarp_once && return 0
    stop_pid "${pids[-1]}"
  done
  sed 's/^/  | /' "$work/yarp.log" >&2
  return 1
}

start_yarp_once() {
  local port
  port=$(free_port)
  mkdir -p "$work/yarp"
  # Its own content root: the repository's appsettings.json (the gateway's) must not configure it.
  (
    cd "$work/yarp"
    exec env ASPNETCORE_HTTP_PORTS='' dotnet "$yarp_dll" --urls "http://127.0.0.1:$port" --Backend "$backend/" >"$work/yarp.log" 2>&1
  ) &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/1k.txt" "${pids[-1]}" 30 || return 1
  url="http://127.0.0.1:$port"
}

# --- wrk ----------------------------------------------------------------------------------------------
# to_ms VALUE: wrk's "1.52ms" / "606.00us" / "1.02s" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

url=""
declare -A urls rps p50 p99 errors
# run_wrk NAME: one measured wrk run against urls[NAME]; appends its req/s and p50/p99 (ms) to the lists.
run_wrk() {
  local name=$1 out="$work/wrk-$1.txt" r q50 q99 e
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "${urls[$name]}" >"$out"
  r=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  q50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  q99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  e=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
  rps[$name]+="$r "; p50[$name]+="$q50 "; p99[$name]+="$q99 "; errors[$name]=$(( ${errors[$name]:-0} + e ))
  printf 'bench: %-14s %10s req/s   p50 %8s ms   p99 %8s ms   errors %s\n' "$name" "$r" "$q50" "$q99" "$e"
}

# median "V1 V2 ...": the median of the numbers.
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }

# Start every target once, check it answers, warm it up.
for target in "${targets[@]}"; do
  case "$target" in
    backend) url="$backend/1k.txt" ;;
    yarp) start_yarp; url+="/1k.txt" ;;
    gateway) start_gateway gateway Gateway__Cache__Enabled=false; url+="/1k.txt" ;;
    gateway-log) start_gateway gateway-log Gateway__Cache__Enabled=false Logging__LogLevel__Gateway.AccessLog=Information; url+="/1k.txt" ;;
    gateway-notel) start_gateway gateway-notel Gateway__Cache__Enabled=false OTEL_SDK_DISABLED=true; url+="/1k.txt" ;;
    gateway-cache) start_gateway gateway-cache Gateway__Cache__Enabled=true; url+="/nostore/1k.txt" ;;
    *) echo "bench: unknown target $target" >&2; exit 1 ;;
  esac
  urls[$target]=$url
  curl -fsS -o /dev/null --noproxy '*' "$url" || { echo "bench: $target: $url does not answer 200" >&2; exit 1; }
  wrk -t"$threads" -c"$connections" -d"$warmup" "$url" >/dev/null
done

# Rounds interleave the targets, so a change in the machine's load touches all of them alike; the
# summary gives each target's median.
load_before=$(loadavg)
echo "bench: $rounds rounds of wrk -t$threads -c$connections -d$duration --latency per target (after a $warmup warm-up), 1 KB body, $(nproc) cores, load average $load_before"
for ((round = 1; round <= rounds; round++)); do
  for target in "${targets[@]}"; do
    run_wrk "$target"
  done
done

summary=$(
  echo "proxy benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ): medians of $rounds rounds of wrk -t$threads -c$connections -d$duration, 1 KB body, $(nproc) cores, $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "load average before: $load_before, after: $(loadavg) (other work on the machine skews every figure)"
  printf '%-14s %12s %10s %10s %8s   %s\n' target "req/s" "p50 ms" "p99 ms" errors "req/s of each round"
  for target in "${targets[@]}"; do
    printf '%-14s %12s %10s %10s %8s   %s\n' "$target" "$(median "${rps[$target]}")" "$(median "${p50[$target]}")" \
      "$(median "${p99[$target]}")" "${errors[$target]}" "${rps[$target]}"
  done
  if [ -n "${rps[yarp]:-}" ]; then
    for target in "${targets[@]}"; do
      case "$target" in gateway*)
        awk -v g="$(median "${rps[$target]}")" -v y="$(median "${rps[yarp]}")" \
          -v gp="$(median "${p99[$target]}")" -v yp="$(median "${p99[yarp]}")" -v t="$target" \
          'BEGIN { printf "%s / plain YARP: throughput %.2f, p99 latency %.2f\n", t, g / y, gp / yp }' ;;
      esac
    done
  fi
)
echo
echo "$summary"
mkdir -p "$repo/tests/bench/results"
echo "$summary" >"$repo/tests/bench/results/proxy-$(date -u +%Y%m%dT%H%M%SZ).txt"

status=0
for target in "${targets[@]}"; do
  if [ "${errors[$target]}" != 0 ]; then
    echo "bench: $target had ${errors[$target]} errors (non-2xx or socket errors): its figures are not valid" >&2
    status=1
  fi
done
exit "$status"
