#!/usr/bin/env bash
# THE test command: bash scripts/test.sh [extra dotnet test arguments, e.g. --filter "FullyQualifiedName~Caching"]
#
# 1. installs the Debian packages the tests need, only those missing (scripts/deps.sh);
# 2. builds Gateway.sln in Release (warnings are errors);
# 3. runs every test project of Gateway.sln, failures printed in full, and ends with one line
#    "tests: N passed, N failed, N skipped". Exits non-zero if the build or any test fails.
#
# Environment: GATEWAY_SKIP_DEPS=1 skips step 1; GATEWAY_TEST_THREADS caps xUnit's parallel test threads per
# test assembly (default: the number of cores, at least 2).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ "${GATEWAY_SKIP_DEPS:-0}" != 1 ]; then
  # shellcheck source=scripts/deps.sh
  source "$repo/scripts/deps.sh"
  gateway_install_deps
fi

configuration=Release
threads=${GATEWAY_TEST_THREADS:-$(nproc 2>/dev/null || echo 2)}
[ "$threads" -ge 2 ] 2>/dev/null || threads=2

echo "test: dotnet build Gateway.sln -c $configuration"
dotnet build Gateway.sln -c "$configuration" -nologo

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "test: dotnet test Gateway.sln -c $configuration (xUnit.MaxParallelThreads=$threads)"
status=0
# -m:1: one test assembly at a time. The interop tests drive real squid and c-icap processes; running them
# beside the other assemblies made their timing (and one 5 MB squid POST) flaky, and costs only ~20 s to avoid.
dotnet test Gateway.sln -c "$configuration" --no-build -nologo -m:1 \
  --logger "console;verbosity=normal" \
  "$@" \
  -- "xUnit.MaxParallelThreads=$threads" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}

# Each test assembly ends with a block (console logger, normal verbosity):
#   Total tests: 4
#        Passed: 2
#        Failed: 1
#       Skipped: 1
#    Total time: 1.1990 Seconds
summary=$(awk '
  /^Total tests: [0-9]+/ { inblock = 1; assemblies++; next }
  inblock && /^ *Total time:/ { inblock = 0; next }
  inblock && /^ *(Passed|Failed|Skipped): [0-9]+ *$/ {
    n = $2 + 0
    if ($1 == "Passed:") passed += n; else if ($1 == "Failed:") failed += n; else skipped += n
  }
  END { printf "%d %d %d %d", passed, failed, skipped, assemblies }' "$log")
read -r passed failed skipped assemblies <<<"$summary"

echo
echo "test: $assemblies test assemblies ran tests"
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then
  status=1
fi
exit "$status"
