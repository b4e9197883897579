#!/usr/bin/env bash
# Rules benchmark: requests/s through the gateway (reverse proxy to nginx) with 0 rules, with 1,000 host and path
# rules none of which matches, and with the same 1,000 rules of which one matches. Not part of the test run.
# Usage: tests/bench/rules/run.sh [duration-seconds=10] [rounds=2]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
duration="${1:-10}"
rounds="${2:-2}"
work="$(mktemp -d /tmp/gw-rules-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

dotnet build -c Release "$repo/src/Gateway" -o "$work/bin" -v q -nologo >/dev/null

# Backend: nginx answering a small fixed body.
backend_port="$(free_port)"
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$backend_port;
    location / { default_type text/plain; return 200 "hello from nginx\n"; }
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

# utime + stime of a process, in clock ticks (the gateway's own CPU cost, less sensitive to a busy machine than requests/s).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_scenario() {
  local scenario="$1" dir="$work/$1"
  mkdir -p "$dir"
  local proxy admin
  proxy="$(free_port)"; admin="$(free_port)"
  python3 "$here/gen-config.py" "$scenario" "$proxy" "$admin" "$backend_port" "$dir/appsettings.json"
  (cd "$dir" && exec dotnet "$work/bin/Gateway.dll") >"$dir/gateway.log" 2>&1 &
  local gw=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  local rules
  rules="$(curl -fs "http://127.0.0.1:$admin/rules" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"
  # Warm up (JIT, connection pools), then measure.
  wrk -t2 -c32 -d3s "http://127.0.0.1:$proxy/bench/item" >/dev/null
  local before after out rps requests
  before="$(cpu_ticks "$gw")"
  out="$(wrk -t2 -c32 -d"${duration}s" "http://127.0.0.1:$proxy/bench/item")"
  after="$(cpu_ticks "$gw")"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "bench: $scenario: errors during the run:"; echo "$out"; exit 1
  fi
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  local cpu_us
  cpu_us="$(python3 -c "print(f'{($after-$before)*1e6/$(getconf CLK_TCK)/$requests:.1f}')")"
  local bench_matches
  bench_matches="$(curl -fs "http://127.0.0.1:$admin/rules" | python3 -c 'import json,sys; print(sum(r["matches"] for r in json.load(sys.stdin)["rules"]))')"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  printf '%-5s rules=%-5s matched=%-8s requests/s=%-9s gateway-cpu-us/request=%s\n' "$scenario" "$rules" "$bench_matches" "$rps" "$cpu_us"
  echo "$scenario $rps $cpu_us" >> "$work/results"
}

echo "wrk -t2 -c32 -d${duration}s, GET /bench/item through the reverse proxy to nginx, $rounds rounds"
for _ in $(seq 1 "$rounds"); do
  order="${SCENARIOS:-none miss hit}"
  # Shuffled per round by default, so that drifting load on a shared machine does not favour one position.
  if [ "${SHUFFLE:-1}" = 1 ]; then order="$(printf '%s\n' $order | shuf | tr '\n' ' ')"; fi
  for scenario in $order; do
    run_scenario "$scenario"
  done
done

# Medians per scenario, and the cost of the 1,000 rules relative to none (target: at most 10% of requests/s).
mkdir -p "$repo/tests/bench/results"
summary="$repo/tests/bench/results/rules-$(date -u +%Y%m%dT%H%M%SZ).txt"
python3 - "$work/results" <<'PY' | tee "$summary"
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for name in dict.fromkeys(r[0] for r in rows):
    rps = [float(r[1]) for r in rows if r[0] == name]
    cpu = [float(r[2]) for r in rows if r[0] == name]
    med[name] = (statistics.median(rps), statistics.median(cpu))
    print(f"median {name:5} requests/s={med[name][0]:9.1f} gateway-cpu-us/request={med[name][1]:6.1f}  (n={len(rps)})")
if "none" in med:
    for name in ("miss", "hit"):
        if name in med:
            print(f"{name} vs none: requests/s {100 * (med[name][0] / med['none'][0] - 1):+.1f}%, cpu/request {100 * (med[name][1] / med['none'][1] - 1):+.1f}%")
PY
echo "(kept in $summary)"
