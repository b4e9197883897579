#!/usr/bin/env bash
# Installs the Debian packages the tests need (the real peers of the interop tests and the load tools),
# only those that are missing. Source it for gateway_install_deps, or run it: bash scripts/deps.sh
#
#   squid                     forward proxy and ICAP client (interop)
#   c-icap                    ICAP server and c-icap-client (interop)
#   libc-icap-mod-virus-scan  c-icap's ClamAV service
#   clamav                    clamscan, local signatures only (no network)
#   curl, wrk                 HTTP client and load generator
#   nginx-light               static origin for interop tests and benchmarks
#
# Debian starts a daemon when its package is installed (where an init system runs). The tests never use
# the default ports (3128, 1344, 80), and while this script installs it asks Debian not to start services
# (policy-rc.d, only when none exists); it never stops anything it did not start.

GATEWAY_DEPS=(squid c-icap libc-icap-mod-virus-scan clamav curl wrk)

# Prints the packages of GATEWAY_DEPS (plus an nginx) that dpkg does not list as installed.
gateway_missing_deps() {
  local pkg
  for pkg in "${GATEWAY_DEPS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      echo "$pkg"
    fi
  done
  # Any nginx flavour will do; nginx-light is the small one.
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo nginx-light
  fi
}

gateway_install_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    local cmd missing=()
    for cmd in squid c-icap c-icap-client clamscan curl wrk nginx; do
      command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      echo "deps: not a Debian system (no apt-get/dpkg) and these commands are missing: ${missing[*]}" >&2
      echo "deps: install squid, c-icap (with c-icap-client and the virus_scan module), clamav, curl, wrk and nginx, then run again" >&2
      return 1
    fi
    echo "deps: not a Debian system, but every needed command is on PATH"
    return 0
  fi

  local missing
  missing=$(gateway_missing_deps | tr '\n' ' ')
  if [ -z "${missing// /}" ]; then
    echo "deps: all test peers are installed"
    return 0
  fi
  echo "deps: installing missing Debian packages: $missing"

  local -a sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "deps: these Debian packages are missing: $missing" >&2
      echo "deps: not root and no password-less sudo; install them with: sudo apt-get install -y $missing" >&2
      return 1
    fi
  fi

  # Keep Debian from starting the daemons it installs (squid on 3128, c-icap on 1344, nginx on 80): a
  # policy-rc.d that says "no" for the duration of the install, only if none exists, removed on any exit.
  local rc=0
  (
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      trap '"${sudo[@]}" rm -f "$policy"' EXIT
      printf '#!/bin/sh\n# written by the gateway scripts/deps.sh during apt-get install; removed after it\nexit 101\n' \
        | "${sudo[@]}" tee "$policy" >/dev/null || exit
      "${sudo[@]}" chmod 755 "$policy" || exit
    fi
    # (set -e does not apply inside "( ... ) || rc=$?": every step exits on its own failure)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || exit
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing || exit
  ) || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "deps: apt-get failed (exit $rc) installing: $missing" >&2
    return "$rc"
  fi

  missing=$(gateway_missing_deps | tr '\n' ' ')
  if [ -n "${missing// /}" ]; then
    echo "deps: still missing after apt-get install: $missing" >&2
    return 1
  fi
  echo "deps: installed"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  gateway_install_deps
fi
