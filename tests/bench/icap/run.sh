#!/usr/bin/env bash
# ICAP benchmark: our server's echo vs c-icap's echo (srv_echo), same machine, same load generator
# (tests/bench/icap/IcapBench), same concurrency. RESPMOD of 1 KB and 1 MB bodies (no preview, no Allow: 204, so both
# servers must stream the body back with a 200), then one RESPMOD streaming 1 GiB.
# Prints req/s, MB/s (echoed body bytes), p50/p99 latency and peak RSS (VmHWM) of each server.
# Usage: tests/bench/icap/run.sh [seconds-per-run]   (needs: dotnet, c-icap; run as root or as a user c-icap can run as)
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_RUN=${1:-10}
WORK=$(mktemp -d /tmp/icap-bench.XXXXXX)
chmod 777 "$WORK"
OURS_PORT=${OURS_PORT:-13601}
CICAP_PORT=${CICAP_PORT:-13602}
BENCH=IcapBench/bin/Release/net10.0/IcapBench
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -S "$WORK/c-icap.ctl" ]; then echo -n stop > "$WORK/c-icap.ctl" || true; fi
  sleep 1
}
trap cleanup EXIT

dotnet build -c Release IcapBench >/dev/null

rss_kb() { # peak RSS (VmHWM) of a process and its children, in kB
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    local v; v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); total=$((total + ${v:-0}))
  done
  echo "$total"
}
cur_rss_kb() {
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    local v; v=$(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); total=$((total + ${v:-0}))
  done
  echo "$total"
}

start_ours() {
  "$BENCH" serve "$OURS_PORT" > "$WORK/ours.log" 2>&1 &
  OURS_PID=$!; PIDS+=("$OURS_PID")
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$OURS_PORT) 2>/dev/null && return; sleep 0.1; done
  echo "our server did not start" >&2; exit 1
}

start_cicap() {
  mkdir -p "$WORK/tmp" "$WORK/log"; chmod 777 "$WORK/tmp" "$WORK/log"
  cat > "$WORK/c-icap.conf" <<CONF
PidFile $WORK/c-icap.pid
CommandsSocket $WORK/c-icap.ctl
Timeout 300
MaxKeepAliveRequests 0
KeepAliveTimeout 600
StartServers 2
MaxServers 4
MinSpareThreads 8
MaxSpareThreads 32
ThreadsPerChild 32
MaxRequestsPerChild 0
Port 127.0.0.1:$CICAP_PORT
User c-icap
Group nogroup
ServerName icap-bench
TmpDir $WORK/tmp
MaxMemObject 131072
DebugLevel 0
ModulesDir /usr/lib/x86_64-linux-gnu/c_icap
ServicesDir /usr/lib/x86_64-linux-gnu/c_icap
TemplateDir /usr/share/c_icap/templates/
LoadMagicFile /etc/c-icap/c-icap.magic
ServerLog $WORK/log/server.log
AccessLog /dev/null
Service echo srv_echo.so
CONF
  c-icap -N -f "$WORK/c-icap.conf" > "$WORK/c-icap.out" 2>&1 &
  CICAP_PID=$!; PIDS+=("$CICAP_PID")
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$CICAP_PORT) 2>/dev/null && return; sleep 0.1; done
  echo "c-icap did not start" >&2; cat "$WORK/c-icap.out" >&2; exit 1
}

cpu_ticks() { # utime+stime of a process and its children (clock ticks)
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    local v; v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); total=$((total + ${v:-0}))
  done
  echo "$total"
}

load() { # name label port pid body concurrency
  local name=$1 label=$2 port=$3 pid=$4 body=$5 conc=$6
  local t0; t0=$(cpu_ticks "$pid")
  local out; out=$("$BENCH" load "$port" echo "$body" "$conc" "$SECONDS_PER_RUN")
  local t1; t1=$(cpu_ticks "$pid")
  local reqs; reqs=$(echo "$out" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
  local cpu_s; cpu_s=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')
  echo "$name $label $out server_cpu_s=$cpu_s req_per_server_cpu_s=$(awk -v r="$reqs" -v c="$cpu_s" 'BEGIN {printf "%.0f", (c > 0 ? r / c : 0)}')"
}

run_suite() { # name port pid
  local name=$1 port=$2 pid=$3
  echo "== $name"
  load "$name" "1KB " "$port" "$pid" 1024 16
  load "$name" "1MB " "$port" "$pid" 1048576 4
  echo "$name peak RSS after load: $(( $(rss_kb "$pid") / 1024 )) MB"
}

run_stream() { # name port pid
  local name=$1 port=$2 pid=$3
  local before; before=$(cur_rss_kb "$pid")
  "$BENCH" stream "$port" echo 1073741824 | sed "s/^/$name 1GiB /"
  local peak; peak=$(rss_kb "$pid")
  echo "$name 1GiB RSS before=$((before / 1024)) MB peak=$((peak / 1024)) MB growth<=$(((peak - before) / 1024)) MB"
}

start_ours
"$BENCH" load "$OURS_PORT" echo 1024 4 2 > /dev/null   # warm-up (JIT)
run_suite ours "$OURS_PORT" "$OURS_PID"
kill "$OURS_PID"; wait "$OURS_PID" 2>/dev/null || true
start_ours
"$BENCH" load "$OURS_PORT" echo 65536 2 1 > /dev/null  # warm-up, then measure the stream on a fresh process
run_stream ours "$OURS_PORT" "$OURS_PID"

start_cicap
"$BENCH" load "$CICAP_PORT" echo 1024 4 2 > /dev/null
run_suite c-icap "$CICAP_PORT" "$CICAP_PID"
run_stream c-icap "$CICAP_PORT" "$CICAP_PID"
