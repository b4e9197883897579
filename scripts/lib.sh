#!/usr/bin/env bash
# Shared helpers for the repository's scripts (source it). Loopback only.

# free_port: prints a TCP port nobody listens on at 127.0.0.1: a random one below the kernel's ephemeral
# range (where outgoing connections, and their TIME_WAIT leftovers, take their local ports), from 10000 up.
free_port() {
  local port tries=0 low=32768
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  [ "$low" -gt 12000 ] || low=32768
  while [ "$tries" -lt 200 ]; do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    tries=$((tries + 1))
  done
  echo "free_port: no free port found" >&2
  return 1
}

# wait_http URL PID [SECONDS]: waits until URL answers 2xx, while process PID is alive (default 30 s).
wait_http() {
  local url=$1 pid=$2 seconds=${3:-30} i=0
  while [ "$i" -lt $((seconds * 10)) ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "wait_http: process $pid exited before $url answered" >&2
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 --noproxy '*' "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "wait_http: $url did not answer within ${seconds}s" >&2
  return 1
}

# stop_pid PID [SECONDS]: SIGTERM, wait (default 10 s), then SIGKILL; only the given process.
stop_pid() {
  local pid=$1 seconds=${2:-10} i=0
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt $((seconds * 10)) ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
